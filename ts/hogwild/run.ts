/**
 * HogwildRun: the collaboration loop over a HogwildCache (model.hogwild(options).solve(problem)).
 *
 * Per inference step: ONE batched forward of all workers (each fed its pending tokens: the token it sampled
 * last step, or a multi-token prefix at a step start), then every worker picks its next token. A worker whose
 * text ends a step (endsStep) has that step moved into the common history (layouts that merge), in worker order
 * for workers finishing in the same pass; the token that ended the step is fed as the FIRST token of the
 * worker's next step, followed by the step header (and, every `selfCheckEvery` generated tokens, the
 * self-check question). The run stops on an answer, on end-of-sequence, at the forward-pass budget or on abort.
 */
import { AbortError, InvalidArgumentError, TokenizerError, UnsupportedError } from '../errors.js';
import type { CoreKvStore } from '../backend/backend.js';
import type { StoreParams } from '../backend/types.js';
import { resolveKvCache, type KvCacheOption } from '../aqua/cache.js';
import { Sampler, argmax, validateSampling, type SamplingOptions } from '../engine/sampling.js';
import type { Model } from '../model/model.js';
import type { Tokenizer, TokenStreamDecoder } from '../tokenizer/types.js';
import { EventStream } from '../util/event-stream.js';
import { HogwildCache, type HeaderPrefill } from './cache.js';
import { resolveLayout, type LayoutName, type LayoutSpec } from './layout.js';
import {
  BOXED_ANSWER,
  DEFAULT_NAMES,
  DEFAULT_OPENERS,
  DEFAULT_SELF_CHECK,
  DEFAULT_STEP_HEADER,
  DEFAULT_SYSTEM_PROMPT,
  PLAIN_PROMPT_FORMAT,
  defaultGenerationPrefix,
  encodeFragment,
  endsStep,
  fillTemplate,
  renderSystemPrompt,
  type AnswerFormat,
} from './protocol.js';

export interface PickTokenContext {
  /** 'step': a worker's next token; 'final-answer': the forced final answer (worker -1, greedy by default). */
  phase: 'step' | 'final-answer';
  worker: number;
  name: string;
  /** The worker's current step number (1-based). */
  step: number;
  /** Forward passes of this run so far, including the one that produced these logits. */
  forwardPass: number;
  /** This worker's logits row (do not keep a reference; it is reused). */
  logits: Float32Array;
  /** The token the configured sampler would pick. */
  sample(): number;
}

export interface HogwildOptions {
  /** Number of workers, 1..8 (more are allowed, up to 64). Defaults to 2. */
  workers?: number;
  /** Cache layout: 'combined' (default), 'contiguous', 'interleaved', or a LayoutSpec. */
  layout?: LayoutName | LayoutSpec;
  /** Worker names. Defaults to Alice, Bob, Carol, Dave, Eve, Frank, Grace, Heidi, then Worker9, … */
  names?: string[];
  /** Collaboration instructions ({workers}, {names}, {first} are filled in). Defaults to DEFAULT_SYSTEM_PROMPT. */
  systemPrompt?: string;
  /** Where the instructions go when a chat template is used: before the problem in the user message (default) or as a system message. */
  systemMessage?: 'user' | 'system';
  /** Use the model's chat template: 'auto' (default) = when it has one; false = the plain-text format. */
  chatTemplate?: 'auto' | boolean;
  /** Plain-text format for models without a chat template ({system}, {problem}). Defaults to PLAIN_PROMPT_FORMAT. */
  plainFormat?: string;
  /** Text the assistant turn starts with (e.g. '<think>\n'). Defaults to '<think>\n' for templates that know that tag, else ''. */
  generationPrefix?: string;
  /** Header block texts by id (e.g. { others, own } for 'combined'); default: the layout's. */
  headers?: Record<string, string>;
  /** How header blocks are prefilled: 'in-context' (default) or 'standalone'. */
  headerPrefill?: HeaderPrefill;
  /** Step header template ({name}, {step}). Defaults to DEFAULT_STEP_HEADER ('**Alice [3]:** '). */
  stepHeader?: string;
  /** Text after each worker's first header: [first worker, the others] or one per worker; false = none. */
  openers?: string[] | false;
  /** Insert the self-check after a step header once this many tokens were generated (all workers); 0 = never. Defaults to 512. */
  selfCheckEvery?: number;
  /** The self-check question. Defaults to DEFAULT_SELF_CHECK. */
  selfCheckPrompt?: string;
  /** Sampling of every worker (worker w uses seed + w). Defaults to greedy. */
  sampling?: SamplingOptions;
  /** End-of-sequence: 'stop' the run (default) or 'suppress' it (never sampled). */
  onEos?: 'stop' | 'suppress';
  /** How answers are found and forced. Defaults to \boxed{…}. */
  answer?: AnswerFormat;
  /** Tokens the forced final answer may take (default 32); false = no forced answer. */
  finalAnswer?: { maxTokens?: number } | false;
  /**
   * A KV store of its own for the run (element type or compressed cache, page size, memory cap); default: the
   * model's store (which carries loadModel's kvCache, compressed or not). 'uniform' / 'higgs' take the
   * KvCodec fields (bits, sinks, buffer, chunkTokens, ...) and `dtype` for the exact pages.
   */
  kvCache?: { type?: 'f32' | 'f16'; pageTokens?: number; maxBytes?: number } | (KvCacheOption & { pageTokens?: number; maxBytes?: number });
  /** Tokens per prefill call. Defaults to 256. */
  prefillChunk?: number;
  /** Override token choice (constrained decoding, tests). Return a token id. */
  pickToken?: (ctx: PickTokenContext) => number;
}

export interface SolveOptions {
  /** Budget of inference steps (batched forward passes, prefill excluded). Defaults to 4096. */
  maxForwardPasses?: number;
  signal?: AbortSignal;
  /** Record the state (and an answer) when the run reaches these forward-pass counts. */
  snapshots?: number[];
  /** Force an answer at each snapshot that has none yet (costs a short extra generation). Defaults to true. */
  snapshotAnswers?: boolean;
}

export type HogwildEvent =
  | { type: 'token'; worker: number; name: string; step: number; token: number; text: string; forwardPass: number }
  | { type: 'step-finished'; worker: number; name: string; step: number; text: string; forwardPass: number }
  | { type: 'self-check'; phase: 'asked'; worker: number; name: string; step: number; prompt: string; forwardPass: number }
  | { type: 'self-check'; phase: 'answered'; worker: number; name: string; step: number; answer: string; redundant: boolean | null; forwardPass: number }
  | { type: 'snapshot'; snapshot: HogwildSnapshot }
  | { type: 'answer'; answer: string | null; source: 'worker' | 'forced'; worker: number | null; forwardPass: number };

export interface HogwildStep {
  worker: number;
  /** 1-based step number of that worker. */
  step: number;
  /** Header, optional self-check, content, and the text of the token that ended it. */
  text: string;
  /** Forward pass at which it ended. */
  forwardPass: number;
}

export interface HogwildWorkerResult {
  name: string;
  /** Everything this worker wrote, headers included. */
  transcript: string;
  /** Finished steps, then (if unfinished) the current one with forwardPass -1. */
  steps: HogwildStep[];
  /** Tokens this worker sampled. */
  generatedTokens: number;
  /** Tokens fed for this worker (sampled ones plus headers / self-checks). */
  fedTokens: number;
}

export interface HogwildSnapshot {
  /** The budget this snapshot stands for. */
  budget: number;
  /** false when the run ended before the budget (the snapshot is the end state). */
  reached: boolean;
  forwardPasses: number;
  answer: string | null;
  answerSource: 'worker' | 'forced' | null;
  history: string;
  currentSteps: string[];
  tokensPerWorker: number[];
}

export type HogwildStopReason = 'answer' | 'eos' | 'budget';

export interface HogwildResult {
  answer: string | null;
  answerSource: 'worker' | 'forced' | null;
  /** The worker whose text held the answer (null when forced). */
  answerWorker: number | null;
  stopReason: HogwildStopReason;
  layout: string;
  /** The prompt as text (chat template applied). */
  prompt: string;
  promptTokens: number;
  /** Finished steps of all workers in the order they finished (the shared history). */
  history: string;
  steps: HogwildStep[];
  workers: HogwildWorkerResult[];
  /** Batched inference steps (the budget unit). */
  forwardPasses: number;
  tokensPerWorker: number[];
  totalTokens: number;
  selfChecks: { worker: number; step: number; forwardPass: number; answer: string | null }[];
  snapshots: HogwildSnapshot[];
  /** Text generated after the final-answer request, when one was made. */
  forcedText: string | null;
  timings: {
    prefillMs: number;
    decodeMs: number;
    finalAnswerMs: number;
    totalMs: number;
    msPerForwardPass: number;
    /** All workers' generated tokens per second of decoding. */
    tokensPerSecond: number;
  };
}

/** A running solve: iterate it for events, or await `result`. */
export class HogwildSolve extends EventStream<HogwildEvent, HogwildResult> {
  /** @internal */
  constructor(run: (emit: (e: HogwildEvent) => void) => Promise<HogwildResult>) {
    super(run);
  }
}

interface WorkerState {
  name: string;
  step: number;
  pending: number[];
  /** Text of the current step: header (+ self-check) + content. */
  stepText: string;
  /** Where the content starts in stepText. */
  contentStart: number;
  transcript: string;
  steps: HogwildStep[];
  decoder: TokenStreamDecoder;
  sampler: Sampler;
  history: number[];
  generated: number;
  fed: number;
  selfCheck: { index: number; text: string; tokens: number } | null;
}

function now(): number {
  return performance.now();
}

export class HogwildRun {
  readonly model: Model;
  readonly workers: number;
  readonly names: string[];
  readonly layout: LayoutSpec;
  /** The cache of the last solve (kept for inspection until the next solve or dispose). */
  cache: HogwildCache | null = null;
  private readonly o: HogwildOptions;
  private readonly store: CoreKvStore | null;
  private busy = false;
  private disposed = false;

  constructor(model: Model, options: HogwildOptions = {}) {
    this.model = model;
    this.o = options;
    const W = options.workers ?? 2;
    if (!Number.isInteger(W) || W < 1 || W > 64) throw new InvalidArgumentError(`workers must be an integer in [1, 64], got ${String(W)}`);
    this.workers = W;
    this.layout = resolveLayout(options.layout);
    const names = options.names ?? [];
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n.trim() === '')) throw new InvalidArgumentError('names must be non-empty strings');
    this.names = Array.from({ length: W }, (_, w) => names[w] ?? DEFAULT_NAMES[w] ?? `Worker${w + 1}`);
    if (new Set(this.names).size !== W) throw new InvalidArgumentError(`worker names must differ: ${this.names.join(', ')}`);
    if (options.sampling) validateSampling(options.sampling);
    const k = options.selfCheckEvery ?? 512;
    if (!Number.isInteger(k) || k < 0) throw new InvalidArgumentError(`selfCheckEvery must be a non-negative integer, got ${String(k)}`);
    if (options.onEos !== undefined && options.onEos !== 'stop' && options.onEos !== 'suppress') throw new InvalidArgumentError(`onEos must be 'stop' or 'suppress'`);
    if (!model.tokenizer) throw new TokenizerError('TOKENIZER_INVALID', `${model.source.path} has no tokenizer; Hogwild! solve() needs one (HogwildCache works on token ids)`);
    if (options.kvCache) {
      const c = model.config;
      this.store = model.runtime.backend.createStore({
        nLayer: c.nLayer,
        nKvHead: c.nKvHead,
        headDim: c.headDim,
        ...kvStoreOf(options.kvCache, model),
      }) as CoreKvStore;
    } else {
      this.store = null;
    }
  }

  private tok(): Tokenizer {
    return this.model.tokenizer!;
  }

  /** The prompt text (chat template or plain format) for a problem, with the generation prefix. */
  promptText(problem: string): { text: string; templated: boolean } {
    const o = this.o;
    const system = renderSystemPrompt(o.systemPrompt ?? DEFAULT_SYSTEM_PROMPT, this.names);
    const useTemplate = o.chatTemplate === undefined || o.chatTemplate === 'auto' ? this.model.chatTemplate !== null : o.chatTemplate;
    if (useTemplate && this.model.chatTemplate === null) throw new UnsupportedError(`${this.model.source.path} has no chat template`);
    const prefix = o.generationPrefix ?? defaultGenerationPrefix(this.model.chatTemplate);
    if (!useTemplate) return { text: fillTemplate(o.plainFormat ?? PLAIN_PROMPT_FORMAT, { system, problem }) + prefix, templated: false };
    const messages =
      (o.systemMessage ?? 'user') === 'system'
        ? [
            { role: 'system', content: system },
            { role: 'user', content: problem },
          ]
        : [{ role: 'user', content: `${system}\n\n${problem}` }];
    return { text: this.model.applyChatTemplate(messages, { addGenerationPrompt: true }) + prefix, templated: true };
  }

  private stepHeader(w: number, step: number): string {
    return fillTemplate(this.o.stepHeader ?? DEFAULT_STEP_HEADER, { name: this.names[w]!, step });
  }

  private opener(w: number): string {
    const o = this.o.openers;
    if (o === false) return '';
    const list = o ?? DEFAULT_OPENERS;
    const t = o && o.length === this.workers ? list[w] : w === 0 ? list[0] : list[1] ?? list[0];
    return t ? fillTemplate(t, { name: this.names[w]!, step: 1 }) : '';
  }

  /** Run the workers on a problem. */
  solve(problem: string, options: SolveOptions = {}): HogwildSolve {
    if (this.disposed) throw new InvalidArgumentError('this Hogwild! run was disposed');
    if (typeof problem !== 'string' || problem.trim() === '') throw new InvalidArgumentError('problem must be a non-empty string');
    const max = options.maxForwardPasses ?? 4096;
    if (!Number.isInteger(max) || max < 1) throw new InvalidArgumentError(`maxForwardPasses must be a positive integer, got ${String(max)}`);
    const snaps = [...new Set(options.snapshots ?? [])].sort((a, b) => a - b);
    if (snaps.some((s) => !Number.isInteger(s) || s < 1)) throw new InvalidArgumentError('snapshots must be positive integers');
    if (this.busy) throw new InvalidArgumentError('this Hogwild! run is already solving a problem');
    this.busy = true;
    return new HogwildSolve((emit) =>
      this.loop(problem, max, snaps, options, emit).finally(() => {
        this.busy = false;
      }),
    );
  }

  private async loop(problem: string, maxPasses: number, snapBudgets: number[], so: SolveOptions, emit: (e: HogwildEvent) => void): Promise<HogwildResult> {
    const o = this.o;
    const tok = this.tok();
    const W = this.workers;
    const V = this.model.config.nVocab;
    const signal = so.signal;
    const answerFmt = o.answer ?? BOXED_ANSWER;
    const selfEvery = o.selfCheckEvery ?? 512;
    const selfPrompt = o.selfCheckPrompt ?? DEFAULT_SELF_CHECK;
    const suppressEos = o.onEos === 'suppress';
    const t0 = now();

    // a fresh cache per solve; the previous one is released
    this.cache?.dispose();
    this.cache = null;
    const cache = await HogwildCache.create(this.model.runtime, { workers: W, layout: this.layout, store: this.store ?? undefined });
    this.cache = cache;

    const { text: promptText, templated } = this.promptText(problem);
    const promptIds = templated ? tok.encode(promptText, { addSpecial: false, parseSpecial: true }) : tok.encode(promptText, { addSpecial: true, parseSpecial: false });
    const commonIds = [...promptIds, ...encodeFragment(tok, this.layout.historyHeading ?? '')];
    const headerIds: Record<string, number[]> = {};
    for (const h of cache.headerIds) {
      const t = o.headers?.[h] ?? this.layout.headers?.[h];
      if (t === undefined) throw new InvalidArgumentError(`layout '${this.layout.name}' uses header '${h}' but no text was given (options.headers.${h})`);
      headerIds[h] = encodeFragment(tok, t);
    }
    await cache.prefill(commonIds, headerIds, { chunk: o.prefillChunk ?? 256, signal, headerPrefill: o.headerPrefill });
    const prefillMs = now() - t0;

    const eog = [...tok.eogIds];
    const bias = new Map<number, number>();
    const userBias = o.sampling?.logitBias;
    if (userBias) for (const [k, v] of userBias instanceof Map ? userBias : Object.entries(userBias).map(([k, v]) => [Number(k), v] as const)) bias.set(k, v);
    if (suppressEos) for (const t of eog) bias.set(t, -Infinity);
    const baseSeed = o.sampling?.seed ?? Math.floor(Math.random() * 2 ** 31);

    const ws: WorkerState[] = this.names.map((name, w) => {
      const head = this.stepHeader(w, 1);
      const open = this.opener(w);
      const pending = encodeFragment(tok, head + open);
      return {
        name,
        step: 1,
        pending,
        stepText: head + open,
        contentStart: head.length,
        transcript: head + open,
        steps: [],
        decoder: tok.createDecoder(),
        sampler: new Sampler({ ...o.sampling, seed: baseSeed + w, logitBias: bias }),
        history: [],
        generated: 0,
        fed: 0,
        selfCheck: null,
      };
    });
    const finished: HogwildStep[] = [];
    const selfChecks: HogwildResult['selfChecks'] = [];
    const snapshots: HogwildSnapshot[] = [];
    let sinceCheck = 0;
    let answer: string | null = null;
    let answerWorker: number | null = null;
    let stopReason: HogwildStopReason = 'budget';
    let finalAnswerMs = 0;
    const tDecode = now();

    const historyText = () => finished.map((s) => s.text).join('');
    const snapshot = async (budget: number, reached: boolean): Promise<HogwildSnapshot> => {
      let a = answer;
      let src: HogwildSnapshot['answerSource'] = answer !== null ? 'worker' : null;
      if (a === null && (so.snapshotAnswers ?? true) && o.finalAnswer !== false) {
        const t = now();
        a = (await this.forceAnswer(cache, answerFmt, signal)).answer;
        finalAnswerMs += now() - t;
        src = 'forced';
      }
      const s: HogwildSnapshot = {
        budget,
        reached,
        forwardPasses: cache.forwardPasses,
        answer: a,
        answerSource: src,
        history: historyText(),
        currentSteps: ws.map((x) => x.stepText),
        tokensPerWorker: ws.map((x) => x.generated),
      };
      snapshots.push(s);
      emit({ type: 'snapshot', snapshot: s });
      return s;
    };
    const resolveSelfCheck = (w: number, st: WorkerState, fp: number) => {
      const sc = st.selfCheck!;
      st.selfCheck = null;
      const ans = sc.text.trim().split('\n')[0]!.trim();
      selfChecks[sc.index]!.answer = ans;
      const lower = ans.toLowerCase();
      const redundant = /^\W*yes\b/.test(lower) ? true : /^\W*no\b/.test(lower) ? false : null;
      emit({ type: 'self-check', phase: 'answered', worker: w, name: st.name, step: st.step, answer: ans, redundant, forwardPass: fp });
    };

    while (cache.forwardPasses < maxPasses) {
      if (signal?.aborted) throw new AbortError('the Hogwild! run was aborted');
      const feeds = ws.map((s) => s.pending);
      // greedy workers without bias/penalties and no pickToken hook: the backend picks (no logits come back)
      const picks = !o.pickToken && ws.every((s) => s.sampler.argmaxOnly) ? await cache.stepArgmax(feeds, signal) : null;
      const logits = picks ? new Float32Array(0) : await cache.step(feeds, 'last', signal, true);
      const fp = cache.forwardPasses;
      ws.forEach((s, w) => (s.fed += feeds[w]!.length));
      if (signal?.aborted) throw new AbortError('the Hogwild! run was aborted');
      const ending: number[] = [];
      const picked: number[] = [];
      let eos = false;
      for (let w = 0; w < W; w++) {
        const st = ws[w]!;
        const row = logits.subarray(w * V, (w + 1) * V);
        const sample = () => st.sampler.sample(row, st.history);
        const t = picks ? picks[w]! : o.pickToken ? o.pickToken({ phase: 'step', worker: w, name: st.name, step: st.step, forwardPass: fp, logits: row, sample }) : sample();
        if (!Number.isInteger(t) || t < 0 || t >= V) throw new InvalidArgumentError(`pickToken returned ${String(t)}, not a token id`);
        picked.push(t);
        st.generated++;
        sinceCheck++;
        st.history.push(t);
        if (tok.isEog(t)) {
          eos = true;
          continue;
        }
        const piece = st.decoder.push(t);
        const content = st.stepText.slice(st.contentStart);
        st.stepText += piece;
        st.transcript += piece;
        emit({ type: 'token', worker: w, name: st.name, step: st.step, token: t, text: piece, forwardPass: fp });
        if (st.selfCheck) {
          st.selfCheck.text += piece;
          st.selfCheck.tokens++;
          if (/[\n.!?]/.test(st.selfCheck.text.trimStart().slice(1)) || st.selfCheck.tokens >= 12) resolveSelfCheck(w, st, fp);
        }
        if (answer === null) {
          const a = answerFmt.extract(st.stepText.slice(st.contentStart));
          if (a !== null) {
            answer = a;
            answerWorker = w;
          }
        }
        if (endsStep(content, piece)) ending.push(w);
      }
      // finished steps move into the history in worker order; the ending token opens the next step
      for (let w = 0; w < W; w++) {
        const st = ws[w]!;
        if (!ending.includes(w)) {
          st.pending = [picked[w]!];
          continue;
        }
        if (st.selfCheck) resolveSelfCheck(w, st, fp);
        const done: HogwildStep = { worker: w, step: st.step, text: st.stepText, forwardPass: fp };
        st.steps.push(done);
        finished.push(done);
        await cache.finishStep(w);
        emit({ type: 'step-finished', worker: w, name: st.name, step: st.step, text: st.stepText, forwardPass: fp });
        st.step++;
        const head = this.stepHeader(w, st.step);
        let prefix = head;
        if (selfEvery > 0 && sinceCheck >= selfEvery) {
          sinceCheck = 0;
          prefix += selfPrompt;
          st.selfCheck = { index: selfChecks.length, text: '', tokens: 0 };
          selfChecks.push({ worker: w, step: st.step, forwardPass: fp, answer: null });
          emit({ type: 'self-check', phase: 'asked', worker: w, name: st.name, step: st.step, prompt: selfPrompt, forwardPass: fp });
        }
        st.pending = [picked[w]!, ...encodeFragment(tok, prefix)];
        st.stepText = prefix;
        st.contentStart = head.length;
        st.transcript += prefix;
      }
      if (answer !== null) stopReason = 'answer';
      else if (eos) stopReason = 'eos';
      const stopping = answer !== null || eos;
      while (snapBudgets.length > 0 && snapBudgets[0]! <= fp) {
        const b = snapBudgets.shift()!;
        await snapshot(b, true);
      }
      if (stopping) break;
    }
    const decodeMs = now() - tDecode;
    for (const st of ws) {
      const tail = st.decoder.flush();
      st.stepText += tail;
      st.transcript += tail;
    }
    let source: HogwildResult['answerSource'] = answer !== null ? 'worker' : null;
    let forcedText: string | null = null;
    if (answer === null && o.finalAnswer !== false) {
      const t = now();
      const f = await this.forceAnswer(cache, answerFmt, signal);
      finalAnswerMs += now() - t;
      answer = f.answer;
      forcedText = f.text;
      source = 'forced';
    }
    if (answer !== null || source === 'forced') emit({ type: 'answer', answer, source: source ?? 'forced', worker: answerWorker, forwardPass: cache.forwardPasses });
    // budgets the run did not reach: the end state answers them
    for (const b of snapBudgets) {
      const s: HogwildSnapshot = {
        budget: b,
        reached: false,
        forwardPasses: cache.forwardPasses,
        answer,
        answerSource: source,
        history: historyText(),
        currentSteps: ws.map((x) => x.stepText),
        tokensPerWorker: ws.map((x) => x.generated),
      };
      snapshots.push(s);
      emit({ type: 'snapshot', snapshot: s });
    }
    const total = ws.reduce((s, x) => s + x.generated, 0);
    const passes = cache.forwardPasses;
    return {
      answer,
      answerSource: source,
      answerWorker,
      stopReason,
      layout: this.layout.name,
      prompt: promptText,
      promptTokens: promptIds.length,
      history: historyText(),
      steps: finished,
      workers: ws.map((st, w) => ({
        name: st.name,
        transcript: st.transcript,
        steps: [...st.steps, ...(st.stepText.length > 0 ? [{ worker: w, step: st.step, text: st.stepText, forwardPass: -1 }] : [])],
        generatedTokens: st.generated,
        fedTokens: st.fed,
      })),
      forwardPasses: passes,
      tokensPerWorker: ws.map((x) => x.generated),
      totalTokens: total,
      selfChecks,
      snapshots,
      forcedText,
      timings: {
        prefillMs,
        decodeMs,
        finalAnswerMs,
        totalMs: now() - t0,
        msPerForwardPass: passes > 0 ? decodeMs / passes : 0,
        tokensPerSecond: decodeMs > 0 ? (total / decodeMs) * 1000 : 0,
      },
    };
  }

  /**
   * Ask once for the final answer: a temporary block after the common block and every worker's block (what
   * everyone wrote so far, reusing the cache, nothing recomputed) holds the request; greedy continuation.
   */
  private async forceAnswer(cache: HogwildCache, fmt: AnswerFormat, signal?: AbortSignal): Promise<{ answer: string | null; text: string }> {
    const tok = this.tok();
    const fa = this.o.finalAnswer;
    const maxTokens = (fa ? fa.maxTokens : undefined) ?? 32;
    const store = cache.store;
    const runtime = this.model.runtime;
    const tmp = await runtime.exclusive(() => store.createBlock());
    const view = [cache.common, ...cache.own, tmp];
    const decoder = tok.createDecoder();
    let text = '';
    try {
      let feed = encodeFragment(tok, fmt.forcePrompt);
      for (let i = 0; i < maxTokens; i++) {
        const seqs = [{ view, tokens: feed }];
        let t: number;
        if (this.o.pickToken) {
          const l = await this.model.runtime.forward(seqs, 'last', signal, store);
          t = this.o.pickToken({ phase: 'final-answer', worker: -1, name: '', step: 0, forwardPass: cache.forwardPasses, logits: l, sample: () => argmax(l) });
        } else t = (await this.model.runtime.forwardArgmax(seqs, 'last', signal, store)).ids[0]!;
        if (tok.isEog(t)) break;
        text += decoder.push(t);
        if (fmt.parseForced(text, false) !== null) break;
        feed = [t];
      }
      text += decoder.flush();
      return { answer: fmt.parseForced(text, true), text };
    } finally {
      await runtime.exclusive(() => store.freeBlock(tmp)).catch(() => undefined);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.cache?.dispose();
    this.cache = null;
    this.store?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Store parameters of a run's own kvCache option (exact element type, or a codec over exact pages). */
function kvStoreOf(k: NonNullable<HogwildOptions['kvCache']>, model: Model): Pick<StoreParams, 'dtype' | 'pageTokens' | 'maxBytes' | 'codec'> {
  const { pageTokens, maxBytes, ...rest } = k as { type?: string; pageTokens?: number; maxBytes?: number } & Record<string, unknown>;
  const base = { pageTokens: pageTokens ?? 64, maxBytes: maxBytes ?? 0 };
  const r = resolveKvCache({ ...rest, type: rest.type ?? 'f32' } as KvCacheOption, model);
  return { ...base, dtype: r.dtype ?? 'f32', ...(r.codec ? { codec: r.codec } : {}) };
}
