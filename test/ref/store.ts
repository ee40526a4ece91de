/**
 * A pure-TS model of the KV block store semantics of core/include/hwkv.h, in float64.
 *
 * A block is an ordered run of tokens, the same length in every layer; here it is a list, per layer, of
 * per-token K and V vectors ([nKvHead * headDim] and [nKvHead * headDimV]). Keys are held rotated at
 * block-local positions 0..len-1. No pages, no memory accounting: only the values.
 *
 * Block ids are whatever the caller says (tests mirror the ids a backend hands out).
 */
import type { RopeParams } from '../../ts/backend/types.ts';
import { refRopeApply } from './rope.ts';

export interface RefStoreShape {
  nLayer: number;
  nKvHead: number;
  headDim: number;
  headDimV: number;
}

interface RefBlock {
  k: Float64Array[][]; // [layer][token] -> [nKvHead * headDim]
  v: Float64Array[][]; // [layer][token] -> [nKvHead * headDimV]
}

export class RefStore {
  readonly shape: RefStoreShape;
  private readonly blocks = new Map<number, RefBlock>();

  constructor(shape: RefStoreShape) {
    this.shape = shape;
  }

  get kDim(): number {
    return this.shape.nKvHead * this.shape.headDim;
  }

  get vDim(): number {
    return this.shape.nKvHead * this.shape.headDimV;
  }

  has(id: number): boolean {
    return this.blocks.has(id);
  }

  ids(): number[] {
    return [...this.blocks.keys()];
  }

  private get(id: number): RefBlock {
    const b = this.blocks.get(id);
    if (!b) throw new Error(`RefStore: no block ${id}`);
    return b;
  }

  create(id: number): void {
    if (this.blocks.has(id)) throw new Error(`RefStore: block ${id} already live`);
    const k: Float64Array[][] = [];
    const v: Float64Array[][] = [];
    for (let l = 0; l < this.shape.nLayer; l++) {
      k.push([]);
      v.push([]);
    }
    this.blocks.set(id, { k, v });
  }

  free(id: number): void {
    this.get(id);
    this.blocks.delete(id);
  }

  len(id: number): number {
    return this.get(id).k[0]!.length;
  }

  /** k[nLayer, nTok, nKvHead, headDim], v[nLayer, nTok, nKvHead, headDimV]; with rope keys rotated to len..len+nTok-1. */
  append(id: number, nTok: number, k: ArrayLike<number>, v: ArrayLike<number>, rope?: RopeParams | null): void {
    const b = this.get(id);
    const start = this.len(id);
    const kd = this.kDim;
    const vd = this.vDim;
    for (let l = 0; l < this.shape.nLayer; l++) {
      for (let t = 0; t < nTok; t++) {
        let kv: Float64Array = new Float64Array(kd);
        for (let e = 0; e < kd; e++) kv[e] = k[(l * nTok + t) * kd + e]!;
        if (rope) kv = refRopeApply(rope, kv, 1, this.shape.nKvHead, [start + t]);
        const vv = new Float64Array(vd);
        for (let e = 0; e < vd; e++) vv[e] = v[(l * nTok + t) * vd + e]!;
        b.k[l]!.push(kv);
        b.v[l]!.push(vv);
      }
    }
  }

  truncate(id: number, newLen: number): void {
    const b = this.get(id);
    if (newLen < 0 || newLen > this.len(id)) throw new Error(`RefStore: truncate ${newLen} outside 0..${this.len(id)}`);
    for (let l = 0; l < this.shape.nLayer; l++) {
      b.k[l]!.length = newLen;
      b.v[l]!.length = newLen;
    }
  }

  /** dst += copy of src; with rope the copied keys are rotated by +len(dst). */
  merge(dst: number, src: number, rope?: RopeParams | null): void {
    if (dst === src) throw new Error('RefStore: merge dst == src');
    const d = this.get(dst);
    const s = this.get(src);
    const shift = this.len(dst);
    for (let l = 0; l < this.shape.nLayer; l++) {
      for (const kv of s.k[l]!) d.k[l]!.push(rope ? refRopeApply(rope, kv, 1, this.shape.nKvHead, [shift]) : Float64Array.from(kv));
      for (const vv of s.v[l]!) d.v[l]!.push(Float64Array.from(vv));
    }
  }

  /** One layer, tokens [start, start+nTok): k[nTok, nKvHead, headDim], v[nTok, nKvHead, headDimV], as stored. */
  read(id: number, layer: number, start = 0, nTok?: number): { k: Float64Array; v: Float64Array } {
    const b = this.get(id);
    const n = nTok ?? this.len(id) - start;
    const k = new Float64Array(n * this.kDim);
    const v = new Float64Array(n * this.vDim);
    for (let t = 0; t < n; t++) {
      k.set(b.k[layer]![start + t]!, t * this.kDim);
      v.set(b.v[layer]![start + t]!, t * this.vDim);
    }
    return { k, v };
  }

  /** A view of one layer as one sequence; with rope, keys of block j re-rotated by +o_j (absolute positions). */
  readView(ids: ReadonlyArray<number>, layer: number, rope?: RopeParams | null): { k: Float64Array; v: Float64Array } {
    const parts = ids.map((id) => this.read(id, layer));
    const total = ids.reduce((acc, id) => acc + this.len(id), 0);
    const k = new Float64Array(total * this.kDim);
    const v = new Float64Array(total * this.vDim);
    let o = 0;
    ids.forEach((id, j) => {
      const n = this.len(id);
      const kk = rope ? refRopeApply(rope, parts[j]!.k, n, this.shape.nKvHead, new Array<number>(n).fill(o)) : parts[j]!.k;
      k.set(kk, o * this.kDim);
      v.set(parts[j]!.v, o * this.vDim);
      o += n;
    });
    return { k, v };
  }
}
