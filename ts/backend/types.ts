/**
 * The one Backend interface every backend (native addon, WebAssembly, CUDA) presents to the rest of the
 * library. Shapes are row-major and head-major, as in core/include/hwkv.h:
 *   q/k/v of one token = [n_head, head_dim]; a run of tokens = [n_tok, n_head, head_dim].
 */

import type { HiggsGrid, QuantOps } from '../aqua/types.js';

export type BackendName = 'cuda' | 'native' | 'wasm';
export type BackendChoice = BackendName | 'auto';

export interface BackendStatus {
  name: BackendName;
  available: boolean;
  /** Why it is not available (and what to do), when available is false. */
  reason?: string;
  /** What was found: SIMD level, library path, GPU name and memory, versions. */
  details: Record<string, unknown>;
}

export interface CreateBackendOptions {
  /** Which backend to use. `auto` tries cuda, then native, then wasm. Defaults to `process.env.HOGWILD_BACKEND ?? 'auto'`. */
  backend?: BackendChoice;
  /** Called once per backend `auto` passed over, with the reason. Defaults to no-op. */
  onSkip?: (name: BackendName, reason: string) => void;
}

/** Rotary position embedding frequency schemes of real checkpoints. */
export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPosition: number }
  | { type: 'yarn'; factor: number; originalMaxPosition: number; betaFast?: number; betaSlow?: number; truncate?: boolean };

export interface RopeParams {
  headDim: number;
  /** Rotated dimensions (even, <= headDim). Defaults to `headDim`. */
  rotaryDim?: number;
  /** `neox` = Hugging Face rotate-half; `normal` = GGUF/Meta adjacent pairs. */
  style: 'neox' | 'normal';
  /** RoPE base. */
  theta: number;
  /** Defaults to `{ type: 'none' }`. */
  scaling?: RopeScaling;
}

export interface StoreParams {
  nLayer: number;
  nKvHead: number;
  headDim: number;
  /** Defaults to `headDim`. */
  headDimV?: number;
  /** Tokens per page. Defaults to 64. */
  pageTokens?: number;
  /** Stored element type. Defaults to `f32`. */
  dtype?: 'f32' | 'f16';
  /** Upper bound on page memory in bytes; 0 = unlimited. Defaults to 0. */
  maxBytes?: number;
  /** KV codec (compressed cache, see hwkv_store_codec in core/include/hwkv.h). Defaults to `{ type: 'none' }`. */
  codec?: KvCodec;
}

/**
 * Compressed KV cache. The first `sinks` tokens of every block (rounded up to a page) and the most recent
 * `buffer` tokens stay exact; every older chunk of `chunkTokens` tokens (a multiple of pageTokens) is
 * encoded once (all layers) and its pages are freed.
 *   uniform: KIVI-style min/max codes of `bits` bits (keys per channel over the chunk, values per token
 *            in groups of the largest divisor of nKvHead*headDimV <= 128), fp16 scale + zero per group.
 *   higgs:   HIGGS vector quantization (Hadamard rotation + Gaussian grid). `bits` 2/3/4 picks the grid
 *            gauss-d2-n16/n64/n256 (or pass `grid`); layer 0 uses `layer0Grid` (default gauss-d2-n256,
 *            null = the same grid).
 *   aqua:    AQUA-KV: keys (before RoPE) and values predicted from the previous layer's reconstructions by
 *            `predictors` (layer l >= 1: K from K̂_{l-1}; V from [K̂_l, V̂_{l-1}]), only the residual HIGGS-
 *            quantized with `grid` (or the grid of `bits`, see aquaGridFor in ts/aqua/cache.ts); layer 0 with
 *            `layer0Grid` (default gauss-d2-n256) or fp16 with `layer0Exact`. Needs `rope` (the model's).
 *            Usually built from a kvCache option by ts/aqua/cache.ts (resolveKvCache), not by hand.
 */
export interface KvCodec {
  type: 'none' | 'uniform' | 'higgs' | 'aqua';
  /** uniform: 1..8 (default 2); higgs: 2, 3 or 4 (default 2) when no grid is given; aqua: target bits per value incl. scales. */
  bits?: number;
  grid?: HiggsGrid;
  layer0Grid?: HiggsGrid | null;
  /** aqua: layer 0 stored as fp16 instead of layer0Grid. */
  layer0Exact?: boolean;
  /** aqua: predictor weights, per layer l >= 1: k[l] W [(Ck+1), Ck], v[l] W [(Ck+Cv+1), Cv] (x·W, last row bias);
   *  k[0] [Ck] / v[0] [Cv]: layer 0's constant predictor (calibration mean) or null (none). */
  predictors?: AquaPredictorTables;
  /** aqua: the model's RoPE (keys are un-rotated before encoding and rotated back on decode). */
  rope?: RopeParams;
  /** Default 4. */
  sinks?: number;
  /** Default 128. */
  buffer?: number;
  /** Default max(64, pageTokens) rounded up to a multiple of pageTokens. */
  chunkTokens?: number;
  /** HIGGS sign seed. Default 0. */
  seed?: number;
  /**
   * Bytes of decoded chunks kept between forwards (default 0: every forward decodes each compressed chunk once per
   * layer). A kept chunk costs its decoded size (as exact pages) on top of its codes and skips all later decodes —
   * for 'aqua' the predictor products, which dominate a decode step at long context. First come, first kept.
   */
  cacheBytes?: number;
}

/** The weights an 'aqua' codec needs (a subset of ts/aqua's AquaPredictors). */
export interface AquaPredictorTables {
  nLayer: number;
  k: ReadonlyArray<Float32Array | null>;
  v: ReadonlyArray<Float32Array | null>;
}

/** The stored codes of one compressed chunk of one layer (KvStore.codecChunk; tests and tools). */
export interface CodecChunk {
  /** block-local position of the chunk's first token */
  start: number;
  nTok: number;
  codes: Uint32Array;
  /** HIGGS norms / uniform scales (fp16 bits); layer-0 fp16 values when `exact` */
  scales: Uint16Array;
  zeros: Uint16Array;
  exact: boolean;
}

/** Memory held by compressed chunks (codes + fp16 scales/zeros). */
export interface CodecStats {
  bytesCompressed: number;
  tokensCompressed: number;
  /** tokens x nLayer x nKvHead x (headDim + headDimV) */
  valuesCompressed: number;
  chunks: number;
  /** Decode scratch held by the store (rows of one layer of the compressed chunks; grow-only), the AQUA chain
   *  state (one layer of pre-RoPE float K̂/V̂ per compressed chunk) and decoded chunks kept under cacheBytes. */
  bytesScratch: number;
  /** 8 * bytesCompressed / valuesCompressed (NaN when nothing is compressed) */
  bitsPerValue: number;
}

export interface StoreStats {
  bytesReserved: number;
  bytesInUse: number;
  pagesInUse: number;
  pagesFree: number;
  blocksLive: number;
}

/** One batch of attention queries: sequence s sees `views[s]` and owns `queries[s]` rows. */
export interface AttentionBatch {
  /** Ordered block ids of each sequence's view. */
  views: ReadonlyArray<ReadonlyArray<number>>;
  /** Virtual positions of each sequence's query rows (rows are taken from q in sequence order). */
  positions: ReadonlyArray<ReadonlyArray<number> | Int32Array>;
}

export interface KvStore {
  readonly params: Required<StoreParams>;
  stats(): StoreStats;
  /** Compressed-cache memory (all zero without a codec). */
  codecStats(): CodecStats;
  /** The codes of the compressed chunk holding `token` of `block`, one layer, keys or values. */
  codecChunk?(block: number, token: number, layer: number, which: 'k' | 'v'): CodecChunk;
  createBlock(): number;
  freeBlock(block: number): void;
  blockLength(block: number): number;
  /** k: [nLayer, nTok, nKvHead, headDim], v: [nLayer, nTok, nKvHead, headDimV]. With rope, keys are rotated to their block-local positions. */
  append(block: number, nTok: number, k: Float32Array, v: Float32Array, rope?: RopeParams | null): void;
  truncate(block: number, newLength: number): void;
  /** Append a copy of src to dst; with rope the copied keys are rotated by +length(dst). */
  merge(dst: number, src: number, rope?: RopeParams | null): void;
  /** One layer, tokens [start, start+nTok): k [nTok, nKvHead, headDim], v [nTok, nKvHead, headDimV]. */
  read(block: number, layer: number, start?: number, nTok?: number): { k: Float32Array; v: Float32Array };
  /** One layer of a view as one sequence; with rope, keys at absolute positions of the view. */
  readView(blocks: ReadonlyArray<number>, layer: number, rope?: RopeParams | null): { k: Float32Array; v: Float32Array };
  /**
   * Attention with per-block query rotation. q: [nQ, nHead, headDim] un-rotated, rows in sequence order.
   * Returns out [nQ, nHead, headDimV] and lse [nQ, nHead] (natural log; -Infinity where nothing is visible).
   */
  attention(
    layer: number,
    rope: RopeParams,
    batch: AttentionBatch,
    q: Float32Array,
    nHead: number,
    scale: number,
  ): { out: Float32Array; lse: Float32Array };
  dispose(): void;
}

export interface Backend {
  readonly name: BackendName;
  /** Parsed build/device information of the backend. */
  readonly details: Record<string, unknown>;
  ropeInvFreq(p: RopeParams): { invFreq: Float32Array; attentionFactor: number };
  /** In place: x [nTok, nHead, headDim] rotated at positions[t]. */
  ropeApply(p: RopeParams, x: Float32Array, nTok: number, nHead: number, positions: ArrayLike<number>): void;
  packBits(codes: Uint16Array | ArrayLike<number>, bits: number): Uint32Array;
  unpackBits(words: Uint32Array, bits: number, n: number): Uint16Array;
  /** In place on rows of length n (a power of two): x <- scale * H_n x. scale defaults to 1. */
  fwht(x: Float32Array, n: number, scale?: number): void;
  createStore(p: StoreParams): KvStore;
  /** CPU backends: force the portable scalar kernels (true) or the best SIMD ones (false). */
  setForceScalar?(force: boolean): void;
  /** AQUA-KV quantizers and calibration algebra (core/include/hwkv_quant.h), where the backend has them. */
  readonly quant?: QuantOps;
  dispose(): void;
}
