/**
 * ModelRuntime: a loaded model on one backend plus its KV block store, and the one batched forward call
 * everything above (generation, perplexity, Hogwild!) is built on. Backend-agnostic: it talks to the
 * RawModelApi of whatever backend it was given.
 */
import type { KvCodec } from '../backend/types.js';
import { AbortError, DisposedError, InvalidArgumentError, UnsupportedError, errorFromStatus } from '../errors.js';
import { CoreBackend, CoreKvStore, encodeRope } from '../backend/backend.js';
import { MODEL_INFO_LEN, MODEL_PARAMS_LEN, type RawModel, type RawModelApi } from '../backend/raw.js';
import type { ModelConfig } from './config.js';
import type { ModelSource } from './loader.js';

export interface LoadProgress {
  /** 'weights' while tensor data is read or uploaded; 'ready' once. */
  phase: 'weights' | 'ready';
  loadedBytes: number;
  totalBytes: number;
  /** 0..1 */
  progress: number;
}

export type LogitsMode = 'none' | 'last' | 'all';
const LOGITS_MODE: Record<LogitsMode, number> = { none: 0, last: 1, all: 2 };
/** hwkv_model.h HWKV_LOGITS_ARGMAX: OR'ed with last/all, two floats (id, logit) per row instead of the logits. */
const LOGITS_ARGMAX = 16;

export interface ForwardSequence {
  /** Ordered block ids; the last one is written to. */
  view: ReadonlyArray<number>;
  /** New tokens of this sequence (>= 1). */
  tokens: ArrayLike<number>;
}

export interface ModelInfo {
  weightBytes: number;
  scratchBytes: number;
  nTensors: number;
  mapped: boolean;
  threads: number;
}

const FLAG_QKV_BIAS = 1;
const FLAG_QK_NORM = 2;
const FLAG_TIED = 4;

/** Serialises async work (the core runs one forward per model at a time). */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  /** Operations queued or running. */
  pending = 0;
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.pending++;
    const p = this.tail.then(fn, fn);
    this.tail = p.then(
      () => void this.pending--,
      () => void this.pending--,
    );
    return p;
  }
}

export class ModelRuntime {
  readonly config: ModelConfig;
  readonly backend: CoreBackend;
  readonly store: CoreKvStore;
  private readonly api: RawModelApi;
  private handle: RawModel | null;
  private readonly mutex = new Mutex();

  private constructor(backend: CoreBackend, api: RawModelApi, handle: RawModel, config: ModelConfig, store: CoreKvStore) {
    this.backend = backend;
    this.api = api;
    this.handle = handle;
    this.config = config;
    this.store = store;
  }

  static async create(
    backend: CoreBackend,
    source: ModelSource,
    opts: { threads?: number; onProgress?: (p: LoadProgress) => void; signal?: AbortSignal; kvDtype?: 'f32' | 'f16'; kvCodec?: KvCodec; pageTokens?: number },
  ): Promise<ModelRuntime> {
    const api = backend.raw.model;
    if (!api) throw new UnsupportedError(`the ${backend.name} backend cannot run models yet`);
    const c = source.config;
    const mp = new Float64Array(MODEL_PARAMS_LEN);
    mp.set([
      c.nLayer,
      c.nEmbd,
      c.nHead,
      c.nKvHead,
      c.headDim,
      c.nFf,
      c.nVocab,
      (c.qkvBias ? FLAG_QKV_BIAS : 0) | (c.qkNorm ? FLAG_QK_NORM : 0) | (source.tied ? FLAG_TIED : 0),
      c.rmsNormEps,
      c.ropeAttentionFactor === 1 ? 0 : c.ropeAttentionFactor,
      0,
      opts.threads ?? 0,
    ]);
    mp.set(encodeRope(c.rope), 12);
    const n = source.tensors.length;
    const types = new Int32Array(n);
    const nDims = new Int32Array(n);
    const ne = new Float64Array(n * 4);
    const offsets = new Float64Array(n);
    const nbytes = new Float64Array(n);
    source.tensors.forEach((t, i) => {
      types[i] = t.type;
      nDims[i] = t.shape.length;
      t.shape.forEach((d, j) => (ne[i * 4 + j] = d));
      offsets[i] = t.offset;
      nbytes[i] = t.nbytes;
    });
    const upload = backend.name === 'wasm';
    const out: RawModel[] = [];
    const st = api.modelCreate(
      mp,
      source.tensors.map((t) => t.name),
      types,
      nDims,
      ne,
      source.tensors.map((t) => t.file),
      offsets,
      nbytes,
      upload ? 1 : 0,
      out,
    );
    if (st !== 0) throw errorFromStatus(st, `${source.path}: ${backend.raw.lastError()}`);
    const handle = out[0]!;
    const total = source.weightBytes;
    try {
      if (upload) await uploadWeights(api, handle, source, backend, opts.onProgress, opts.signal);
      if (opts.signal?.aborted) throw new AbortError('model loading was aborted');
      const store = backend.createStore({
        nLayer: c.nLayer,
        nKvHead: c.nKvHead,
        headDim: c.headDim,
        pageTokens: opts.pageTokens ?? 64,
        dtype: opts.kvDtype ?? 'f32',
        ...(opts.kvCodec ? { codec: opts.kvCodec } : {}),
      });
      opts.onProgress?.({ phase: 'ready', loadedBytes: total, totalBytes: total, progress: 1 });
      return new ModelRuntime(backend, api, handle, c, store as CoreKvStore);
    } catch (e) {
      api.modelFree(handle);
      throw e;
    }
  }

  private disposed = false;

  private h(): RawModel {
    if (this.handle === null || this.disposed) throw new DisposedError('model');
    return this.handle;
  }

  info(): ModelInfo {
    const out = new Float64Array(MODEL_INFO_LEN);
    const st = this.api.modelInfo(this.h(), out);
    if (st !== 0) throw errorFromStatus(st, this.backend.raw.lastError());
    return { weightBytes: out[0]!, scratchBytes: out[1]!, nTensors: out[2]!, mapped: out[4] === 1, threads: out[5]! };
  }

  setThreads(n: number): void {
    const st = this.api.modelSetThreads(this.h(), n);
    if (st !== 0) throw errorFromStatus(st, this.backend.raw.lastError());
  }

  /**
   * A new KV block of the model's store, created under the model's lock: a forward in flight (e.g. one an
   * aborted generation left running) holds the store, so blocks are created and freed between forwards.
   */
  createBlock(): Promise<number> {
    return this.mutex.run(async () => {
      this.h();
      return this.store.createBlock();
    });
  }

  /** Free a block created by createBlock(), under the model's lock. A no-op after dispose(). */
  freeBlock(block: number): Promise<void> {
    return this.mutex.run(async () => {
      if (this.handle === null || this.disposed) return;
      this.store.freeBlock(block);
    });
  }

  /**
   * Run `fn` under the model's lock, between forwards: for store changes (merge, truncate, create, free) that
   * must not meet a forward in flight (Hogwild! merges finished steps this way).
   */
  exclusive<T>(fn: () => T): Promise<T> {
    return this.mutex.run(async () => {
      this.h();
      return fn();
    });
  }

  /**
   * One batched step over several sequences (see hwkv_model.h model_forward). Returns logits [rows, vocab]
   * (rows = sequences for 'last', new tokens for 'all', none for 'none'). `store` defaults to the runtime's own
   * store; another store of the same backend and shape (e.g. a Hogwild! run's f16 cache) may be passed.
   */
  forward(
    seqs: ReadonlyArray<ForwardSequence>,
    logits: LogitsMode,
    signal?: AbortSignal,
    store: CoreKvStore = this.store,
    /**
     * The caller's buffer from an earlier call, written again when it has exactly the size needed (saves one
     * vocabulary-sized allocation per step for callers that consume the logits before their next forward).
     */
    into?: Float32Array,
  ): Promise<Float32Array> {
    return this.call(seqs, LOGITS_MODE[logits], logits === 'none' ? 0 : this.config.nVocab, signal, store, into);
  }

  /**
   * The greedy pick of each row instead of its logits (hwkv_model.h HWKV_LOGITS_ARGMAX): ids[r] is the argmax
   * of the row `forward(seqs, logits)` would return (ties go to the lowest id, as sampling.ts argmax), maxLogits[r]
   * its logit. Only two floats per row come back; on CUDA the pick runs on the GPU inside the step's graph.
   */
  async forwardArgmax(
    seqs: ReadonlyArray<ForwardSequence>,
    logits: 'last' | 'all',
    signal?: AbortSignal,
    store: CoreKvStore = this.store,
  ): Promise<{ ids: Int32Array; maxLogits: Float32Array }> {
    const out = await this.call(seqs, LOGITS_MODE[logits] | LOGITS_ARGMAX, 2, signal, store);
    const n = out.length / 2;
    const ids = new Int32Array(n);
    const maxLogits = new Float32Array(n);
    for (let r = 0; r < n; r++) {
      ids[r] = out[2 * r]!;
      maxLogits[r] = out[2 * r + 1]!;
    }
    return { ids, maxLogits };
  }

  private call(
    seqs: ReadonlyArray<ForwardSequence>,
    mode: number,
    rowFloats: number,
    signal: AbortSignal | undefined,
    store: CoreKvStore,
    into?: Float32Array,
  ): Promise<Float32Array> {
    return this.mutex.run(async () => {
      if (signal?.aborted) throw new AbortError();
      const h = this.h();
      const nSeq = seqs.length;
      if (nSeq < 1) throw new InvalidArgumentError('forward needs at least one sequence');
      const viewIndptr = new Int32Array(nSeq + 1);
      const tokIndptr = new Int32Array(nSeq + 1);
      for (let s = 0; s < nSeq; s++) {
        viewIndptr[s + 1] = viewIndptr[s]! + seqs[s]!.view.length;
        tokIndptr[s + 1] = tokIndptr[s]! + seqs[s]!.tokens.length;
      }
      const viewBlocks = new Int32Array(viewIndptr[nSeq]!);
      const tokens = new Int32Array(tokIndptr[nSeq]!);
      for (let s = 0; s < nSeq; s++) {
        viewBlocks.set(seqs[s]!.view as ArrayLike<number>, viewIndptr[s]!);
        tokens.set(seqs[s]!.tokens, tokIndptr[s]!);
      }
      const base = mode & ~LOGITS_ARGMAX;
      const rows = base === LOGITS_MODE.none ? 0 : base === LOGITS_MODE.last ? nSeq : tokens.length;
      const need = rows * rowFloats;
      const out = rows === 0 ? null : into && into.length === need ? into : new Float32Array(need);
      const st = this.api.modelForwardAsync
        ? await this.api.modelForwardAsync(h, store.rawHandle(), mode, viewIndptr, viewBlocks, tokIndptr, tokens, out)
        : this.api.modelForward(h, store.rawHandle(), mode, viewIndptr, viewBlocks, tokIndptr, tokens, out);
      if (st !== 0) throw errorFromStatus(st, this.backend.raw.lastError());
      return out ?? new Float32Array(0);
    });
  }

  /**
   * The K/V tap (hwkv_model_api.model_capture_kv): one sequence at positions 0..n-1 in a private store of the
   * core; k (pre-RoPE) and v [nLayer, n, nKvHead*headDim]. null where the backend has no tap (a library
   * that predates it).
   */
  captureKv(tokens: ArrayLike<number>, signal?: AbortSignal): Promise<{ k: Float32Array; v: Float32Array } | null> {
    return this.mutex.run(async () => {
      if (signal?.aborted) throw new AbortError();
      const h = this.h();
      if (!this.api.modelCaptureKv) return null;
      const c = this.config;
      const n = tokens.length;
      const k = new Float32Array(c.nLayer * n * c.nKvHead * c.headDim);
      const v = new Float32Array(k.length);
      const st = this.api.modelCaptureKv(h, Int32Array.from(tokens), k, v);
      if (st === 4) return null;
      if (st !== 0) throw errorFromStatus(st, this.backend.raw.lastError());
      return { k, v };
    });
  }

  /**
   * Free the weights and the KV store. With nothing in flight this happens now; otherwise (a forward still
   * running, e.g. of an aborted generation) once the operations already queued have finished — the core
   * never sees its memory freed under a running forward. New calls fail with DisposedError at once.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const release = () => {
      if (this.handle === null) return;
      this.store.dispose();
      this.api.modelFree(this.handle);
      this.handle = null;
    };
    if (this.mutex.pending === 0) release();
    else void this.mutex.run(async () => release());
  }
}

async function uploadWeights(
  api: RawModelApi,
  handle: RawModel,
  source: ModelSource,
  backend: CoreBackend,
  onProgress: ((p: LoadProgress) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { openSync, readSync, closeSync } = await import('node:fs');
  const CHUNK = 8 << 20;
  const buf = new Uint8Array(CHUNK);
  const total = source.weightBytes;
  let loaded = 0;
  const fds = new Map<string, number>();
  try {
    for (let i = 0; i < source.tensors.length; i++) {
      const t = source.tensors[i]!;
      let fd = fds.get(t.file);
      if (fd === undefined) {
        fd = openSync(t.file, 'r');
        fds.set(t.file, fd);
      }
      for (let off = 0; off < t.nbytes; off += CHUNK) {
        if (signal?.aborted) throw new AbortError('model loading was aborted');
        const n = Math.min(CHUNK, t.nbytes - off);
        const got = readSync(fd, buf, 0, n, t.offset + off);
        if (got !== n) throw errorFromStatus(1, `${t.file}: tensor '${t.source}' is truncated`);
        const st = api.modelUpload(handle, i, buf.subarray(0, n), off);
        if (st !== 0) throw errorFromStatus(st, backend.raw.lastError());
        loaded += n;
        onProgress?.({ phase: 'weights', loadedBytes: loaded, totalBytes: total, progress: total ? loaded / total : 1 });
      }
      // let the event loop breathe (progress bars, abort signals) between tensors
      if (i % 8 === 7) await new Promise((r) => setImmediate(r));
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}
