/**
 * CoreBackend: the single TypeScript implementation of `Backend` over any RawApi (native addon, CUDA
 * library through the addon, WebAssembly module). All argument validation and error mapping lives here,
 * once; the bindings stay thin.
 */
import { DisposedError, InvalidArgumentError, OutOfRangeError, errorFromStatus } from '../errors.js';
import { CoreQuantOps } from '../aqua/quantizer.js';
import { gaussianGrid } from '../aqua/grids.js';
import type { HiggsGrid, QuantOps } from '../aqua/types.js';
import { ROPE_PARAMS_LEN, STORE_PARAMS_LEN, STORE_STATS_LEN, type RawApi, type RawStore } from './raw.js';
import type {
  AttentionBatch,
  Backend,
  BackendName,
  CodecChunk,
  CodecStats,
  KvCodec,
  KvStore,
  AquaPredictorTables,
  RopeParams,
  StoreParams,
  StoreStats,
} from './types.js';

function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x);
}

function requireInt(what: string, x: unknown, min = -0x80000000, max = 0x7fffffff): number {
  if (!isInt(x)) throw new InvalidArgumentError(`${what} must be an integer, got ${String(x)}`);
  if (x < min || x > max) throw new InvalidArgumentError(`${what} must be in ${min}..${max}, got ${x}`);
  return x;
}

/** A block handle: any integer is a well-formed handle; one that cannot name a block is out of range. */
function requireBlock(what: string, x: unknown): number {
  if (!isInt(x)) throw new InvalidArgumentError(`${what} must be an integer block id, got ${String(x)}`);
  if (x < 0 || x > 0x7fffffff) throw new OutOfRangeError(`${what} ${x} is not a block id (block ids are 0..2^31-1)`);
  return x;
}

function requireF32(what: string, a: unknown, length?: number): Float32Array {
  if (!(a instanceof Float32Array)) throw new InvalidArgumentError(`${what} must be a Float32Array`);
  if (length !== undefined && a.length !== length) {
    throw new InvalidArgumentError(`${what} must have ${length} elements, got ${a.length}`);
  }
  return a;
}

function finiteNumber(what: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new InvalidArgumentError(`${what} must be a finite number, got ${String(x)}`);
  return x;
}

/** Encode RoPE parameters in hwkv_rope_params field order (see raw.ts). */
export function encodeRope(p: RopeParams): Float64Array {
  if (p === null || typeof p !== 'object') throw new InvalidArgumentError('rope parameters must be an object');
  const headDim = requireInt('rope.headDim', p.headDim, 1);
  const rotaryDim = requireInt('rope.rotaryDim', p.rotaryDim ?? headDim, 0);
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    throw new InvalidArgumentError(`rope.rotaryDim must be even and <= headDim (${headDim}), got ${rotaryDim}`);
  }
  let style: number;
  if (p.style === 'neox') style = 0;
  else if (p.style === 'normal') style = 1;
  else throw new InvalidArgumentError(`rope.style must be 'neox' (Hugging Face rotate-half) or 'normal' (GGUF adjacent pairs), got ${String(p.style)}`);
  const theta = finiteNumber('rope.theta', p.theta);
  if (theta <= 0) throw new InvalidArgumentError(`rope.theta must be > 0, got ${theta}`);
  const r = new Float64Array(ROPE_PARAMS_LEN);
  r[0] = headDim;
  r[1] = rotaryDim;
  r[2] = style;
  r[4] = theta;
  r[5] = 1;
  r[9] = 32;
  r[10] = 1;
  r[11] = 1;
  const s = p.scaling ?? { type: 'none' };
  switch (s.type) {
    case 'none':
      r[3] = 0;
      break;
    case 'linear':
      r[3] = 1;
      r[5] = finiteNumber('rope.scaling.factor', s.factor);
      break;
    case 'llama3':
      r[3] = 2;
      r[5] = finiteNumber('rope.scaling.factor', s.factor);
      r[6] = finiteNumber('rope.scaling.lowFreqFactor', s.lowFreqFactor);
      r[7] = finiteNumber('rope.scaling.highFreqFactor', s.highFreqFactor);
      r[8] = finiteNumber('rope.scaling.originalMaxPosition', s.originalMaxPosition);
      break;
    case 'yarn':
      r[3] = 3;
      r[5] = finiteNumber('rope.scaling.factor', s.factor);
      r[8] = finiteNumber('rope.scaling.originalMaxPosition', s.originalMaxPosition);
      r[9] = finiteNumber('rope.scaling.betaFast', s.betaFast ?? 32);
      r[10] = finiteNumber('rope.scaling.betaSlow', s.betaSlow ?? 1);
      r[11] = s.truncate === false ? 0 : 1;
      break;
    default:
      throw new InvalidArgumentError(`rope.scaling.type must be none, linear, llama3 or yarn, got ${String((s as { type: unknown }).type)}`);
  }
  return r;
}

function toInt32(what: string, a: ArrayLike<number>): Int32Array {
  if (a instanceof Int32Array) return a;
  const out = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = requireInt(`${what}[${i}]`, a[i]);
  return out;
}

export class CoreBackend implements Backend {
  readonly name: BackendName;
  readonly details: Record<string, unknown>;
  /** @internal */
  readonly raw: RawApi;
  private disposed = false;
  private readonly stores = new Set<CoreKvStore>();
  /** AQUA-KV quantizers (ts/aqua/quantizer.ts), when the RawApi has them. */
  readonly quant?: QuantOps;

  constructor(name: BackendName, raw: RawApi, extraDetails: Record<string, unknown> = {}) {
    this.name = name;
    this.raw = raw;
    if (raw.quant) this.quant = new CoreQuantOps(this, raw.quant);
    let info: Record<string, unknown> = {};
    try {
      info = JSON.parse(raw.buildInfo()) as Record<string, unknown>;
    } catch {
      info = { buildInfo: raw.buildInfo() };
    }
    this.details = { ...info, ...extraDetails };
  }

  /** @internal Throw the typed error for a failed core call. */
  check(status: number): void {
    if (status !== 0) throw errorFromStatus(status, this.raw.lastError() || `core call failed with status ${status}`);
  }

  /** @internal */
  ensureLive(): void {
    if (this.disposed) throw new DisposedError(`${this.name} backend`);
  }

  ropeInvFreq(p: RopeParams): { invFreq: Float32Array; attentionFactor: number } {
    this.ensureLive();
    const rp = encodeRope(p);
    const invFreq = new Float32Array(rp[1]! / 2);
    const af = new Float32Array(1);
    this.check(this.raw.ropeInvFreq(rp, invFreq, af));
    return { invFreq, attentionFactor: af[0]! };
  }

  ropeApply(p: RopeParams, x: Float32Array, nTok: number, nHead: number, positions: ArrayLike<number>): void {
    this.ensureLive();
    const rp = encodeRope(p);
    requireInt('nTok', nTok, 0);
    requireInt('nHead', nHead, 1);
    requireF32('x', x, nTok * nHead * rp[0]!);
    if (positions.length !== nTok) throw new InvalidArgumentError(`positions must have nTok = ${nTok} entries, got ${positions.length}`);
    this.check(this.raw.ropeApply(rp, x, nTok, nHead, toInt32('positions', positions)));
  }

  packBits(codes: Uint16Array | ArrayLike<number>, bits: number): Uint32Array {
    this.ensureLive();
    requireInt('bits', bits);
    let c: Uint16Array;
    if (codes instanceof Uint16Array) c = codes;
    else {
      c = new Uint16Array(codes.length);
      for (let i = 0; i < codes.length; i++) {
        const v = codes[i]!;
        if (!isInt(v) || v < 0 || v > 0xffff) throw new InvalidArgumentError(`codes[${i}] must be an integer in 0..65535, got ${String(v)}`);
        c[i] = v;
      }
    }
    const nWords = bits >= 1 && bits <= 16 ? Math.ceil((c.length * bits) / 32) : 0;
    const words = new Uint32Array(nWords);
    this.check(this.raw.packBits(c, bits, words));
    return words;
  }

  unpackBits(words: Uint32Array, bits: number, n: number): Uint16Array {
    this.ensureLive();
    if (!(words instanceof Uint32Array)) throw new InvalidArgumentError('words must be a Uint32Array');
    requireInt('bits', bits);
    requireInt('n', n, 0, 2 ** 40);
    const codes = new Uint16Array(n);
    this.check(this.raw.unpackBits(words, bits, codes));
    return codes;
  }

  fwht(x: Float32Array, n: number, scale = 1): void {
    this.ensureLive();
    requireF32('x', x);
    requireInt('n', n);
    if (n < 1) throw new OutOfRangeError(`fwht: n must be a power of two in 1..2^20, got ${n}`);
    finiteNumber('scale', scale);
    if (x.length % n !== 0) throw new InvalidArgumentError(`x.length (${x.length}) must be a multiple of n (${n})`);
    this.check(this.raw.fwht(x, x.length / n, n, scale));
  }

  createStore(p: StoreParams): KvStore {
    this.ensureLive();
    const store = new CoreKvStore(this, p);
    this.stores.add(store);
    return store;
  }

  /** @internal */
  forget(store: CoreKvStore): void {
    this.stores.delete(store);
  }

  setForceScalar(force: boolean): void {
    this.ensureLive();
    this.raw.setSimd?.(force);
  }

  dispose(): void {
    if (this.disposed) return;
    for (const s of [...this.stores]) s.dispose();
    this.disposed = true;
  }
}

export class CoreKvStore implements KvStore {
  readonly params: Required<StoreParams>;
  private handle: RawStore | null;
  private readonly be: CoreBackend;
  private readonly kvDimK: number;
  private readonly kvDimV: number;

  constructor(be: CoreBackend, p: StoreParams) {
    if (p === null || typeof p !== 'object') throw new InvalidArgumentError('store parameters must be an object');
    const headDim = requireInt('headDim', p.headDim, 1);
    const params: Required<StoreParams> = {
      nLayer: requireInt('nLayer', p.nLayer, 1),
      nKvHead: requireInt('nKvHead', p.nKvHead, 1),
      headDim,
      headDimV: requireInt('headDimV', p.headDimV ?? headDim, 1),
      pageTokens: requireInt('pageTokens', p.pageTokens ?? 64, 1),
      dtype: p.dtype ?? 'f32',
      maxBytes: p.maxBytes ?? 0,
      codec: p.codec ?? { type: 'none' },
    };
    if (params.dtype !== 'f32' && params.dtype !== 'f16') throw new InvalidArgumentError(`dtype must be 'f32' or 'f16', got ${String(params.dtype)}`);
    if (typeof params.maxBytes !== 'number' || !Number.isSafeInteger(params.maxBytes) || params.maxBytes < 0) {
      throw new InvalidArgumentError(`maxBytes must be a non-negative integer, got ${String(params.maxBytes)}`);
    }
    const sp = new Float64Array(STORE_PARAMS_LEN);
    sp[0] = params.nLayer;
    sp[1] = params.nKvHead;
    sp[2] = params.headDim;
    sp[3] = params.headDimV;
    sp[4] = params.pageTokens;
    sp[5] = params.dtype === 'f16' ? 1 : 0;
    sp[6] = params.maxBytes;
    const out: RawStore[] = [];
    const codec = encodeCodec(params.codec, params.pageTokens, params);
    if (codec === null) {
      be.check(be.raw.storeCreate(sp, out));
    } else {
      if (!be.raw.storeCreateCodec) throw errorFromStatus(4, `the ${be.name} backend has no compressed KV cache (codec '${params.codec.type}')`);
      be.check(be.raw.storeCreateCodec(sp, codec.cd, codec.grid, codec.grid0, out, codec.rope, codec.predictors));
    }
    this.handle = out[0]!;
    this.be = be;
    this.params = params;
    this.kvDimK = params.nKvHead * params.headDim;
    this.kvDimV = params.nKvHead * params.headDimV;
  }

  /** @internal The raw handle, for the model engine's forward call. */
  rawHandle(): RawStore {
    return this.h();
  }

  private h(): RawStore {
    if (this.handle === null) throw new DisposedError('KV store');
    this.be.ensureLive();
    return this.handle;
  }

  private checkRope(rope: RopeParams | null | undefined): Float64Array | null {
    if (rope === null || rope === undefined) return null;
    const rp = encodeRope(rope);
    if (rp[0] !== this.params.headDim) {
      throw new InvalidArgumentError(`rope.headDim (${rp[0]}) must equal the store's headDim (${this.params.headDim})`);
    }
    return rp;
  }

  stats(): StoreStats {
    const out = new Float64Array(STORE_STATS_LEN);
    this.be.check(this.be.raw.storeStats(this.h(), out));
    return {
      bytesReserved: out[0]!,
      bytesInUse: out[1]!,
      pagesInUse: out[2]!,
      pagesFree: out[3]!,
      blocksLive: out[4]!,
    };
  }

  codecStats(): CodecStats {
    const out = new Float64Array(5);
    if (this.params.codec.type !== 'none' && this.be.raw.storeCodecStats) this.be.check(this.be.raw.storeCodecStats(this.h(), out));
    return {
      bytesCompressed: out[0]!,
      tokensCompressed: out[1]!,
      valuesCompressed: out[2]!,
      chunks: out[3]!,
      bytesScratch: out[4]!,
      bitsPerValue: out[2]! > 0 ? (8 * out[0]!) / out[2]! : NaN,
    };
  }

  codecChunk(block: number, token: number, layer: number, which: 'k' | 'v'): CodecChunk {
    const raw = this.be.raw;
    if (!raw.storeCodecChunk) throw errorFromStatus(4, `the ${this.be.name} backend cannot export codec chunks`);
    if (which !== 'k' && which !== 'v') throw new InvalidArgumentError(`which must be 'k' or 'v', got ${String(which)}`);
    const info = new Float64Array(6);
    const args = [this.h(), requireBlock('block', block), requireInt('token', token), requireInt('layer', layer), which === 'k' ? 0 : 1] as const;
    this.be.check(raw.storeCodecChunk(...args, null, null, null, info));
    const codes = new Uint32Array(info[2]!);
    const scales = new Uint16Array(info[3]!);
    const zeros = new Uint16Array(info[4]!);
    this.be.check(raw.storeCodecChunk(...args, codes, scales, zeros, info));
    return { start: info[0]!, nTok: info[1]!, codes, scales, zeros, exact: info[5] === 1 };
  }

  createBlock(): number {
    const out = new Int32Array(1);
    this.be.check(this.be.raw.blockCreate(this.h(), out));
    return out[0]!;
  }

  freeBlock(block: number): void {
    this.be.check(this.be.raw.blockFree(this.h(), requireBlock('block', block)));
  }

  blockLength(block: number): number {
    const out = new Int32Array(1);
    this.be.check(this.be.raw.blockLen(this.h(), requireBlock('block', block), out));
    return out[0]!;
  }

  append(block: number, nTok: number, k: Float32Array, v: Float32Array, rope?: RopeParams | null): void {
    const h = this.h();
    requireBlock('block', block);
    requireInt('nTok', nTok, 0);
    requireF32('k', k, this.params.nLayer * nTok * this.kvDimK);
    requireF32('v', v, this.params.nLayer * nTok * this.kvDimV);
    this.be.check(this.be.raw.blockAppend(h, block, nTok, k, v, this.checkRope(rope)));
  }

  truncate(block: number, newLength: number): void {
    this.be.check(this.be.raw.blockTruncate(this.h(), requireBlock('block', block), requireInt('newLength', newLength)));
  }

  merge(dst: number, src: number, rope?: RopeParams | null): void {
    const h = this.h();
    this.be.check(this.be.raw.blockMerge(h, requireBlock('dst', dst), requireBlock('src', src), this.checkRope(rope)));
  }

  read(block: number, layer: number, start = 0, nTok?: number): { k: Float32Array; v: Float32Array } {
    const h = this.h();
    requireBlock('block', block);
    requireInt('layer', layer);
    requireInt('start', start);
    const n = nTok ?? this.blockLength(block) - start;
    requireInt('nTok', n, 0);
    const k = new Float32Array(n * this.kvDimK);
    const v = new Float32Array(n * this.kvDimV);
    this.be.check(this.be.raw.blockRead(h, block, layer, start, n, k, v));
    return { k, v };
  }

  private viewLength(blocks: ReadonlyArray<number>): number {
    let total = 0;
    for (const b of blocks) total += this.blockLength(b);
    return total;
  }

  readView(blocks: ReadonlyArray<number>, layer: number, rope?: RopeParams | null): { k: Float32Array; v: Float32Array } {
    const h = this.h();
    const ids = new Int32Array(blocks.length);
    for (let i = 0; i < blocks.length; i++) ids[i] = requireBlock(`blocks[${i}]`, blocks[i]);
    requireInt('layer', layer);
    const rp = this.checkRope(rope);
    const total = this.viewLength(blocks);
    const k = new Float32Array(total * this.kvDimK);
    const v = new Float32Array(total * this.kvDimV);
    this.be.check(this.be.raw.viewRead(h, ids, layer, rp, k, v, total));
    return { k, v };
  }

  attention(
    layer: number,
    rope: RopeParams,
    batch: AttentionBatch,
    q: Float32Array,
    nHead: number,
    scale: number,
  ): { out: Float32Array; lse: Float32Array } {
    const h = this.h();
    requireInt('layer', layer);
    const rp = this.checkRope(rope);
    if (!rp) throw new InvalidArgumentError('attention needs RoPE parameters (query rotation)');
    requireInt('nHead', nHead, 1);
    finiteNumber('scale', scale);
    if (nHead % this.params.nKvHead !== 0) {
      throw new InvalidArgumentError(`nHead (${nHead}) must be a multiple of the store's nKvHead (${this.params.nKvHead})`);
    }
    if (!batch || !Array.isArray(batch.views) || !Array.isArray(batch.positions)) {
      throw new InvalidArgumentError('batch must be { views: number[][], positions: number[][] }');
    }
    const nSeq = batch.views.length;
    if (nSeq < 1) throw new InvalidArgumentError('batch.views must hold at least one sequence');
    if (batch.positions.length !== nSeq) {
      throw new InvalidArgumentError(`batch.positions must have one entry per view (${nSeq}), got ${batch.positions.length}`);
    }
    const viewIndptr = new Int32Array(nSeq + 1);
    const qIndptr = new Int32Array(nSeq + 1);
    let nb = 0;
    let nq = 0;
    for (let s = 0; s < nSeq; s++) {
      nb += batch.views[s]!.length;
      nq += batch.positions[s]!.length;
      viewIndptr[s + 1] = nb;
      qIndptr[s + 1] = nq;
    }
    const viewBlocks = new Int32Array(nb);
    const qPos = new Int32Array(nq);
    for (let s = 0; s < nSeq; s++) {
      const view = batch.views[s]!;
      for (let j = 0; j < view.length; j++) viewBlocks[viewIndptr[s]! + j] = requireBlock(`batch.views[${s}][${j}]`, view[j]);
      const pos = batch.positions[s]!;
      for (let i = 0; i < pos.length; i++) qPos[qIndptr[s]! + i] = requireInt(`batch.positions[${s}][${i}]`, pos[i]);
    }
    requireF32('q', q, nq * nHead * this.params.headDim);
    const out = new Float32Array(nq * nHead * this.params.headDimV);
    const lse = new Float32Array(nq * nHead);
    this.be.check(this.be.raw.attnViews(h, layer, rp, viewIndptr, viewBlocks, qIndptr, qPos, q, nHead, scale, out, lse));
    return { out, lse };
  }

  dispose(): void {
    if (this.handle === null) return;
    this.be.raw.storeFree(this.handle);
    this.handle = null;
    this.be.forget(this);
  }
}

const CODEC_TYPES = { none: 0, uniform: 1, higgs: 2, aqua: 3 } as const;

function gridOf(name: string, g: unknown): HiggsGrid {
  const gg = g as HiggsGrid;
  if (gg === null || typeof gg !== 'object' || !(gg.points instanceof Float32Array) || ![1, 2, 4, 8].includes(gg.dim)) {
    throw new InvalidArgumentError(`codec.${name} must be a grid { dim: 1|2|4|8, points: Float32Array }`);
  }
  return gg;
}

/** Flat predictor weights in the core's layout (hwkv_store_codec.predictors): layer-0 means bk0 [Ck], bv0 [Cv], then per
 *  layer l >= 1, Wk [Ck, Ck] (nn.Linear [out, in]), bk [Ck], Wv [Cv, Ck+Cv], bv [Cv]; from W [(in+1), out] (x·W, last
 *  row the bias). */
function flattenPredictors(p: AquaPredictorTables, nLayer: number, Ck: number, Cv: number): Float32Array {
  if (p === null || typeof p !== 'object' || !Array.isArray(p.k) || !Array.isArray(p.v)) {
    throw new InvalidArgumentError('codec.predictors must be { nLayer, k: Float32Array[], v: Float32Array[] } (see ts/aqua)');
  }
  if (p.nLayer !== nLayer) throw new InvalidArgumentError(`codec.predictors are for ${p.nLayer} layers, the store has ${nLayer}`);
  const per = Ck * Ck + Ck + Cv * (Ck + Cv) + Cv;
  const out = new Float32Array(Ck + Cv + Math.max(0, nLayer - 1) * per);
  let o = 0;
  // layer 0: constant predictors k[0] [Ck], v[0] [Cv] (absent = zeros)
  for (const [w, n, what] of [[p.k[0], Ck, 'k[0]'], [p.v[0], Cv, 'v[0]']] as const) {
    if (w !== null && w !== undefined) {
      if (!(w instanceof Float32Array) || w.length !== n) throw new InvalidArgumentError(`codec.predictors.${what} (layer-0 mean) must be a Float32Array of ${n} floats or null`);
      out.set(w, o);
    }
    o += n;
  }
  const put = (w: Float32Array | null | undefined, inDim: number, outDim: number, what: string) => {
    if (!(w instanceof Float32Array) || w.length !== (inDim + 1) * outDim) {
      throw new InvalidArgumentError(`codec.predictors.${what} must be a Float32Array of ${(inDim + 1) * outDim} floats [(${inDim}+1), ${outDim}], got ${w instanceof Float32Array ? w.length : typeof w}`);
    }
    for (let j = 0; j < outDim; j++) for (let i = 0; i < inDim; i++) out[o + j * inDim + i] = w[i * outDim + j]!;
    o += inDim * outDim;
    out.set(w.subarray(inDim * outDim, (inDim + 1) * outDim), o);
    o += outDim;
  };
  for (let l = 1; l < nLayer; l++) {
    put(p.k[l], Ck, Ck, `k[${l}]`);
    put(p.v[l], Ck + Cv, Cv, `v[${l}]`);
  }
  return out;
}

/** Validates a KvCodec and encodes it for storeCreateCodec; null = exact store. */
export function encodeCodec(
  c: KvCodec,
  pageTokens: number,
  shape?: { nLayer: number; nKvHead: number; headDim: number; headDimV: number },
): { cd: Float64Array; grid: Float32Array | null; grid0: Float32Array | null; rope: Float64Array | null; predictors: Float32Array | null } | null {
  if (c === null || typeof c !== 'object') throw new InvalidArgumentError('codec must be an object');
  const type = CODEC_TYPES[c.type as keyof typeof CODEC_TYPES];
  if (type === undefined) throw new InvalidArgumentError(`codec.type must be 'none', 'uniform', 'higgs' or 'aqua', got ${JSON.stringify(c.type)}`);
  if (type === 0) return null;
  const sinks = requireInt('codec.sinks', c.sinks ?? 4, 0);
  const buffer = requireInt('codec.buffer', c.buffer ?? 128, 0);
  const chunk = requireInt('codec.chunkTokens', c.chunkTokens ?? Math.ceil(Math.max(64, pageTokens) / pageTokens) * pageTokens, 1);
  if (chunk % pageTokens !== 0) throw new InvalidArgumentError(`codec.chunkTokens (${chunk}) must be a multiple of pageTokens (${pageTokens})`);
  const seed = requireInt('codec.seed', c.seed ?? 0, 0);
  const cd = new Float64Array(12);
  const cacheBytes = c.cacheBytes ?? 0;
  if (typeof cacheBytes !== 'number' || !Number.isSafeInteger(cacheBytes) || cacheBytes < 0) {
    throw new InvalidArgumentError(`codec.cacheBytes must be a non-negative integer (0 = keep no decoded chunks), got ${String(cacheBytes)}`);
  }
  cd[11] = cacheBytes;
  let rope: Float64Array | null = null;
  let predictors: Float32Array | null = null;
  cd[0] = type;
  cd[2] = sinks;
  cd[3] = buffer;
  cd[4] = chunk;
  cd[9] = seed;
  let grid: Float32Array | null = null;
  let grid0: Float32Array | null = null;
  if (c.type === 'uniform') {
    const bits = requireInt('codec.bits', c.bits ?? 2, 1);
    if (bits > 8) throw new InvalidArgumentError(`codec.bits must be in 1..8 for 'uniform', got ${bits}`);
    cd[1] = bits;
  } else if (c.type === 'higgs' || c.type === 'aqua') {
    let g: HiggsGrid;
    if (c.grid !== undefined) {
      g = gridOf('grid', c.grid);
    } else if (c.type === 'aqua') {
      throw new InvalidArgumentError("codec.grid is required for 'aqua' (resolveKvCache in ts/aqua picks it from bits)");
    } else {
      const bits = requireInt('codec.bits', c.bits ?? 2, 2);
      if (bits > 4) throw new InvalidArgumentError(`codec.bits must be 2, 3 or 4 for 'higgs' (or pass codec.grid), got ${bits}`);
      g = gaussianGrid(2, 1 << (2 * bits));
    }
    const g0 = c.type === 'aqua' && c.layer0Exact ? null : c.layer0Grid === undefined ? (g.points.length / g.dim >= 256 && g.dim === 2 ? null : gaussianGrid(2, 256)) : c.layer0Grid === null ? null : gridOf('layer0Grid', c.layer0Grid);
    if (c.type === 'aqua') {
      if (!shape) throw new InvalidArgumentError("an 'aqua' codec needs the store shape");
      if (c.rope === undefined || c.rope === null) throw new InvalidArgumentError("codec.rope (the model's RoPE) is required for 'aqua': keys are compressed before RoPE");
      rope = encodeRope(c.rope);
      if (rope[0] !== shape.headDim) throw new InvalidArgumentError(`codec.rope.headDim (${rope[0]}) must equal the store's headDim (${shape.headDim})`);
      if (c.predictors === undefined) throw new InvalidArgumentError("codec.predictors are required for 'aqua' (calibrateAquaKV / loadAquaPredictors)");
      predictors = flattenPredictors(c.predictors, shape.nLayer, shape.nKvHead * shape.headDim, shape.nKvHead * shape.headDimV);
      if (c.layer0Exact) cd[10] = 1;
    }
    grid = g.points;
    cd[5] = g.dim;
    cd[6] = g.points.length / g.dim;
    if (g0 !== null) {
      grid0 = g0.points;
      cd[7] = g0.dim;
      cd[8] = g0.points.length / g0.dim;
    }
  }
  return { cd, grid, grid0, rope, predictors };
}
