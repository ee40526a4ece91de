/**
 * 'mock': a pure-TypeScript Backend over the float64 references, rounding to float32 at the interface.
 * It exists only to self-test the harness and the op tests while no compiled backend is available
 * (HOGWILD_TEST_MOCK=1). It is never a reference for anything: passing against it proves nothing about
 * the core. It validates arguments the way core/include/hwkv.h prescribes, with the typed errors.
 */
import { InvalidArgumentError, OutOfMemoryError, OutOfRangeError, UnsupportedError } from '../../ts/index.ts';
import type { AttentionBatch, Backend, KvStore, RopeParams, StoreParams, StoreStats } from '../../ts/backend/types.ts';
import { refViewAttentionQueryRotation, type RefBlockData } from '../ref/attention.ts';
import { refPack, refUnpack } from '../ref/bits.ts';
import { refInvFreq, refRopeApply, rotaryDimOf } from '../ref/rope.ts';

function checkRope(p: RopeParams, headDim?: number): void {
  if (!p || typeof p !== 'object') throw new InvalidArgumentError('rope parameters are required');
  const t = (p.scaling ?? { type: 'none' }).type;
  if (!['none', 'linear', 'llama3', 'yarn'].includes(t)) throw new InvalidArgumentError(`rope.scaling.type unknown: ${String(t)}`);
  if (!Number.isInteger(p.headDim) || p.headDim < 1) throw new InvalidArgumentError(`rope.headDim must be >= 1, got ${p.headDim}`);
  const rd = rotaryDimOf(p);
  if (!Number.isInteger(rd) || rd % 2 !== 0 || rd > p.headDim || rd < 0) throw new InvalidArgumentError(`rope.rotaryDim must be even and <= headDim, got ${rd}`);
  if (p.style !== 'neox' && p.style !== 'normal') throw new InvalidArgumentError(`rope.style must be neox or normal, got ${String(p.style)}`);
  if (headDim !== undefined && p.headDim !== headDim) throw new InvalidArgumentError(`rope.headDim ${p.headDim} != store headDim ${headDim}`);
}

function f32(x: ArrayLike<number>): Float32Array {
  return Float32Array.from(x as ArrayLike<number>);
}

class MockStore implements KvStore {
  readonly params: Required<StoreParams>;
  private blocks = new Map<number, { len: number; pages: number; k: Float32Array[][]; v: Float32Array[][] }>();
  private freePages = 0;
  private readonly pageBytes: number;
  private disposed = false;

  constructor(p: StoreParams) {
    const params: Required<StoreParams> = {
      nLayer: p.nLayer,
      nKvHead: p.nKvHead,
      headDim: p.headDim,
      headDimV: p.headDimV ?? p.headDim,
      pageTokens: p.pageTokens ?? 64,
      dtype: p.dtype ?? 'f32',
      maxBytes: p.maxBytes ?? 0,
      codec: p.codec ?? { type: 'none' },
    };
    if (params.codec.type !== 'none') throw new UnsupportedError('mock backend: KV codecs are not implemented');
    for (const key of ['nLayer', 'nKvHead', 'headDim', 'headDimV', 'pageTokens'] as const) {
      if (!Number.isInteger(params[key]) || params[key] < 1) throw new InvalidArgumentError(`${key} must be an integer >= 1, got ${params[key]}`);
    }
    if (!Number.isSafeInteger(params.maxBytes) || params.maxBytes < 0) throw new InvalidArgumentError(`maxBytes must be >= 0, got ${params.maxBytes}`);
    if (params.dtype === 'f16') throw new UnsupportedError('mock backend: dtype f16 is not implemented');
    if (params.dtype !== 'f32') throw new InvalidArgumentError(`dtype must be 'f32' or 'f16', got ${String(params.dtype)}`);
    this.params = params;
    this.pageBytes = params.pageTokens * params.nLayer * params.nKvHead * (params.headDim + params.headDimV) * 4;
  }

  codecStats() {
    return { bytesCompressed: 0, tokensCompressed: 0, valuesCompressed: 0, chunks: 0, bytesScratch: 0, bitsPerValue: NaN };
  }

  private blk(id: number) {
    if (this.disposed) throw new InvalidArgumentError('store disposed');
    const b = Number.isInteger(id) ? this.blocks.get(id) : undefined;
    if (!b) throw new OutOfRangeError(`block ${id} is not a live block handle`);
    return b;
  }

  private pagesUsed(): number {
    let n = 0;
    for (const b of this.blocks.values()) n += b.pages;
    return n;
  }

  /** Make block b able to hold newLen tokens, all-or-nothing. */
  private reserve(b: { pages: number }, newLen: number): void {
    const need = Math.ceil(newLen / this.params.pageTokens) - b.pages;
    if (need <= 0) return;
    const fromPool = Math.min(need, this.freePages);
    const fresh = need - fromPool;
    const reservedAfter = (this.pagesUsed() + this.freePages + fresh) * this.pageBytes;
    if (this.params.maxBytes > 0 && reservedAfter > this.params.maxBytes) {
      throw new OutOfMemoryError(`store would hold ${reservedAfter} bytes of pages, above maxBytes ${this.params.maxBytes}`);
    }
    this.freePages -= fromPool;
    b.pages += need;
  }

  stats(): StoreStats {
    const used = this.pagesUsed();
    return {
      bytesReserved: (used + this.freePages) * this.pageBytes,
      bytesInUse: used * this.pageBytes,
      pagesInUse: used,
      pagesFree: this.freePages,
      blocksLive: this.blocks.size,
    };
  }

  createBlock(): number {
    let id = 0;
    while (this.blocks.has(id)) id++;
    const k: Float32Array[][] = [];
    const v: Float32Array[][] = [];
    for (let l = 0; l < this.params.nLayer; l++) {
      k.push([]);
      v.push([]);
    }
    this.blocks.set(id, { len: 0, pages: 0, k, v });
    return id;
  }

  freeBlock(block: number): void {
    const b = this.blk(block);
    this.freePages += b.pages;
    this.blocks.delete(block);
  }

  blockLength(block: number): number {
    return this.blk(block).len;
  }

  append(block: number, nTok: number, k: Float32Array, v: Float32Array, rope?: RopeParams | null): void {
    const b = this.blk(block);
    const { nLayer, nKvHead, headDim, headDimV } = this.params;
    if (!Number.isInteger(nTok) || nTok < 0) throw new InvalidArgumentError(`nTok must be >= 0, got ${nTok}`);
    if (k.length !== nLayer * nTok * nKvHead * headDim) throw new InvalidArgumentError(`k must have ${nLayer * nTok * nKvHead * headDim} elements, got ${k.length}`);
    if (v.length !== nLayer * nTok * nKvHead * headDimV) throw new InvalidArgumentError(`v must have ${nLayer * nTok * nKvHead * headDimV} elements, got ${v.length}`);
    if (rope) checkRope(rope, headDim);
    this.reserve(b, b.len + nTok);
    const kd = nKvHead * headDim;
    const vd = nKvHead * headDimV;
    for (let l = 0; l < nLayer; l++) {
      for (let t = 0; t < nTok; t++) {
        const kk = k.subarray((l * nTok + t) * kd, (l * nTok + t + 1) * kd);
        b.k[l]!.push(rope ? f32(refRopeApply(rope, kk, 1, nKvHead, [b.len + t])) : f32(kk));
        b.v[l]!.push(f32(v.subarray((l * nTok + t) * vd, (l * nTok + t + 1) * vd)));
      }
    }
    b.len += nTok;
  }

  truncate(block: number, newLength: number): void {
    const b = this.blk(block);
    if (!Number.isInteger(newLength) || newLength < 0 || newLength > b.len) throw new OutOfRangeError(`newLength ${newLength} outside 0..${b.len}`);
    for (let l = 0; l < this.params.nLayer; l++) {
      b.k[l]!.length = newLength;
      b.v[l]!.length = newLength;
    }
    b.len = newLength;
    const keep = Math.ceil(newLength / this.params.pageTokens);
    this.freePages += b.pages - keep;
    b.pages = keep;
  }

  merge(dst: number, src: number, rope?: RopeParams | null): void {
    const d = this.blk(dst);
    const s = this.blk(src);
    if (dst === src) throw new InvalidArgumentError('merge: src and dst must be different blocks');
    if (rope) checkRope(rope, this.params.headDim);
    this.reserve(d, d.len + s.len);
    const shift = d.len;
    for (let l = 0; l < this.params.nLayer; l++) {
      for (const kk of s.k[l]!) d.k[l]!.push(rope ? f32(refRopeApply(rope, kk, 1, this.params.nKvHead, [shift])) : f32(kk));
      for (const vv of s.v[l]!) d.v[l]!.push(f32(vv));
    }
    d.len += s.len;
  }

  private checkLayer(layer: number): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.params.nLayer) throw new OutOfRangeError(`layer ${layer} outside 0..${this.params.nLayer - 1}`);
  }

  read(block: number, layer: number, start = 0, nTok?: number): { k: Float32Array; v: Float32Array } {
    const b = this.blk(block);
    this.checkLayer(layer);
    const n = nTok ?? b.len - start;
    if (start < 0 || n < 0 || start + n > b.len) throw new OutOfRangeError(`tokens [${start}, ${start + n}) outside block of length ${b.len}`);
    const kd = this.params.nKvHead * this.params.headDim;
    const vd = this.params.nKvHead * this.params.headDimV;
    const k = new Float32Array(n * kd);
    const v = new Float32Array(n * vd);
    for (let t = 0; t < n; t++) {
      k.set(b.k[layer]![start + t]!, t * kd);
      v.set(b.v[layer]![start + t]!, t * vd);
    }
    return { k, v };
  }

  private checkView(blocks: ReadonlyArray<number>): void {
    const seen = new Set<number>();
    for (const id of blocks) {
      this.blk(id);
      if (seen.has(id)) throw new InvalidArgumentError(`block ${id} appears twice in one view`);
      seen.add(id);
    }
  }

  readView(blocks: ReadonlyArray<number>, layer: number, rope?: RopeParams | null): { k: Float32Array; v: Float32Array } {
    this.checkView(blocks);
    this.checkLayer(layer);
    if (rope) checkRope(rope, this.params.headDim);
    const parts = blocks.map((id) => this.read(id, layer));
    const total = blocks.reduce((a, id) => a + this.blk(id).len, 0);
    const k = new Float32Array(total * this.params.nKvHead * this.params.headDim);
    const v = new Float32Array(total * this.params.nKvHead * this.params.headDimV);
    let o = 0;
    blocks.forEach((id, j) => {
      const n = this.blk(id).len;
      k.set(rope ? f32(refRopeApply(rope, parts[j]!.k, n, this.params.nKvHead, new Array<number>(n).fill(o))) : parts[j]!.k, o * this.params.nKvHead * this.params.headDim);
      v.set(parts[j]!.v, o * this.params.nKvHead * this.params.headDimV);
      o += n;
    });
    return { k, v };
  }

  attention(layer: number, rope: RopeParams, batch: AttentionBatch, q: Float32Array, nHead: number, scale: number): { out: Float32Array; lse: Float32Array } {
    this.checkLayer(layer);
    checkRope(rope, this.params.headDim);
    if (!Number.isInteger(nHead) || nHead < 1 || nHead % this.params.nKvHead !== 0) {
      throw new InvalidArgumentError(`nHead (${nHead}) must be a positive multiple of nKvHead (${this.params.nKvHead})`);
    }
    if (batch.views.length < 1 || batch.positions.length !== batch.views.length) throw new InvalidArgumentError('batch: one positions list per view, at least one view');
    batch.views.forEach((v) => this.checkView(v));
    const nQ = batch.positions.reduce((a, p) => a + p.length, 0);
    if (q.length !== nQ * nHead * this.params.headDim) throw new InvalidArgumentError(`q must have ${nQ * nHead * this.params.headDim} elements, got ${q.length}`);
    const views: RefBlockData[][] = batch.views.map((ids) =>
      ids.map((id) => {
        const r = this.read(id, layer);
        return { len: this.blk(id).len, k: r.k, v: r.v };
      }),
    );
    const r = refViewAttentionQueryRotation(
      { nHead, nKvHead: this.params.nKvHead, headDim: this.params.headDim, headDimV: this.params.headDimV },
      rope,
      views,
      batch.positions.map((p) => Array.from(p)),
      q,
      scale,
    );
    return { out: f32(r.out), lse: f32(r.lse) };
  }

  dispose(): void {
    this.disposed = true;
  }
}

export function createMockBackend(): Backend {
  return {
    name: 'mock' as never,
    details: { simd: 'none' },
    ropeInvFreq(p) {
      checkRope(p);
      const r = refInvFreq(p);
      return { invFreq: f32(r.invFreq), attentionFactor: Math.fround(r.attentionFactor) };
    },
    ropeApply(p, x, nTok, nHead, positions) {
      checkRope(p);
      if (x.length !== nTok * nHead * p.headDim) throw new InvalidArgumentError(`x must have ${nTok * nHead * p.headDim} elements, got ${x.length}`);
      if (positions.length !== nTok) throw new InvalidArgumentError(`positions must have ${nTok} entries`);
      x.set(refRopeApply(p, x, nTok, nHead, positions));
    },
    packBits(codes, bits) {
      if (!Number.isInteger(bits) || bits < 1 || bits > 16) throw new OutOfRangeError(`bits must be in 1..16, got ${bits}`);
      for (let i = 0; i < codes.length; i++) if (codes[i]! >= 2 ** bits) throw new OutOfRangeError(`code ${codes[i]} at ${i} does not fit in ${bits} bits`);
      return refPack(codes, bits);
    },
    unpackBits(words, bits, n) {
      if (!Number.isInteger(bits) || bits < 1 || bits > 16) throw new OutOfRangeError(`bits must be in 1..16, got ${bits}`);
      if (words.length < Math.ceil((n * bits) / 32)) throw new InvalidArgumentError(`words must have >= ${Math.ceil((n * bits) / 32)} elements, got ${words.length}`);
      return refUnpack(words, bits, n);
    },
    fwht(x, n, scale = 1) {
      if (!Number.isInteger(n) || n < 1 || n > 2 ** 20) throw new OutOfRangeError(`n must be in 1..2^20, got ${n}`);
      if ((n & (n - 1)) !== 0) throw new InvalidArgumentError(`n must be a power of two, got ${n}`);
      if (x.length % n !== 0) throw new InvalidArgumentError(`x.length ${x.length} is not a multiple of n ${n}`);
      // fast butterfly in double, then round
      for (let r = 0; r < x.length / n; r++) {
        const row = Float64Array.from(x.subarray(r * n, (r + 1) * n));
        for (let h = 1; h < n; h *= 2) {
          for (let i = 0; i < n; i += 2 * h) {
            for (let j = i; j < i + h; j++) {
              const a = row[j]!;
              const b = row[j + h]!;
              row[j] = a + b;
              row[j + h] = a - b;
            }
          }
        }
        for (let i = 0; i < n; i++) x[r * n + i] = row[i]! * scale;
      }
    },
    createStore(p) {
      return new MockStore(p);
    },
    setForceScalar() {},
    dispose() {},
  };
}
