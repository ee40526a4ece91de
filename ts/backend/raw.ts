/**
 * RawApi: the C ABI of core/include/hwkv.h as seen from JavaScript, one method per table entry.
 *
 * Implemented three times, all thin (no validation, no policy):
 *   - native: bindings/napi/addon.cpp  (typed arrays passed by pointer, zero copy)
 *   - cuda:   the same addon, bound to the table of the dlopen'ed CUDA library
 *   - wasm:   ts/backend/wasm.ts over bindings/wasm/exports.cpp (typed arrays copied through the heap)
 *
 * Everything above (validation, typed errors, shapes) lives once in ts/backend/backend.ts.
 *
 * Conventions
 *   - Every call returns the hwkv_status code (0 = OK); on failure lastError() has the message.
 *   - Output arguments are caller-allocated typed arrays, written in place.
 *   - In-place arguments (ropeApply x, fwht x) are read and written.
 *   - RoPE parameters travel as a Float64Array(ROPE_PARAMS_LEN) in hwkv_rope_params field order,
 *     store parameters as a Float64Array(STORE_PARAMS_LEN) in hwkv_store_params field order.
 *   - `null` for an optional pointer argument (rope, lse, k or v of blockRead/viewRead).
 */

/** [head_dim, rotary_dim, style, scaling, theta, factor, low_freq_factor, high_freq_factor,
 *   original_max_position, beta_fast, beta_slow, yarn_truncate] */
export const ROPE_PARAMS_LEN = 12;
/** [n_layer, n_kv_head, head_dim, head_dim_v, page_tokens, dtype, max_bytes] */
export const STORE_PARAMS_LEN = 7;
/** [bytes_reserved, bytes_in_use, pages_in_use, pages_free, blocks_live] */
export const STORE_STATS_LEN = 5;

/** [n_layer, n_embd, n_head, n_kv_head, head_dim, n_ff, n_vocab, flags, rms_norm_eps, attn_factor,
 *   attn_scale, n_threads, ...rope (ROPE_PARAMS_LEN values)] — hwkv_model_params field order */
export const MODEL_PARAMS_LEN = 12 + ROPE_PARAMS_LEN;
/** [weight_bytes, scratch_bytes, n_tensors, uploads_pending, mapped, n_threads] */
export const MODEL_INFO_LEN = 6;

/** An opaque store handle (a pointer value on native and wasm). */
export type RawStore = unknown;
/** An opaque model handle. */
export type RawModel = unknown;

/**
 * hwkv_model_api (core/include/hwkv_model.h) as JS methods. Tensor descriptors travel as parallel arrays
 * (one entry per tensor): names, types, nDims, ne (4 per tensor, outermost first), files, offsets, nbytes.
 */
export interface RawModelApi {
  modelCreate(
    mp: Float64Array,
    names: string[],
    types: Int32Array,
    nDims: Int32Array,
    ne: Float64Array,
    files: string[],
    offsets: Float64Array,
    nbytes: Float64Array,
    mode: number,
    out: RawModel[],
  ): number;
  modelFree(m: RawModel): void;
  /** UPLOAD mode: bytes [offset, offset + data.length) of tensor `index`. */
  modelUpload(m: RawModel, index: number, data: Uint8Array, offset: number): number;
  modelInfo(m: RawModel, out: Float64Array): number;
  /** Synchronous forward. logits may be null for logitsMode NONE. */
  modelForward(
    m: RawModel,
    s: RawStore,
    logitsMode: number,
    viewIndptr: Int32Array,
    viewBlocks: Int32Array,
    tokIndptr: Int32Array,
    tokens: Int32Array,
    logits: Float32Array | null,
  ): number;
  /**
   * Optional: the same forward run off the JS thread (native addon: a worker thread), resolving to the
   * status. The arrays must not be touched until it resolves.
   */
  modelForwardAsync?(
    m: RawModel,
    s: RawStore,
    logitsMode: number,
    viewIndptr: Int32Array,
    viewBlocks: Int32Array,
    tokIndptr: Int32Array,
    tokens: Int32Array,
    logits: Float32Array | null,
  ): Promise<number>;
  modelSetThreads(m: RawModel, nThreads: number): number;
  /**
   * K/V tap (hwkv_model_api.model_capture_kv): one sequence at positions 0..n-1 in a private store; kPre (keys
   * before RoPE) and v are [nLayer, n, nKvHead*headDim]. Absent, or UNSUPPORTED, where the backend has none.
   */
  modelCaptureKv?(m: RawModel, tokens: Int32Array, kPre: Float32Array, v: Float32Array): number;
}

/** [channels, group, dim, n_points, use_signs, seed] — hwkv_higgs_params field order (hwkv_quant.h) */
export const HIGGS_PARAMS_LEN = 6;
/** [channels, bits, axis, group] — hwkv_uniform_params field order */
export const UNIFORM_PARAMS_LEN = 4;

/**
 * hwkv_quant_api (core/include/hwkv_quant.h) as JS methods. Counts implied by the parameters are checked by
 * the bindings against the typed-array lengths; `codes` lengths are passed as n_words; `idx.length` is the
 * number of pieces of gridNearest and `signs.length` the channel count of higgsSigns. Size queries write
 * [n_words, n_scales] into out.
 */
export interface RawQuantApi {
  higgsSize(hp: Float64Array, nTok: number, out: Float64Array): number;
  higgsEncode(hp: Float64Array, grid: Float32Array, x: Float32Array, nTok: number, codes: Uint32Array, scales: Uint16Array): number;
  higgsDecode(hp: Float64Array, grid: Float32Array, codes: Uint32Array, scales: Uint16Array, nTok: number, y: Float32Array, accumulate: boolean): number;
  gridNearest(grid: Float32Array, nPoints: number, dim: number, z: Float32Array, idx: Uint16Array): number;
  higgsSigns(seed: number, signs: Float32Array): number;
  uniformSize(up: Float64Array, nTok: number, out: Float64Array): number;
  uniformEncode(up: Float64Array, x: Float32Array, nTok: number, codes: Uint32Array, scales: Uint16Array, zeros: Uint16Array): number;
  uniformDecode(up: Float64Array, codes: Uint32Array, scales: Uint16Array, zeros: Uint16Array, nTok: number, y: Float32Array, accumulate: boolean): number;
  ridgeAccumulate(x: Float32Array, y: Float32Array, n: number, p: number, q: number, xtx: Float64Array, xty: Float64Array, yy: Float64Array | null): number;
  ridgeSolve(xtx: Float64Array, xty: Float64Array, p: number, q: number, lambdaRel: number, w: Float32Array): number;
  /** y[n, q] = x[n, p] · w[0:p] + w[p] (hwkv_quant_api.linear_apply) */
  linearApply(x: Float32Array, n: number, p: number, q: number, w: Float32Array, y: Float32Array): number;
}

export interface RawApi {
  lastError(): string;
  /** JSON text, see hwkv_api.build_info */
  buildInfo(): string;

  ropeInvFreq(rp: Float64Array, invFreq: Float32Array, attentionFactor: Float32Array): number;
  ropeApply(rp: Float64Array, x: Float32Array, nTok: number, nHead: number, pos: Int32Array): number;

  packBits(codes: Uint16Array, bits: number, words: Uint32Array): number;
  unpackBits(words: Uint32Array, bits: number, codes: Uint16Array): number;

  fwht(x: Float32Array, rows: number, n: number, scale: number): number;

  /** out[0] receives the handle */
  storeCreate(sp: Float64Array, out: RawStore[]): number;
  storeFree(s: RawStore): void;
  storeStats(s: RawStore, out: Float64Array): number;
  /** KV codec store (optional member: absent on builds without it). codec = [type, bits, sinks, buffer,
   *  chunk_tokens, grid_dim, grid_n, grid0_dim, grid0_n, seed, layer0_exact]; out[0] receives the handle;
   *  rope and predictors for 'aqua' (hwkv_store_codec). */
  storeCreateCodec?(
    sp: Float64Array,
    codec: Float64Array,
    grid: Float32Array | null,
    grid0: Float32Array | null,
    out: RawStore[],
    rope?: Float64Array | null,
    predictors?: Float32Array | null,
  ): number;
  /** info = [start, n_tok, n_words, n_scales, n_zeros, exact]; buffers may be null (sizes only). */
  storeCodecChunk?(
    s: RawStore,
    block: number,
    token: number,
    layer: number,
    which: number,
    codes: Uint32Array | null,
    scales: Uint16Array | null,
    zeros: Uint16Array | null,
    info: Float64Array,
  ): number;
  /** out = [bytes_compressed, tokens_compressed, values_compressed, chunks, bytes_scratch] */
  storeCodecStats?(s: RawStore, out: Float64Array): number;

  blockCreate(s: RawStore, out: Int32Array): number;
  blockFree(s: RawStore, block: number): number;
  blockLen(s: RawStore, block: number, out: Int32Array): number;
  blockAppend(s: RawStore, block: number, nTok: number, k: Float32Array, v: Float32Array, rp: Float64Array | null): number;
  blockTruncate(s: RawStore, block: number, newLen: number): number;
  blockMerge(s: RawStore, dst: number, src: number, rp: Float64Array | null): number;
  blockRead(s: RawStore, block: number, layer: number, start: number, nTok: number, k: Float32Array | null, v: Float32Array | null): number;
  viewRead(s: RawStore, blocks: Int32Array, layer: number, rp: Float64Array | null, k: Float32Array | null, v: Float32Array | null, total: number): number;
  attnViews(
    s: RawStore,
    layer: number,
    rp: Float64Array,
    viewIndptr: Int32Array,
    viewBlocks: Int32Array,
    qIndptr: Int32Array,
    qPos: Int32Array,
    q: Float32Array,
    nHead: number,
    scale: number,
    out: Float32Array,
    lse: Float32Array | null,
  ): number;

  /** CPU core only: true forces the scalar paths (tests compare both). */
  setSimd?(forceScalar: boolean): void;

  /** The model engine, where the backend has one (hwkv_cpu_model_api / hwkv_cuda_model_api). */
  model?: RawModelApi;

  /** The quantizers and calibration algebra, where the backend has them (hwkv_cpu_quant_api). */
  quant?: RawQuantApi;
}
