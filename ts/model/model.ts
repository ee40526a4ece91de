/**
 * Model: the user-facing object. loadModel() reads a GGUF file or a Hugging Face folder, loads the weights
 * in the chosen backend, and gives tokenize/detokenize, logits, streaming generation, chat and perplexity.
 */
import { Template } from '@huggingface/jinja';
import { AbortError, DisposedError, InvalidArgumentError, TokenizerError } from '../errors.js';
import { CoreBackend } from '../backend/backend.js';
import { createBackend } from '../backend/select.js';
import type {
  KvCodec, Backend, BackendChoice } from '../backend/types.js';
import { Sampler, validateSampling, type SamplingOptions } from '../engine/sampling.js';
import { paragraphChunks } from '../engine/chunking.js';
import { GgufTokenizer } from '../tokenizer/gguf-tokenizer.js';
import { HfTokenizer } from '../tokenizer/hf-tokenizer.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { ModelConfig } from './config.js';
import { loadModelSource, type ModelSource } from './loader.js';
import { ModelRuntime, type LoadProgress, type ModelInfo } from './runtime.js';
import { HogwildRun, type HogwildOptions } from '../hogwild/run.js';
import { resolveKvCache, type KvCacheOption } from '../aqua/cache.js';
import type { CoreKvStore } from '../backend/backend.js';
import { EventStream } from '../util/event-stream.js';

export type { KvCacheOption } from '../aqua/cache.js';

export type { LoadProgress } from './runtime.js';

export interface LoadModelOptions {
  /** Backend name, 'auto', or an existing Backend. Defaults to `HOGWILD_BACKEND` or 'auto'. */
  backend?: BackendChoice | Backend;
  /** Threads for the CPU backends (including the calling thread). Defaults to all cores. */
  threads?: number;
  /** Called while weights load. */
  onProgress?: (p: LoadProgress) => void;
  /** Stops loading; the promise rejects with AbortError and nothing stays allocated. */
  signal?: AbortSignal;
  /** KV cache element type. Defaults to 'f32'. */
  /**
   * KV cache element type or compressed cache. 'uniform' / 'higgs' store exact f32 (or `dtype`) pages for
   * the first `sinks` and last `buffer` tokens of each block and encode older chunks once (see KvCodec).
   */
  kvCache?: KvCacheOption;
  /** Tokens per KV page. Defaults to 64. */
  pageTokens?: number;
  /** llama2.c checkpoints only: the tokenizer.bin (default: tokenizer.bin or the only tok*.bin beside the model). */
  tokenizer?: string;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

export interface GenerateOptions extends SamplingOptions {
  /** Maximum number of new tokens. Defaults to 256. */
  maxTokens?: number;
  /** Stop when the generated text contains one of these; the text is cut before it. Defaults to none. */
  stop?: string[];
  /** Stop generation promptly; the iterator and `result` reject with AbortError. */
  signal?: AbortSignal;
  /** Add the tokenizer's BOS (and other specials) to a text prompt. Defaults to true. */
  addSpecial?: boolean;
  /** Also stop on end-of-generation tokens (EOS, <|im_end|>, …). Defaults to true. */
  stopOnEog?: boolean;
  /** Tokens per prefill call. Defaults to 256. */
  prefillChunk?: number;
  /** A KV cache for this generation only (default: the model's, from loadModel). */
  kvCache?: KvCacheOption;
}

export interface GenerateChunk {
  /** Token ids produced in this chunk (usually one). */
  tokens: number[];
  /** Text those tokens complete (may be empty while a UTF-8 sequence or a possible stop string is pending). */
  text: string;
}

export type StopReason = 'eog' | 'stop' | 'maxTokens';

export interface GenerateResult {
  text: string;
  /** Generated token ids (without the prompt). */
  tokens: number[];
  promptTokens: number;
  stopReason: StopReason;
  timings: {
    prefillMs: number;
    decodeMs: number;
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
  };
}

export interface PerplexityOptions {
  /** Tokens per chunk; each chunk starts with BOS. Defaults to 512. */
  context?: number;
  /** Stop after this many chunks. Defaults to all. */
  maxChunks?: number;
  /** Cut the text into chunks of at most this many characters before tokenizing: its non-empty lines (paragraphs)
   *  are packed greedily, joined by one newline; a line longer than the limit is split at the limit. Each chunk
   *  starts with BOS and is cut at `context` tokens. This is the protocol behind the published stories260K
   *  figure (chunkChars 1200, context 512 on tinystories_val: ~4.67). Without it the whole text is tokenized
   *  and cut into windows of `context` tokens. */
  chunkChars?: number;
  /** Tokens per forward call inside a chunk (default 256). With a compressed kvCache, later calls attend to
   *  the chunks encoded after earlier calls: smaller values exercise the codec more. */
  prefillChunk?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** A KV cache for this run only (default: the model's, from loadModel). */
  kvCache?: KvCacheOption;
}

export interface PerplexityResult {
  tokens: number;
  chunks: number;
  meanNll: number;
  perplexity: number;
}

/** A running generation: iterate it for chunks, or await `result`. Aborting (the signal) rejects at once;
 *  chunks still queued then are not delivered. */
export class Generation extends EventStream<GenerateChunk, GenerateResult> {
  /** @internal */
  constructor(run: (emit: (c: GenerateChunk) => void) => Promise<GenerateResult>, signal?: AbortSignal) {
    super(run, { signal, abortMessage: 'generation was aborted', dropQueuedOnAbort: true });
  }

  /** The whole text (runs the generation to the end). */
  async text(): Promise<string> {
    return (await this.result).text;
  }
}

function now(): number {
  return performance.now();
}

export class Model {
  readonly config: ModelConfig;
  readonly source: ModelSource;
  readonly tokenizer: Tokenizer | null;
  readonly chatTemplate: string | null;
  /** @internal */
  readonly runtime: ModelRuntime;
  private disposed = false;

  /** @internal */
  constructor(source: ModelSource, runtime: ModelRuntime, tokenizer: Tokenizer | null) {
    this.source = source;
    this.config = source.config;
    this.runtime = runtime;
    this.tokenizer = tokenizer;
    this.chatTemplate = source.chatTemplate ?? null;
  }

  get backend(): Backend {
    return this.runtime.backend;
  }

  info(): ModelInfo {
    return this.runtime.info();
  }

  private live(): void {
    if (this.disposed) throw new DisposedError('model');
  }

  private tok(): Tokenizer {
    if (!this.tokenizer) throw new TokenizerError('TOKENIZER_INVALID', `${this.source.path} has no tokenizer (no tokenizer.json / GGUF vocabulary); pass token ids`);
    return this.tokenizer;
  }

  /** Text to token ids. `addSpecial` (default true) adds BOS as the tokenizer prescribes. */
  tokenize(text: string, options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    this.live();
    return this.tok().encode(text, { addSpecial: options.addSpecial ?? true, parseSpecial: options.parseSpecial ?? false });
  }

  detokenize(ids: ArrayLike<number>, options: { special?: boolean } = {}): string {
    this.live();
    return this.tok().decode(ids, { special: options.special ?? false });
  }

  /** Render a conversation with the model's chat template (add_generation_prompt). */
  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    this.live();
    if (!this.chatTemplate) throw new InvalidArgumentError(`${this.source.path} has no chat template`);
    const t = this.tok();
    const bos = t.bosId !== null ? t.tokenText(t.bosId) : '';
    const eos = t.eosId !== null ? t.tokenText(t.eosId) : '';
    return new Template(this.chatTemplate).render({
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: bos,
      eos_token: eos,
    });
  }

  private promptIds(prompt: string | ChatMessage[] | ArrayLike<number>, addSpecial: boolean): number[] {
    if (typeof prompt === 'string') return this.tokenize(prompt, { addSpecial });
    if (Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] === 'object') {
      const text = this.applyChatTemplate(prompt as ChatMessage[]);
      // templates write BOS themselves
      return this.tok().encode(text, { addSpecial: false, parseSpecial: true });
    }
    const ids = Array.from(prompt as ArrayLike<number>);
    for (const t of ids) {
      if (!Number.isInteger(t) || t < 0 || t >= this.config.nVocab) throw new InvalidArgumentError(`token id ${t} is outside the vocabulary (0..${this.config.nVocab - 1})`);
    }
    return ids;
  }

  /** Logits at every position of `tokenIds` (one sequence): Float32Array [tokens x vocab]. */
  async logits(tokenIds: ArrayLike<number>, options: { signal?: AbortSignal; chunk?: number; kvCache?: KvCacheOption; store?: CoreKvStore } = {}): Promise<Float32Array> {
    this.live();
    const ids = this.promptIds(tokenIds, false);
    if (ids.length === 0) return new Float32Array(0);
    const V = this.config.nVocab;
    const out = new Float32Array(ids.length * V);
    const own = options.store === undefined && options.kvCache !== undefined ? this.runStore(options.kvCache) : null;
    const store = options.store ?? own ?? this.runtime.store;
    try {
      const block = await this.runtime.exclusive(() => store.createBlock());
      try {
        const chunk = options.chunk ?? 256;
        let buf: Float32Array | undefined;
        for (let i = 0; i < ids.length; i += chunk) {
          const part = ids.slice(i, i + chunk);
          buf = await this.runtime.forward([{ view: [block], tokens: part }], 'all', options.signal, store, buf);
          out.set(buf, i * V);
        }
      } finally {
        await this.runtime.exclusive(() => store.freeBlock(block)).catch(() => undefined);
      }
    } finally {
      if (own) await this.runtime.exclusive(() => own.dispose()).catch(() => own.dispose());
    }
    return out;
  }

  /** @internal A private store for one run's kvCache option (same backend, shape and page size as the model's). */
  runStore(kv: KvCacheOption): CoreKvStore {
    const r = resolveKvCache(kv, this);
    const c = this.config;
    return this.runtime.backend.createStore({
      nLayer: c.nLayer,
      nKvHead: c.nKvHead,
      headDim: c.headDim,
      pageTokens: this.runtime.store.params.pageTokens,
      dtype: r.dtype ?? 'f32',
      ...(r.codec ? { codec: r.codec } : {}),
    }) as CoreKvStore;
  }

  /** Stream a completion of a text prompt, a chat (messages) or token ids. */
  generate(prompt: string | ChatMessage[] | ArrayLike<number>, options: GenerateOptions = {}): Generation {
    this.live();
    validateSampling(options);
    const maxTokens = options.maxTokens ?? 256;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new InvalidArgumentError(`maxTokens must be a non-negative integer, got ${maxTokens}`);
    const stops = options.stop ?? [];
    if (!Array.isArray(stops) || stops.some((s) => typeof s !== 'string' || s.length === 0)) throw new InvalidArgumentError('stop must be an array of non-empty strings');
    if (options.prefillChunk !== undefined && (!Number.isInteger(options.prefillChunk) || options.prefillChunk < 1)) {
      throw new InvalidArgumentError(`prefillChunk must be a positive integer, got ${String(options.prefillChunk)}`);
    }
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidArgumentError('signal must be an AbortSignal');
    const ids = this.promptIds(prompt, options.addSpecial ?? true);
    if (ids.length === 0) throw new InvalidArgumentError('the prompt is empty (no tokens)');
    const sampler = new Sampler(options);
    return new Generation((emit) => this.runGeneration(ids, sampler, maxTokens, stops, options, emit), options.signal);
  }

  /** generate() with the model's chat template. */
  chat(messages: ChatMessage[], options: GenerateOptions = {}): Generation {
    if (!Array.isArray(messages) || messages.length === 0) throw new InvalidArgumentError('messages must be a non-empty array');
    return this.generate(messages, options);
  }

  private async runGeneration(
    ids: number[],
    sampler: Sampler,
    maxTokens: number,
    stops: string[],
    options: GenerateOptions,
    emit: (c: GenerateChunk) => void,
  ): Promise<GenerateResult> {
    const own = options.kvCache !== undefined ? this.runStore(options.kvCache) : null;
    const store = own ?? this.runtime.store;
    let block: number;
    try {
      block = await this.runtime.exclusive(() => store.createBlock());
    } catch (e) {
      own?.dispose();
      throw e;
    }
    const signal = options.signal;
    const stopOnEog = options.stopOnEog ?? true;
    const decoder = this.tokenizer?.createDecoder();
    const history = ids.slice();
    const generated: number[] = [];
    let text = '';
    let emittedChars = 0;
    let stopReason: StopReason = 'maxTokens';
    const maxStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
    const t0 = now();
    let prefillMs = 0;
    try {
      const chunk = options.prefillChunk ?? 256;
      let logits: Float32Array = new Float32Array(0);
      let buf: Float32Array | undefined; // this generation's logits row, rewritten each step
      // greedy without penalties/bias: the backend returns the pick itself (no logits copied back or scanned)
      const onDevice = sampler.argmaxOnly;
      let pick = 0;
      const step = async (tokens: number[]) => {
        if (onDevice) pick = (await this.runtime.forwardArgmax([{ view: [block], tokens }], 'last', signal, store)).ids[0]!;
        else buf = logits = await this.runtime.forward([{ view: [block], tokens }], 'last', signal, store, buf);
      };
      for (let i = 0; i < ids.length; i += chunk) {
        const part = ids.slice(i, i + chunk);
        if (i + chunk >= ids.length) await step(part);
        else await this.runtime.forward([{ view: [block], tokens: part }], 'none', signal, store);
      }
      prefillMs = now() - t0;
      const tDecode = now();
      while (generated.length < maxTokens) {
        if (signal?.aborted) throw new AbortError('generation was aborted');
        const next = onDevice ? pick : sampler.sample(logits, history);
        if (stopOnEog && this.isEog(next)) {
          stopReason = 'eog';
          break;
        }
        generated.push(next);
        history.push(next);
        let piece = decoder ? decoder.push(next) : '';
        text += piece;
        // stop strings: cut at the first occurrence; hold back a tail that could start one
        let hit = -1;
        for (const s of stops) {
          const at = text.indexOf(s, Math.max(0, emittedChars - s.length));
          if (at >= 0 && (hit < 0 || at < hit)) hit = at;
        }
        if (hit >= 0) {
          text = text.slice(0, hit);
          if (text.length > emittedChars) emit({ tokens: [next], text: text.slice(emittedChars) });
          emittedChars = text.length;
          stopReason = 'stop';
          break;
        }
        const safe = maxStop > 0 ? Math.max(emittedChars, text.length - (maxStop - 1)) : text.length;
        piece = text.slice(emittedChars, safe);
        emittedChars = safe;
        emit({ tokens: [next], text: piece });
        if (generated.length >= maxTokens) break;
        await step([next]);
      }
      if (stopReason !== 'stop' && decoder) {
        text += decoder.flush();
      }
      if (text.length > emittedChars) {
        emit({ tokens: [], text: text.slice(emittedChars) });
        emittedChars = text.length;
      }
      const decodeMs = now() - tDecode;
      const nDecode = Math.max(0, generated.length - 1);
      return {
        text,
        tokens: generated,
        promptTokens: ids.length,
        stopReason,
        timings: {
          prefillMs,
          decodeMs,
          prefillTokensPerSecond: prefillMs > 0 ? (ids.length / prefillMs) * 1000 : 0,
          decodeTokensPerSecond: decodeMs > 0 && nDecode > 0 ? (nDecode / decodeMs) * 1000 : 0,
        },
      };
    } finally {
      await this.runtime.exclusive(() => store.freeBlock(block)).catch(() => undefined);
      if (own) await this.runtime.exclusive(() => own.dispose()).catch(() => own.dispose());
    }
  }

  private isEog(id: number): boolean {
    if (this.tokenizer) return this.tokenizer.isEog(id);
    return this.config.eosTokenIds.includes(id);
  }

  /** Hogwild! inference: several workers of this model solve a problem together over one shared KV cache (docs/HOGWILD.md). */
  hogwild(options: HogwildOptions = {}): HogwildRun {
    this.live();
    return new HogwildRun(this, options);
  }

  /**
   * Perplexity of a text: the text is cut into chunks of `context` tokens, each starting with BOS; reports
   * the mean negative log-likelihood (nats/token) of every predicted token and exp of it.
   */
  async perplexity(text: string, options: PerplexityOptions = {}): Promise<PerplexityResult> {
    this.live();
    const ctx = options.context ?? 512;
    if (!Number.isInteger(ctx) || ctx < 2) throw new InvalidArgumentError(`context must be an integer >= 2, got ${ctx}`);
    const tok = this.tok();
    const bos = tok.bosId;
    const chunks: number[][] = [];
    if (options.chunkChars !== undefined) {
      if (!Number.isInteger(options.chunkChars) || options.chunkChars < 1)
        throw new InvalidArgumentError(`chunkChars must be an integer >= 1, got ${options.chunkChars}`);
      for (const piece of paragraphChunks(text, options.chunkChars)) {
        const ids = tok.encode(piece, { addSpecial: false });
        chunks.push((bos !== null ? [bos, ...ids] : ids).slice(0, ctx));
      }
    } else {
      const ids = tok.encode(text, { addSpecial: false });
      const step = bos !== null ? ctx - 1 : ctx;
      for (let i = 0; i < ids.length; i += step) {
        const part = ids.slice(i, i + step);
        chunks.push(bos !== null ? [bos, ...part] : part);
      }
    }
    const use = options.maxChunks ? chunks.slice(0, options.maxChunks) : chunks;
    const V = this.config.nVocab;
    let nll = 0;
    let count = 0;
    const runStore = options.kvCache !== undefined ? this.runStore(options.kvCache) : null;
    try {
    for (let c = 0; c < use.length; c++) {
      const ids = use[c]!;
      if (ids.length < 2) continue;
      const logits = await this.logits(ids, { signal: options.signal, chunk: options.prefillChunk, ...(runStore ? { store: runStore } : {}) });
      for (let i = 0; i + 1 < ids.length; i++) {
        const row = logits.subarray(i * V, (i + 1) * V);
        let m = -Infinity;
        for (let j = 0; j < V; j++) if (row[j]! > m) m = row[j]!;
        let s = 0;
        for (let j = 0; j < V; j++) s += Math.exp(row[j]! - m);
        nll += m + Math.log(s) - row[ids[i + 1]!]!;
        count++;
      }
      options.onProgress?.(c + 1, use.length);
    }
    } finally {
      if (runStore) await this.runtime.exclusive(() => runStore.dispose()).catch(() => runStore.dispose());
    }
    const meanNll = count > 0 ? nll / count : NaN;
    return { tokens: count, chunks: use.length, meanNll, perplexity: Math.exp(meanNll) };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.runtime.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function kvCacheStore(k: KvCacheOption | undefined, source: ModelSource): { kvDtype?: 'f32' | 'f16'; kvCodec?: KvCodec } {
  const r = resolveKvCache(k, { config: source.config, source });
  return { kvDtype: r.dtype, kvCodec: r.codec };
}

function validateLoadOptions(o: LoadModelOptions): void {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('loadModel options must be an object');
  if (o.threads !== undefined && (!Number.isInteger(o.threads) || o.threads < 1 || o.threads > 1024)) {
    throw new InvalidArgumentError(`threads must be an integer in [1, 1024], got ${String(o.threads)}`);
  }
  if (o.pageTokens !== undefined && (!Number.isInteger(o.pageTokens) || o.pageTokens < 1)) {
    throw new InvalidArgumentError(`pageTokens must be a positive integer, got ${String(o.pageTokens)}`);
  }
  if (o.kvCache !== undefined && (o.kvCache === null || !['f32', 'f16', 'uniform', 'higgs', 'aqua'].includes(o.kvCache.type))) {
    throw new InvalidArgumentError(`kvCache.type must be 'f32', 'f16', 'uniform', 'higgs' or 'aqua', got ${JSON.stringify(o.kvCache?.type)}`);
  }
  if (o.tokenizer !== undefined && (typeof o.tokenizer !== 'string' || o.tokenizer === '')) throw new InvalidArgumentError('tokenizer must be a file path');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new InvalidArgumentError('onProgress must be a function');
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new InvalidArgumentError('signal must be an AbortSignal');
}

/** Load a GGUF file, a llama2.c checkpoint (.bin + tokenizer.bin) or a Hugging Face folder (config.json + *.safetensors [+ tokenizer.json]). */
export async function loadModel(pathOrFolder: string, options: LoadModelOptions = {}): Promise<Model> {
  validateLoadOptions(options);
  if (options.signal?.aborted) throw new AbortError('model loading was aborted');
  const source = loadModelSource(pathOrFolder, { tokenizer: options.tokenizer });
  const backend =
    options.backend && typeof options.backend === 'object' ? options.backend : await createBackend({ backend: options.backend as BackendChoice | undefined });
  if (!(backend instanceof CoreBackend)) throw new InvalidArgumentError('backend must come from createBackend()');
  let tokenizer: Tokenizer | null = null;
  if (source.format === 'gguf' && source.gguf && source.gguf.metadata.has('tokenizer.ggml.model')) {
    tokenizer = new GgufTokenizer(source.gguf);
  } else if (source.llama2cVocab) {
    tokenizer = new GgufTokenizer(source.llama2cVocab);
  } else if (source.folder) {
    tokenizer = HfTokenizer.fromFolder(source.folder, source.config.eosTokenIds);
  }
  const runtime = await ModelRuntime.create(backend, source, {
    threads: options.threads,
    onProgress: options.onProgress,
    signal: options.signal,
    ...kvCacheStore(options.kvCache, source),
    pageTokens: options.pageTokens,
  });
  return new Model(source, runtime, tokenizer);
}
