/**
 * AQUA-KV quantizer types (the TypeScript face of core/include/hwkv_quant.h).
 *
 * Shapes are row-major: x [nTok, channels], one row per token, channels = all KV heads of one layer,
 * head-major. Codes are one continuous LSB-first bit stream in uint32 words; scales/zeros are fp16 bit
 * patterns (Uint16Array).
 */

/** A vector-quantization grid: `n` points of dimension `dim`, float32 [n, dim]. */
export interface HiggsGrid {
  /** e.g. "gauss-d2-n16" */
  name?: string;
  dim: 1 | 2 | 4 | 8;
  /** float32 [n, dim]; n = points.length / dim must be a power of two in 2..65536 */
  points: Float32Array;
}

export interface HiggsConfig {
  /** C: values per token (all KV heads of one layer, head-major). */
  channels: number;
  /** Hadamard group g (power of two dividing channels). Default: the largest power of two <= 1024 dividing channels. */
  group?: number;
  grid: HiggsGrid;
  /** Random ±1 sign flips per channel before the rotation. Default true. */
  signs?: boolean;
  /** Seed of the sign flips (uint32). Default 0. */
  seed?: number;
}

export interface HiggsEncoded {
  nTok: number;
  /** ceil(nTok·(C/d)·log2(n)/32) words */
  codes: Uint32Array;
  /** fp16 [nTok, C/g]: the L2 norm of each (token, group) */
  scales: Uint16Array;
}

export interface UniformConfig {
  channels: number;
  /** 1..8 (2, 3, 4, 8 usual) */
  bits: number;
  /** 'token': groups of `group` channels within a token; 'channel': groups of `group` tokens within a channel (KIVI keys). */
  axis: 'token' | 'channel';
  group: number;
}

export interface UniformEncoded {
  nTok: number;
  /** ceil(nTok·C·bits/32) words, codes in [nTok, C] order */
  codes: Uint32Array;
  /** fp16 per group: axis 'token' [nTok, C/group], axis 'channel' [ceil(nTok/group), C] */
  scales: Uint16Array;
  zeros: Uint16Array;
}

/** Exact storage of nTok tokens under a configuration. */
export interface QuantSize {
  codeWords: number;
  /** number of fp16 values stored besides the codes (scales, plus zeros for uniform) */
  halfValues: number;
  /** 4·codeWords + 2·halfValues */
  bytes: number;
  /** 8·bytes / (nTok·channels) (NaN for nTok = 0) */
  bitsPerValue: number;
}

/** Normal equations of a ridge regression with an implicit bias column, accumulated in double. */
export interface RidgeAccumulator {
  /** inputs per row */
  p: number;
  /** targets per row */
  q: number;
  /** rows accumulated so far */
  rows: number;
  /** [(p+1)², symmetric] */
  xtx: Float64Array;
  /** [(p+1)·q] */
  xty: Float64Array;
  /** [q]: sum of squared targets */
  yy: Float64Array;
}

export interface QuantOps {
  higgsSize(cfg: HiggsConfig, nTok: number): QuantSize;
  /** x [nTok, C] -> codes + scales. */
  higgsEncode(cfg: HiggsConfig, x: Float32Array, nTok?: number): HiggsEncoded;
  /** -> [nTok, C]; with `out` and accumulate = true the reconstruction is added to out (prediction + residual). */
  higgsDecode(cfg: HiggsConfig, enc: HiggsEncoded, out?: Float32Array, accumulate?: boolean): Float32Array;
  /** Nearest grid point of each d-dim piece of z (the search HIGGS uses). */
  gridNearest(grid: HiggsGrid, z: Float32Array): Uint16Array;
  /** The ±1 sign vector of a seed. */
  higgsSigns(seed: number, channels: number): Float32Array;

  uniformSize(cfg: UniformConfig, nTok: number): QuantSize;
  uniformEncode(cfg: UniformConfig, x: Float32Array, nTok?: number): UniformEncoded;
  uniformDecode(cfg: UniformConfig, enc: UniformEncoded, out?: Float32Array, accumulate?: boolean): Float32Array;

  ridgeCreate(p: number, q: number): RidgeAccumulator;
  /** Adds rows x [n, p], y [n, q] (n defaults to y.length / q). */
  ridgeAccumulate(acc: RidgeAccumulator, x: Float32Array, y: Float32Array, n?: number): void;
  /** W [(p+1), q] (last row = bias) solving (XᵀX + λ·mean(diag)·I) W = XᵀY; lambdaRel defaults to 1e-3. */
  ridgeSolve(acc: RidgeAccumulator, lambdaRel?: number): Float32Array;
  /** y [n, q] = x [n, p] · W[0:p] + W[p] for a W [(p+1), q] as ridgeSolve returns it (the predictions). */
  linearApply(x: Float32Array, w: Float32Array, n: number, p: number, q: number): Float32Array;
}
