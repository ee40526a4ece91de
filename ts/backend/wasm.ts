/**
 * The WebAssembly backend's RawApi: the CPU core compiled with emscripten (scripts/build-wasm.sh ->
 * prebuilds/wasm/hwkv.cjs + hwkv.wasm), called through the flat exports of bindings/wasm/exports.cpp.
 *
 * Typed arrays cannot be passed to wasm by pointer, so every call copies its arguments into one scratch
 * arena in the wasm heap, calls the export, and copies outputs (and in-place arguments) back on success.
 * Outputs are copied in as well, so elements the core leaves unwritten keep the caller's values exactly as
 * with the native addon. Memory growth replaces the heap's ArrayBuffer, so heap views are re-read after
 * every call, never cached across one.
 *
 * The model engine (RawApi.model) is UPLOAD-only here: there is no file system, so modelCreate refuses FILE
 * mode and the loader streams the weights into modelUpload. There is no modelForwardAsync (one thread).
 *
 * This module is environment-neutral except loadWasmRaw(), which finds the committed artifacts in the
 * package (Node only; its Node imports are dynamic so that the browser bundle, ts/wasm-entry.ts, never
 * pulls them in).
 */
import { HIGGS_PARAMS_LEN, MODEL_INFO_LEN, MODEL_PARAMS_LEN, UNIFORM_PARAMS_LEN } from './raw.js';
import type { RawApi, RawModel, RawModelApi, RawQuantApi, RawStore } from './raw.js';

/** The largest wasm heap the module may grow to (-sMAXIMUM_MEMORY in scripts/build-wasm.sh). */
export const WASM_HEAP_LIMIT_BYTES = 4 * 1024 * 1024 * 1024;
const HEAP_LIMIT_TEXT = '4 GB';

const ERR_INVALID_ARGUMENT = 1;
const ERR_OUT_OF_MEMORY = 3;
const ERR_UNSUPPORTED = 4;
const ERR_INTERNAL = 6;

/** What the emscripten glue (createHwkvModule) resolves to: the parts this file uses. */
export interface HwkvWasmModule {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _hwkv_wasm_last_error(): number;
  _hwkv_wasm_build_info(): number;
  _hwkv_wasm_set_simd(forceScalar: number): void;
  _hwkv_wasm_rope_inv_freq(rp: number, invFreq: number, attentionFactor: number): number;
  _hwkv_wasm_rope_apply(rp: number, x: number, nTok: number, nHead: number, pos: number): number;
  _hwkv_wasm_pack_bits(codes: number, n: number, bits: number, words: number, nWords: number): number;
  _hwkv_wasm_unpack_bits(words: number, nWords: number, bits: number, codes: number, n: number): number;
  _hwkv_wasm_fwht(x: number, rows: number, n: number, scale: number): number;
  _hwkv_wasm_store_create(sp: number, outSlot: number): number;
  _hwkv_wasm_store_free(s: number): void;
  _hwkv_wasm_store_stats(s: number, out: number): number;
  _hwkv_wasm_store_create_codec(sp: number, cd: number, grid: number, grid0: number, outSlot: number, rp: number, preds: number, nPred: number): number;
  _hwkv_wasm_store_codec_chunk(s: number, block: number, token: number, layer: number, which: number, codes: number, scales: number, zeros: number, info: number): number;
  _hwkv_wasm_store_codec_stats(s: number, out: number): number;
  _hwkv_wasm_block_create(s: number, out: number): number;
  _hwkv_wasm_block_free(s: number, block: number): number;
  _hwkv_wasm_block_len(s: number, block: number, out: number): number;
  _hwkv_wasm_block_append(s: number, block: number, nTok: number, k: number, v: number, rp: number): number;
  _hwkv_wasm_block_truncate(s: number, block: number, newLen: number): number;
  _hwkv_wasm_block_merge(s: number, dst: number, src: number, rp: number): number;
  _hwkv_wasm_block_read(s: number, block: number, layer: number, start: number, nTok: number, k: number, v: number): number;
  _hwkv_wasm_view_read(s: number, blocks: number, nBlocks: number, layer: number, rp: number, k: number, v: number, total: number): number;
  _hwkv_wasm_attn_views(
    s: number,
    layer: number,
    rp: number,
    nSeq: number,
    viewIndptr: number,
    viewBlocks: number,
    qIndptr: number,
    qPos: number,
    q: number,
    nHead: number,
    scale: number,
    out: number,
    lse: number,
  ): number;
  // Model engine (absent from artifacts built before it existed).
  _hwkv_wasm_model_create?(
    mp: number,
    nTensors: number,
    namesBlob: number,
    nameOffsets: number,
    types: number,
    nDims: number,
    ne: number,
    nbytes: number,
    mode: number,
    outSlot: number,
  ): number;
  _hwkv_wasm_model_free?(m: number): void;
  _hwkv_wasm_model_upload?(m: number, index: number, data: number, offset: number, nbytes: number): number;
  _hwkv_wasm_model_info?(m: number, out: number): number;
  _hwkv_wasm_model_forward?(
    m: number,
    s: number,
    nSeq: number,
    logitsMode: number,
    viewIndptr: number,
    viewBlocks: number,
    tokIndptr: number,
    tokens: number,
    logits: number,
    nLogits: number,
  ): number;
  _hwkv_wasm_model_set_threads?(m: number, nThreads: number): number;
  _hwkv_wasm_model_capture_kv?(m: number, tokens: number, nTok: number, kPre: number, v: number): number;
  // Quantizers (hwkv_quant.h; absent from artifacts built before them).
  _hwkv_wasm_higgs_size?(hp: number, nTok: number, out: number): number;
  _hwkv_wasm_higgs_encode?(hp: number, grid: number, x: number, nTok: number, codes: number, nWords: number, scales: number): number;
  _hwkv_wasm_higgs_decode?(hp: number, grid: number, codes: number, nWords: number, scales: number, nTok: number, y: number, acc: number): number;
  _hwkv_wasm_grid_nearest?(grid: number, nPoints: number, dim: number, z: number, m: number, idx: number): number;
  _hwkv_wasm_higgs_signs?(seed: number, channels: number, signs: number): number;
  _hwkv_wasm_uniform_size?(up: number, nTok: number, out: number): number;
  _hwkv_wasm_uniform_encode?(up: number, x: number, nTok: number, codes: number, nWords: number, scales: number, zeros: number): number;
  _hwkv_wasm_uniform_decode?(up: number, codes: number, nWords: number, scales: number, zeros: number, nTok: number, y: number, acc: number): number;
  _hwkv_wasm_ridge_accumulate?(x: number, y: number, n: number, p: number, q: number, xtx: number, xty: number, yy: number): number;
  _hwkv_wasm_ridge_solve?(xtx: number, xty: number, p: number, q: number, lambdaRel: number, w: number): number;
  _hwkv_wasm_linear_apply?(x: number, n: number, p: number, q: number, w: number, y: number): number;
}

/** The emscripten MODULARIZE factory exported by hwkv.cjs. */
export type HwkvModuleFactory = (moduleArg: Record<string, unknown>) => Promise<HwkvWasmModule>;

type Buf = Float32Array | Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;

/** Argument passing modes: IN is copied into the heap; OUT (output or in-place) is also copied back on success. */
const IN = 0;
const OUT = 1;

/** Scratch memory up to this size is kept between calls; bigger arenas are freed after their call. */
const KEEP_SCRATCH_BYTES = 4 << 20;
const ALIGN = 16;

/** Largest single allocation attempted (the wasm32 address space is 4 GiB). */
const MAX_ALLOC_BYTES = 0xffff0000;

/** hwkv_wasm_model_create's status when it cannot allocate the descriptor array (bindings/wasm/exports.cpp). */
const DESC_ALLOC_FAILED = -3;
const MODEL_FILE = 0;
const LOGITS_LAST = 1;
const LOGITS_ALL = 2;

function alignUp(bytes: number): number {
  return Math.ceil(bytes / ALIGN) * ALIGN;
}

function bytesOf(a: Buf): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;
}

class WasmRaw implements RawApi {
  private readonly m: HwkvWasmModule;
  /** Message of a failure detected on the JS side (scratch allocation, trap); null = ask the core. */
  private jsError: string | null = null;
  /** Set once the instance trapped: its heap may be inconsistent, so every later call fails. */
  private dead: string | null = null;
  /** The core's last failure was out-of-memory: its message gets the wasm heap state appended. */
  private oomNote = false;
  private scratchPtr = 0;
  private scratchCap = 0;
  // Per-call plan (reused to avoid garbage).
  private readonly bufs: (Buf | null)[] = [];
  private readonly modes: number[] = [];
  private readonly ptrs: number[] = [];
  /** Live model handles -> n_vocab (modelFree of anything else is a no-op; other calls reject it). */
  private readonly models = new Map<number, number>();
  /** n_layer * n_kv_head * head_dim of each live model (K/V tap sizes). */
  private readonly modelKv = new Map<number, number>();

  /** The model engine (hwkv_cpu_model_api), UPLOAD mode only. */
  readonly model?: RawModelApi;
  /** The quantizers (hwkv_cpu_quant_api). */
  readonly quant?: RawQuantApi;

  constructor(m: HwkvWasmModule) {
    this.m = m;
    if (typeof m._hwkv_wasm_model_create === 'function') {
      this.model = {
        modelCreate: (mp, names, types, nDims, ne, files, offsets, nbytes, mode, out) =>
          this.modelCreate(mp, names, types, nDims, ne, files, offsets, nbytes, mode, out),
        modelFree: (h) => this.modelFree(h),
        modelUpload: (h, index, data, offset) => this.modelUpload(h, index, data, offset),
        modelInfo: (h, out) => this.modelInfo(h, out),
        modelForward: (h, s, logitsMode, viewIndptr, viewBlocks, tokIndptr, tokens, logits) =>
          this.modelForward(h, s, logitsMode, viewIndptr, viewBlocks, tokIndptr, tokens, logits),
        modelSetThreads: (h, nThreads) => this.modelSetThreads(h, nThreads),
        ...(typeof m._hwkv_wasm_model_capture_kv === 'function'
          ? { modelCaptureKv: (h: RawModel, tokens: Int32Array, kPre: Float32Array, v: Float32Array) => this.modelCaptureKv(h, tokens, kPre, v) }
          : {}),
      };
    }
    if (typeof m._hwkv_wasm_higgs_size === 'function') {
      this.quant = {
        higgsSize: (hp, nTok, out) => this.sizeQuery('higgs_size', hp, HIGGS_PARAMS_LEN, nTok, out, this.m._hwkv_wasm_higgs_size!),
        higgsEncode: (hp, grid, x, nTok, codes, scales) => this.higgsEncode(hp, grid, x, nTok, codes, scales),
        higgsDecode: (hp, grid, codes, scales, nTok, y, acc) => this.higgsDecode(hp, grid, codes, scales, nTok, y, acc),
        gridNearest: (grid, nPoints, dim, z, idx) => this.gridNearest(grid, nPoints, dim, z, idx),
        higgsSigns: (seed, signs) => this.higgsSigns(seed, signs),
        uniformSize: (up, nTok, out) => this.sizeQuery('uniform_size', up, UNIFORM_PARAMS_LEN, nTok, out, this.m._hwkv_wasm_uniform_size!),
        uniformEncode: (up, x, nTok, codes, scales, zeros) => this.uniformEncode(up, x, nTok, codes, scales, zeros),
        uniformDecode: (up, codes, scales, zeros, nTok, y, acc) => this.uniformDecode(up, codes, scales, zeros, nTok, y, acc),
        ridgeAccumulate: (x, y, n, p, q, xtx, xty, yy) => this.ridgeAccumulate(x, y, n, p, q, xtx, xty, yy),
        ridgeSolve: (xtx, xty, p, q, lambdaRel, w) => this.ridgeSolve(xtx, xty, p, q, lambdaRel, w),
        linearApply: (x, n, p, q, w, y) => this.linearApply(x, n, p, q, w, y),
      };
    }
  }

  // ---- plumbing ------------------------------------------------------------------------------------

  /**
   * Run one export. `bufs`/`modes` list the typed-array arguments (null = NULL pointer); `extraBytes`
   * reserves additional raw slots (store handle, scalar outputs) placed after them. `invoke` receives the
   * heap addresses in the same order (buffers first, then extras) and returns the status.
   */
  private call(fn: string, extraBytes: number, invoke: (p: number[]) => number, after?: (p: number[]) => void): number {
    if (this.dead !== null) {
      this.jsError = `${fn}: the WebAssembly instance is unusable after an earlier failure (${this.dead}); create a new backend`;
      return ERR_INTERNAL;
    }
    const { bufs, modes, ptrs } = this;
    const n = bufs.length;
    // Layout.
    let total = 0;
    ptrs.length = 0;
    for (let i = 0; i < n; i++) {
      const b = bufs[i]!;
      ptrs.push(b === null ? -1 : total);
      if (b !== null) total += alignUp(b.byteLength);
    }
    const extraOff = total;
    total += alignUp(extraBytes);
    if (total === 0) total = ALIGN;

    // (Sizes may exceed 2^31: plain arithmetic only, no 32-bit bitwise operators.)
    const base = total <= MAX_ALLOC_BYTES ? this.arena(total) : 0;
    if (base === 0) {
      this.clearPlan();
      const heap = this.m.HEAPU8.length;
      this.jsError =
        `WASM heap exhausted (limit ${HEAP_LIMIT_TEXT}): ${fn} could not allocate ${total} bytes of scratch memory ` +
        `for its arguments (heap is ${mib(heap)}; free KV stores or pass smaller batches)`;
      return ERR_OUT_OF_MEMORY;
    }
    try {
      let heap = this.m.HEAPU8;
      for (let i = 0; i < n; i++) {
        const b = bufs[i]!;
        if (b === null) {
          ptrs[i] = 0;
        } else {
          ptrs[i] = base + ptrs[i]!;
          heap.set(bytesOf(b), ptrs[i]!);
        }
      }
      const extraPtr = base + extraOff;
      for (let e = 0; e < extraBytes; e += 4) new DataView(heap.buffer).setUint32(extraPtr + e, 0, true);
      ptrs.push(extraPtr);

      let status: number;
      try {
        status = invoke(ptrs);
      } catch (e) {
        // A trap (abort, unreachable, uncaught C++ exception): the heap may be half-updated.
        const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        this.dead = `${fn} trapped: ${why}`;
        this.jsError = `${fn}: WebAssembly trap (${why}); the instance cannot be used any more`;
        return ERR_INTERNAL;
      }
      if (status !== 0) {
        // A failure reported by the core replaces any earlier JS-side message (as hwkv_last_error() does).
        this.jsError = null;
        this.oomNote = status === ERR_OUT_OF_MEMORY;
        return status;
      }
      heap = this.m.HEAPU8; // the heap may have grown (new ArrayBuffer) during the call
      for (let i = 0; i < n; i++) {
        const b = bufs[i];
        if (b && modes[i] !== IN) bytesOf(b).set(heap.subarray(ptrs[i]!, ptrs[i]! + b.byteLength));
      }
      after?.(ptrs);
      return 0;
    } finally {
      this.clearPlan();
      if (this.dead === null) this.release(base); // after a trap the allocator itself may be corrupt
    }
  }

  /** True once the instance trapped and can no longer be used. */
  get isDead(): boolean {
    return this.dead !== null;
  }

  private add(b: Buf | null, mode: number): void {
    this.bufs.push(b);
    this.modes.push(mode);
  }

  private clearPlan(): void {
    this.bufs.length = 0;
    this.modes.length = 0;
  }

  private arena(bytes: number): number {
    if (bytes <= this.scratchCap) return this.scratchPtr;
    if (bytes <= KEEP_SCRATCH_BYTES) {
      const cap = Math.min(KEEP_SCRATCH_BYTES, Math.max(bytes, 64 * 1024));
      const p = this.m._malloc(cap) >>> 0;
      if (p === 0) return 0;
      if (this.scratchPtr !== 0) this.m._free(this.scratchPtr);
      this.scratchPtr = p;
      this.scratchCap = cap;
      return p;
    }
    return this.m._malloc(bytes) >>> 0;
  }

  private release(ptr: number): void {
    if (ptr !== this.scratchPtr) this.m._free(ptr);
  }

  private cString(ptr: number): string {
    const heap = this.m.HEAPU8;
    const p = ptr >>> 0;
    if (p === 0) return '';
    let end = p;
    while (end < heap.length && heap[end] !== 0) end++;
    return new TextDecoder().decode(heap.subarray(p, end));
  }

  private u32(ptr: number): number {
    return new DataView(this.m.HEAPU8.buffer).getUint32(ptr, true);
  }

  // ---- RawApi ----------------------------------------------------------------------------------------

  lastError(): string {
    if (this.jsError !== null) return this.jsError;
    if (this.dead !== null) return this.dead;
    let msg = this.cString(this.m._hwkv_wasm_last_error());
    if (this.oomNote) {
      msg += ` (WebAssembly heap ${mib(this.m.HEAPU8.length)} of ${HEAP_LIMIT_TEXT} limit)`;
    }
    return msg;
  }

  buildInfo(): string {
    return this.cString(this.m._hwkv_wasm_build_info());
  }

  ropeInvFreq(rp: Float64Array, invFreq: Float32Array, attentionFactor: Float32Array): number {
    this.add(rp, IN);
    this.add(invFreq, OUT);
    this.add(attentionFactor, OUT);
    return this.call('rope_inv_freq', 0, (p) => this.m._hwkv_wasm_rope_inv_freq(p[0]!, p[1]!, p[2]!));
  }

  ropeApply(rp: Float64Array, x: Float32Array, nTok: number, nHead: number, pos: Int32Array): number {
    this.add(rp, IN);
    this.add(x, OUT);
    this.add(pos, IN);
    return this.call('rope_apply', 0, (p) => this.m._hwkv_wasm_rope_apply(p[0]!, p[1]!, nTok, nHead, p[2]!));
  }

  packBits(codes: Uint16Array, bits: number, words: Uint32Array): number {
    this.add(codes, IN);
    this.add(words, OUT);
    return (
      this.call('pack_bits', 0, (p) => this.m._hwkv_wasm_pack_bits(p[0]!, codes.length, bits, p[1]!, words.length))
    );
  }

  unpackBits(words: Uint32Array, bits: number, codes: Uint16Array): number {
    this.add(words, IN);
    this.add(codes, OUT);
    return (
      this.call('unpack_bits', 0, (p) => this.m._hwkv_wasm_unpack_bits(p[0]!, words.length, bits, p[1]!, codes.length))
    );
  }

  fwht(x: Float32Array, rows: number, n: number, scale: number): number {
    this.add(x, OUT);
    return this.call('fwht', 0, (p) => this.m._hwkv_wasm_fwht(p[0]!, rows, n, scale));
  }

  storeCreate(sp: Float64Array, out: RawStore[]): number {
    this.add(sp, IN);
    return (
      this.call(
        'store_create',
        4,
        (p) => this.m._hwkv_wasm_store_create(p[0]!, p[1]!),
        (p) => {
          out[0] = this.u32(p[1]!);
        },
      )
    );
  }

  storeFree(s: RawStore): void {
    if (this.dead !== null) return;
    try {
      this.m._hwkv_wasm_store_free(s as number);
    } catch (e) {
      this.dead = `store_free trapped: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  storeStats(s: RawStore, out: Float64Array): number {
    this.add(out, OUT);
    return this.call('store_stats', 0, (p) => this.m._hwkv_wasm_store_stats(s as number, p[0]!));
  }

  storeCreateCodec(
    sp: Float64Array,
    codec: Float64Array,
    grid: Float32Array | null,
    grid0: Float32Array | null,
    out: RawStore[],
    rope: Float64Array | null = null,
    predictors: Float32Array | null = null,
  ): number {
    const cd = new Float64Array(12);
    cd.set(codec.subarray(0, Math.min(12, codec.length)));
    this.add(sp, IN);
    this.add(cd, IN);
    this.add(grid, IN);
    this.add(grid0, IN);
    this.add(rope, IN);
    this.add(predictors, IN);
    return this.call(
      'store_create_codec',
      4,
      (p) => this.m._hwkv_wasm_store_create_codec(p[0]!, p[1]!, p[2]!, p[3]!, p[6]!, p[4]!, p[5]!, predictors ? predictors.length : 0),
      (p) => {
        out[0] = this.u32(p[6]!);
      },
    );
  }

  storeCodecChunk(
    s: RawStore,
    block: number,
    token: number,
    layer: number,
    which: number,
    codes: Uint32Array | null,
    scales: Uint16Array | null,
    zeros: Uint16Array | null,
    info: Float64Array,
  ): number {
    this.add(codes, OUT);
    this.add(scales, OUT);
    this.add(zeros, OUT);
    this.add(info, OUT);
    return this.call('store_codec_chunk', 0, (p) =>
      this.m._hwkv_wasm_store_codec_chunk(s as number, block, token, layer, which, p[0]!, p[1]!, p[2]!, p[3]!),
    );
  }

  storeCodecStats(s: RawStore, out: Float64Array): number {
    this.add(out, OUT);
    return this.call('store_codec_stats', 0, (p) => this.m._hwkv_wasm_store_codec_stats(s as number, p[0]!));
  }

  blockCreate(s: RawStore, out: Int32Array): number {
    this.add(out, OUT);
    return this.call('block_create', 0, (p) => this.m._hwkv_wasm_block_create(s as number, p[0]!));
  }

  blockFree(s: RawStore, block: number): number {
    return this.call('block_free', 0, () => this.m._hwkv_wasm_block_free(s as number, block));
  }

  blockLen(s: RawStore, block: number, out: Int32Array): number {
    this.add(out, OUT);
    return this.call('block_len', 0, (p) => this.m._hwkv_wasm_block_len(s as number, block, p[0]!));
  }

  blockAppend(s: RawStore, block: number, nTok: number, k: Float32Array, v: Float32Array, rp: Float64Array | null): number {
    this.add(k, IN);
    this.add(v, IN);
    this.add(rp, IN);
    return (
      this.call('block_append', 0, (p) => this.m._hwkv_wasm_block_append(s as number, block, nTok, p[0]!, p[1]!, p[2]!))
    );
  }

  blockTruncate(s: RawStore, block: number, newLen: number): number {
    return this.call('block_truncate', 0, () => this.m._hwkv_wasm_block_truncate(s as number, block, newLen));
  }

  blockMerge(s: RawStore, dst: number, src: number, rp: Float64Array | null): number {
    this.add(rp, IN);
    return this.call('block_merge', 0, (p) => this.m._hwkv_wasm_block_merge(s as number, dst, src, p[0]!));
  }

  blockRead(s: RawStore, block: number, layer: number, start: number, nTok: number, k: Float32Array | null, v: Float32Array | null): number {
    this.add(k, OUT);
    this.add(v, OUT);
    return (
      this.call('block_read', 0, (p) => this.m._hwkv_wasm_block_read(s as number, block, layer, start, nTok, p[0]!, p[1]!))
    );
  }

  viewRead(s: RawStore, blocks: Int32Array, layer: number, rp: Float64Array | null, k: Float32Array | null, v: Float32Array | null, total: number): number {
    this.add(blocks, IN);
    this.add(rp, IN);
    this.add(k, OUT);
    this.add(v, OUT);
    return (
      this.call('view_read', 0, (p) =>
        this.m._hwkv_wasm_view_read(s as number, p[0]!, blocks.length, layer, p[1]!, p[2]!, p[3]!, total),
      )
    );
  }

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
  ): number {
    this.add(rp, IN);
    this.add(viewIndptr, IN);
    this.add(viewBlocks, IN);
    this.add(qIndptr, IN);
    this.add(qPos, IN);
    this.add(q, IN);
    this.add(out, OUT);
    this.add(lse, OUT);
    const nSeq = viewIndptr.length - 1;
    return (
      this.call('attn_views', 0, (p) =>
        this.m._hwkv_wasm_attn_views(s as number, layer, p[0]!, nSeq, p[1]!, p[2]!, p[3]!, p[4]!, p[5]!, nHead, scale, p[6]!, p[7]!),
      )
    );
  }

  setSimd(forceScalar: boolean): void {
    if (this.dead !== null) return;
    this.m._hwkv_wasm_set_simd(forceScalar ? 1 : 0);
  }

  // ---- RawModelApi (this.model) ------------------------------------------------------------------------
  // Lengths the exports would read past are checked here (a short typed array would otherwise make the core
  // read neighbouring scratch memory); everything else is the core's to check.

  private reject(status: number, message: string): number {
    this.jsError = message;
    return status;
  }

  /** The model's n_vocab, or undefined (and jsError set) when `h` is not a live model of this instance. */
  private liveModel(fn: string, h: RawModel): number | undefined {
    const nVocab = typeof h === 'number' ? this.models.get(h) : undefined;
    if (nVocab === undefined) this.jsError = `${fn}: m is not a live model handle of this WebAssembly instance (freed, or from another backend)`;
    return nVocab;
  }

  private modelCreate(
    mp: Float64Array,
    names: string[],
    types: Int32Array,
    nDims: Int32Array,
    ne: Float64Array,
    _files: string[],
    _offsets: Float64Array,
    nbytes: Float64Array,
    mode: number,
    out: RawModel[],
  ): number {
    const fn = 'modelCreate';
    if (mode === MODEL_FILE) {
      return this.reject(ERR_UNSUPPORTED, 'the WebAssembly backend cannot map files; load with mode UPLOAD');
    }
    const n = names.length;
    if (mp.length < MODEL_PARAMS_LEN) {
      return this.reject(ERR_INVALID_ARGUMENT, `${fn}: mp has ${mp.length} elements, needs ${MODEL_PARAMS_LEN} (MODEL_PARAMS_LEN)`);
    }
    const lens: [string, number, number][] = [
      ['types', types.length, n],
      ['nDims', nDims.length, n],
      ['ne', ne.length, 4 * n],
      ['nbytes', nbytes.length, n],
    ];
    for (const [name, len, want] of lens) {
      if (len !== want) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: ${name} has ${len} elements, needs exactly ${want}`);
    }
    // The weights live in the wasm heap: refuse early what cannot fit (a size of 4 GiB or more would also wrap
    // around in the core's 32-bit size_t arithmetic).
    let weightBytes = 0;
    for (let i = 0; i < n; i++) weightBytes += Math.max(0, nbytes[i]!) + 64;
    if (weightBytes > WASM_HEAP_LIMIT_BYTES) {
      return this.reject(
        ERR_OUT_OF_MEMORY,
        `WASM heap exhausted (limit ${HEAP_LIMIT_TEXT}): ${fn}: the weights need ${mib(weightBytes)}, more than the ` +
          `${HEAP_LIMIT_TEXT} WebAssembly heap can hold (use the native or CUDA backend, or a smaller / quantized model)`,
      );
    }
    // Names: one blob of NUL-terminated UTF-8 strings and a byte offset per tensor.
    const enc = new TextEncoder();
    const encoded: Uint8Array[] = [];
    let blobLen = 0;
    for (let i = 0; i < n; i++) {
      const name = names[i];
      if (typeof name !== 'string') return this.reject(ERR_INVALID_ARGUMENT, `${fn}: names[${i}] must be a string`);
      if (name.includes('\0')) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: names[${i}] contains a NUL character`);
      const e = enc.encode(name);
      encoded.push(e);
      blobLen += e.length + 1;
    }
    const blob = new Uint8Array(Math.max(blobLen, 1));
    const nameOffsets = new Uint32Array(n);
    let at = 0;
    for (let i = 0; i < n; i++) {
      nameOffsets[i] = at;
      blob.set(encoded[i]!, at);
      at += encoded[i]!.length + 1; // the terminator is already 0
    }
    this.add(mp, IN);
    this.add(blob, IN);
    this.add(nameOffsets, IN);
    this.add(types, IN);
    this.add(nDims, IN);
    this.add(ne, IN);
    this.add(nbytes, IN);
    const nVocab = mp[6]!;
    const kvFloats = mp[0]! * mp[3]! * mp[4]!;
    const st = this.call(
      'model_create',
      4,
      (p) => this.m._hwkv_wasm_model_create!(p[0]!, n, p[1]!, p[2]!, p[3]!, p[4]!, p[5]!, p[6]!, mode, p[7]!),
      (p) => {
        const h = this.u32(p[7]!);
        this.models.set(h, nVocab);
        this.modelKv.set(h, kvFloats);
        out[0] = h;
      },
    );
    if (st === DESC_ALLOC_FAILED) {
      return this.reject(
        ERR_OUT_OF_MEMORY,
        `WASM heap exhausted (limit ${HEAP_LIMIT_TEXT}): ${fn} could not allocate ${n} tensor descriptors ` +
          `(heap is ${mib(this.m.HEAPU8.length)})`,
      );
    }
    return st;
  }

  private modelFree(h: RawModel): void {
    if (typeof h !== 'number' || !this.models.has(h)) return; // null, double free or foreign: no-op
    this.models.delete(h);
    this.modelKv.delete(h);
    if (this.dead !== null) return;
    try {
      this.m._hwkv_wasm_model_free!(h);
    } catch (e) {
      this.dead = `model_free trapped: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  private modelUpload(h: RawModel, index: number, data: Uint8Array, offset: number): number {
    if (this.liveModel('modelUpload', h) === undefined) return ERR_INVALID_ARGUMENT;
    if (!(data instanceof Uint8Array)) return this.reject(ERR_INVALID_ARGUMENT, 'modelUpload: data must be a Uint8Array');
    this.add(data, IN);
    return this.call('model_upload', 0, (p) => this.m._hwkv_wasm_model_upload!(h as number, index, p[0]!, offset, data.length));
  }

  private modelInfo(h: RawModel, out: Float64Array): number {
    if (this.liveModel('modelInfo', h) === undefined) return ERR_INVALID_ARGUMENT;
    if (out.length < MODEL_INFO_LEN) {
      return this.reject(ERR_INVALID_ARGUMENT, `modelInfo: out has ${out.length} elements, needs ${MODEL_INFO_LEN} (MODEL_INFO_LEN)`);
    }
    this.add(out, OUT);
    return this.call('model_info', 0, (p) => this.m._hwkv_wasm_model_info!(h as number, p[0]!));
  }

  private modelCaptureKv(h: RawModel, tokens: Int32Array, kPre: Float32Array, v: Float32Array): number {
    const fn = 'modelCaptureKv';
    if (this.liveModel(fn, h) === undefined) return ERR_INVALID_ARGUMENT;
    if (!(tokens instanceof Int32Array)) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: tokens must be an Int32Array`);
    if (!(kPre instanceof Float32Array) || !(v instanceof Float32Array)) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: kPre and v must be Float32Arrays`);
    const want = this.modelKv.get(h as number)! * tokens.length;
    if (kPre.length !== want || v.length !== want) {
      return this.reject(ERR_INVALID_ARGUMENT, `${fn}: kPre and v need n_layer*n_tok*n_kv_head*head_dim = ${want} elements, got ${kPre.length} and ${v.length}`);
    }
    this.add(tokens, IN);
    this.add(kPre, OUT);
    this.add(v, OUT);
    return this.call('model_capture_kv', 0, (p) => this.m._hwkv_wasm_model_capture_kv!(h as number, p[0]!, tokens.length, p[1]!, p[2]!));
  }

  private modelForward(
    h: RawModel,
    s: RawStore,
    logitsMode: number,
    viewIndptr: Int32Array,
    viewBlocks: Int32Array,
    tokIndptr: Int32Array,
    tokens: Int32Array,
    logits: Float32Array | null,
  ): number {
    const fn = 'modelForward';
    const nVocab = this.liveModel(fn, h);
    if (nVocab === undefined) return ERR_INVALID_ARGUMENT;
    const nSeq = viewIndptr.length - 1;
    if (nSeq < 0) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: viewIndptr must have n_seq + 1 >= 1 elements`);
    if (tokIndptr.length !== nSeq + 1) {
      return this.reject(
        ERR_INVALID_ARGUMENT,
        `${fn}: tokIndptr has ${tokIndptr.length} elements, needs n_seq + 1 = ${nSeq + 1} (n_seq = viewIndptr.length - 1)`,
      );
    }
    for (const [name, ip, target, len] of [
      ['viewIndptr', viewIndptr, 'viewBlocks', viewBlocks.length],
      ['tokIndptr', tokIndptr, 'tokens', tokens.length],
    ] as const) {
      for (let i = 0; i <= nSeq; i++) {
        const v = ip[i]!;
        if (v < 0 || (i > 0 && v < ip[i - 1]!)) {
          return this.reject(ERR_INVALID_ARGUMENT, `${fn}: ${name} must be non-negative and non-decreasing (${name}[${i}] = ${v})`);
        }
      }
      if (ip[nSeq]! > len) {
        return this.reject(ERR_INVALID_ARGUMENT, `${fn}: ${name}[${nSeq}] = ${ip[nSeq]} exceeds ${target}.length = ${len}`);
      }
    }
    const nTok = tokIndptr[nSeq]!;
    if (tokens.length !== nTok) {
      return this.reject(ERR_INVALID_ARGUMENT, `${fn}: tokens has ${tokens.length} elements, needs exactly tokIndptr[n_seq] = ${nTok}`);
    }
    const rows = logitsMode === LOGITS_LAST ? nSeq : logitsMode === LOGITS_ALL ? nTok : -1;
    if (rows >= 0) {
      if (logits === null) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: logits must be a Float32Array unless logitsMode is NONE`);
      if (logits.length < rows * nVocab) {
        return this.reject(
          ERR_INVALID_ARGUMENT,
          `${fn}: logits has ${logits.length} elements, needs at least ${rows * nVocab} (${logitsMode === LOGITS_LAST ? 'n_seq' : 'n_tok'}*n_vocab)`,
        );
      }
    }
    this.add(viewIndptr, IN);
    this.add(viewBlocks, IN);
    this.add(tokIndptr, IN);
    this.add(tokens, IN);
    this.add(logits, OUT);
    const nLogits = logits === null ? 0 : logits.length;
    return this.call('model_forward', 0, (p) =>
      this.m._hwkv_wasm_model_forward!(h as number, s as number, nSeq, logitsMode, p[0]!, p[1]!, p[2]!, p[3]!, p[4]!, nLogits),
    );
  }

  private modelSetThreads(h: RawModel, nThreads: number): number {
    if (this.liveModel('modelSetThreads', h) === undefined) return ERR_INVALID_ARGUMENT;
    return this.call('model_set_threads', 0, () => this.m._hwkv_wasm_model_set_threads!(h as number, nThreads));
  }

  // ---- RawQuantApi (this.quant) ------------------------------------------------------------------------
  // As for the model engine, lengths the exports would read or write past are checked here; the counts a
  // parameter set implies come from the core's own size queries (which also validate the parameters).

  private sizeQuery(
    fn: string,
    params: Float64Array,
    len: number,
    nTok: number,
    out: Float64Array,
    f: (p: number, nTok: number, out: number) => number,
  ): number {
    if (params.length < len) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: params has ${params.length} elements, needs ${len}`);
    if (out.length < 2) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: out has ${out.length} elements, needs 2`);
    this.add(params, IN);
    this.add(out, OUT);
    return this.call(fn, 0, (p) => f(p[0]!, nTok, p[1]!));
  }

  private need(fn: string, checks: ReadonlyArray<readonly [string, number, number]>): number {
    for (const [name, have, want] of checks) {
      if (have < want) return this.reject(ERR_INVALID_ARGUMENT, `${fn}: ${name} has ${have} elements, needs at least ${want}`);
    }
    return 0;
  }

  /** [n_words, n_scales] of a parameter set, or a status (< 0 never: a failing status is returned as is). */
  private sizes(kind: 'higgs' | 'uniform', params: Float64Array, nTok: number): { st: number; words: number; scales: number } {
    const out = new Float64Array(2);
    const st =
      kind === 'higgs'
        ? this.sizeQuery('higgs_size', params, HIGGS_PARAMS_LEN, nTok, out, this.m._hwkv_wasm_higgs_size!)
        : this.sizeQuery('uniform_size', params, UNIFORM_PARAMS_LEN, nTok, out, this.m._hwkv_wasm_uniform_size!);
    return { st, words: out[0]!, scales: out[1]! };
  }

  private higgsEncode(hp: Float64Array, grid: Float32Array, x: Float32Array, nTok: number, codes: Uint32Array, scales: Uint16Array): number {
    const fn = 'higgsEncode';
    const sz = this.sizes('higgs', hp, nTok);
    if (sz.st !== 0) return sz.st;
    const bad = this.need(fn, [
      ['grid', grid.length, hp[2]! * hp[3]!],
      ['x', x.length, nTok * hp[0]!],
      ['scales', scales.length, sz.scales],
    ]);
    if (bad) return bad;
    this.add(hp, IN);
    this.add(grid, IN);
    this.add(x, IN);
    this.add(codes, OUT);
    this.add(scales, OUT);
    return this.call('higgs_encode', 0, (p) => this.m._hwkv_wasm_higgs_encode!(p[0]!, p[1]!, p[2]!, nTok, p[3]!, codes.length, p[4]!));
  }

  private higgsDecode(hp: Float64Array, grid: Float32Array, codes: Uint32Array, scales: Uint16Array, nTok: number, y: Float32Array, acc: boolean): number {
    const fn = 'higgsDecode';
    const sz = this.sizes('higgs', hp, nTok);
    if (sz.st !== 0) return sz.st;
    const bad = this.need(fn, [
      ['grid', grid.length, hp[2]! * hp[3]!],
      ['y', y.length, nTok * hp[0]!],
      ['scales', scales.length, sz.scales],
    ]);
    if (bad) return bad;
    this.add(hp, IN);
    this.add(grid, IN);
    this.add(codes, IN);
    this.add(scales, IN);
    this.add(y, OUT);
    return this.call('higgs_decode', 0, (p) =>
      this.m._hwkv_wasm_higgs_decode!(p[0]!, p[1]!, p[2]!, codes.length, p[3]!, nTok, p[4]!, acc ? 1 : 0),
    );
  }

  private gridNearest(grid: Float32Array, nPoints: number, dim: number, z: Float32Array, idx: Uint16Array): number {
    const bad = this.need('gridNearest', [
      ['grid', grid.length, nPoints * dim],
      ['z', z.length, idx.length * dim],
    ]);
    if (bad) return bad;
    this.add(grid, IN);
    this.add(z, IN);
    this.add(idx, OUT);
    return this.call('grid_nearest', 0, (p) => this.m._hwkv_wasm_grid_nearest!(p[0]!, nPoints, dim, p[1]!, idx.length, p[2]!));
  }

  private higgsSigns(seed: number, signs: Float32Array): number {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) return this.reject(ERR_INVALID_ARGUMENT, 'higgsSigns: seed must be in 0..2^32-1');
    this.add(signs, OUT);
    return this.call('higgs_signs', 0, (p) => this.m._hwkv_wasm_higgs_signs!(seed, signs.length, p[0]!));
  }

  private uniformEncode(up: Float64Array, x: Float32Array, nTok: number, codes: Uint32Array, scales: Uint16Array, zeros: Uint16Array): number {
    const sz = this.sizes('uniform', up, nTok);
    if (sz.st !== 0) return sz.st;
    const bad = this.need('uniformEncode', [
      ['x', x.length, nTok * up[0]!],
      ['scales', scales.length, sz.scales],
      ['zeros', zeros.length, sz.scales],
    ]);
    if (bad) return bad;
    this.add(up, IN);
    this.add(x, IN);
    this.add(codes, OUT);
    this.add(scales, OUT);
    this.add(zeros, OUT);
    return this.call('uniform_encode', 0, (p) => this.m._hwkv_wasm_uniform_encode!(p[0]!, p[1]!, nTok, p[2]!, codes.length, p[3]!, p[4]!));
  }

  private uniformDecode(up: Float64Array, codes: Uint32Array, scales: Uint16Array, zeros: Uint16Array, nTok: number, y: Float32Array, acc: boolean): number {
    const sz = this.sizes('uniform', up, nTok);
    if (sz.st !== 0) return sz.st;
    const bad = this.need('uniformDecode', [
      ['y', y.length, nTok * up[0]!],
      ['scales', scales.length, sz.scales],
      ['zeros', zeros.length, sz.scales],
    ]);
    if (bad) return bad;
    this.add(up, IN);
    this.add(codes, IN);
    this.add(scales, IN);
    this.add(zeros, IN);
    this.add(y, OUT);
    return this.call('uniform_decode', 0, (p) =>
      this.m._hwkv_wasm_uniform_decode!(p[0]!, p[1]!, codes.length, p[2]!, p[3]!, nTok, p[4]!, acc ? 1 : 0),
    );
  }

  private ridgeAccumulate(x: Float32Array, y: Float32Array, n: number, p: number, q: number, xtx: Float64Array, xty: Float64Array, yy: Float64Array | null): number {
    if (n >= 0 && p >= 0 && q >= 1) {
      const bad = this.need('ridgeAccumulate', [
        ['x', x.length, n * p],
        ['y', y.length, n * q],
        ['xtx', xtx.length, (p + 1) * (p + 1)],
        ['xty', xty.length, (p + 1) * q],
        ['yy', yy === null ? q : yy.length, q],
      ]);
      if (bad) return bad;
    }
    this.add(x, IN);
    this.add(y, IN);
    this.add(xtx, OUT);
    this.add(xty, OUT);
    this.add(yy, OUT);
    return this.call('ridge_accumulate', 0, (a) => this.m._hwkv_wasm_ridge_accumulate!(a[0]!, a[1]!, n, p, q, a[2]!, a[3]!, a[4]!));
  }

  private ridgeSolve(xtx: Float64Array, xty: Float64Array, p: number, q: number, lambdaRel: number, w: Float32Array): number {
    if (p >= 0 && q >= 1) {
      const bad = this.need('ridgeSolve', [
        ['xtx', xtx.length, (p + 1) * (p + 1)],
        ['xty', xty.length, (p + 1) * q],
        ['w', w.length, (p + 1) * q],
      ]);
      if (bad) return bad;
    }
    this.add(xtx, IN);
    this.add(xty, IN);
    this.add(w, OUT);
    return this.call('ridge_solve', 0, (a) => this.m._hwkv_wasm_ridge_solve!(a[0]!, a[1]!, p, q, lambdaRel, a[2]!));
  }

  private linearApply(x: Float32Array, n: number, p: number, q: number, w: Float32Array, y: Float32Array): number {
    if (n >= 0 && p >= 0 && q >= 1) {
      const bad = this.need('linearApply', [
        ['x', x.length, n * p],
        ['w', w.length, (p + 1) * q],
        ['y', y.length, n * q],
      ]);
      if (bad) return bad;
    }
    if (typeof this.m._hwkv_wasm_linear_apply !== 'function') return this.reject(ERR_UNSUPPORTED, 'linear_apply: this WebAssembly module predates it (rebuild)');
    this.add(x, IN);
    this.add(w, IN);
    this.add(y, OUT);
    return this.call('linear_apply', 0, (a) => this.m._hwkv_wasm_linear_apply!(a[0]!, n, p, q, a[1]!, a[2]!));
  }
}

const COMPILE_HINT =
  'the hogwild-kv WebAssembly module needs WebAssembly SIMD (simd128) and exception handling ' +
  '(Node >= 20, Chrome >= 95, Firefox >= 100, Safari >= 16.4)';

/**
 * Instantiate the emscripten module from its bytes and wrap it as a RawApi. Environment-neutral: the glue
 * never loads files itself (compilation and instantiation happen here).
 */
export async function createWasmRaw(factory: HwkvModuleFactory, wasmBinary: Uint8Array | ArrayBuffer): Promise<RawApi> {
  return instantiate(factory, wasmBinary);
}

async function instantiate(factory: HwkvModuleFactory, wasmBinary: Uint8Array | ArrayBuffer): Promise<WasmRaw> {
  const bytes = wasmBinary instanceof Uint8Array ? wasmBinary : new Uint8Array(wasmBinary);
  let compiled: WebAssembly.Module;
  try {
    compiled = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new Error(`compiling the WebAssembly module failed: ${e instanceof Error ? e.message : String(e)} (${COMPILE_HINT})`);
  }
  let rejectInst: (e: unknown) => void = () => {};
  const instFailed = new Promise<never>((_, reject) => {
    rejectInst = reject;
  });
  const ready = factory({
    wasmBinary: bytes,
    // Instantiate ourselves so that a failure rejects our promise instead of aborting inside the glue.
    instantiateWasm(imports: WebAssembly.Imports, receive: (inst: WebAssembly.Instance, mod: WebAssembly.Module) => void) {
      WebAssembly.instantiate(compiled, imports).then(
        (inst) => receive(inst, compiled),
        (e: unknown) => rejectInst(new Error(`instantiating the hogwild-kv WebAssembly module failed: ${e instanceof Error ? e.message : String(e)}`)),
      );
      return {};
    },
    locateFile: (path: string) => path,
  });
  const m = await Promise.race([ready, instFailed]);
  return new WasmRaw(m);
}

let defaultRaw: Promise<WasmRaw> | null = null;
let defaultInstance: WasmRaw | null = null;

/**
 * Load the WebAssembly backend in Node from the package's committed artifacts (prebuilds/wasm). The default
 * instance is created once and shared; passing `wasmBinary` always creates a fresh instance from those bytes.
 */
export function loadWasmRaw(options: { wasmBinary?: Uint8Array } = {}): Promise<RawApi> {
  if (options.wasmBinary) return loadFromPackage(options.wasmBinary);
  if (defaultInstance?.isDead) {
    // A trapped instance is never handed out again: the next caller gets a fresh one.
    defaultRaw = null;
    defaultInstance = null;
  }
  if (!defaultRaw) {
    const p = loadFromPackage(undefined);
    defaultRaw = p;
    p.then(
      (raw) => {
        if (defaultRaw === p) defaultInstance = raw;
      },
      () => {
        if (defaultRaw === p) defaultRaw = null; // let a later call retry
      },
    );
  }
  return defaultRaw;
}

async function loadFromPackage(wasmBinary: Uint8Array | undefined): Promise<WasmRaw> {
  const [{ readFileSync }, { createRequire }, { join }, { packageRoot }] = await Promise.all([
    import('node:fs'),
    import('node:module'),
    import('node:path'),
    import('../util/paths.js'),
  ]);
  const dir = join(packageRoot(), 'prebuilds', 'wasm');
  const gluePath = join(dir, 'hwkv.cjs');
  const wasmPath = join(dir, 'hwkv.wasm');
  let factory: HwkvModuleFactory;
  let bytes: Uint8Array;
  try {
    factory = createRequire(gluePath)(gluePath) as HwkvModuleFactory;
    bytes = wasmBinary ?? readFileSync(wasmPath);
  } catch (e) {
    throw new Error(
      `cannot read the WebAssembly artifacts in ${dir} (${e instanceof Error ? e.message : String(e)}); ` +
        'reinstall hogwild-kv, or in a checkout run `npm run build:wasm`',
    );
  }
  return instantiate(factory, bytes);
}
