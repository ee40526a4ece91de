/**
 * Token sampling over one row of logits. Backend-agnostic and deterministic for a given seed.
 *
 * Order (as in Hugging Face's logits processors): logit bias -> repetition / presence / frequency penalties
 * -> temperature -> top-k -> top-p -> min-p -> draw. Temperature 0 (the default) is greedy decoding.
 */
import { InvalidArgumentError } from '../errors.js';
import { Xoshiro128 } from '../util/random.js';

export interface SamplingOptions {
  /** 0 = greedy. Defaults to 0. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Defaults to 0. */
  topK?: number;
  /** Nucleus: keep the smallest set with cumulative probability >= topP; 1 = off. Defaults to 1. */
  topP?: number;
  /** Drop tokens with probability < minP * p(max); 0 = off. Defaults to 0. */
  minP?: number;
  /** Divide positive logits / multiply negative logits of already-seen tokens (CTRL style); 1 = off. Defaults to 1. */
  repetitionPenalty?: number;
  /** Subtract once from the logit of every token already seen; 0 = off. Defaults to 0. */
  presencePenalty?: number;
  /** Subtract count(token) times from its logit; 0 = off. Defaults to 0. */
  frequencyPenalty?: number;
  /** How many recent tokens the penalties look at; 0 = all. Defaults to 64. */
  penaltyLastN?: number;
  /** Added to the logits of the given token ids (-Infinity bans a token). Defaults to none. */
  logitBias?: Record<number, number> | Map<number, number>;
  /** Seed of the random generator; the same seed and inputs give the same tokens. Defaults to a random seed. */
  seed?: number;
}

/** Small, fast, seedable PRNG (xoshiro128** seeded by SplitMix32; `next()` is uniform in [0, 1)). */
export class Rng extends Xoshiro128 {}

/**
 * Index (relative to offset) of the largest of row[offset .. offset+n). Ties go to the LOWEST index, NaN is
 * never picked, and a row with nothing > -Infinity gives 0. The backends' HWKV_LOGITS_ARGMAX follows the same rule.
 */
export function argmax(row: Float32Array, offset = 0, n = row.length - offset): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = row[offset + i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

function checkRange(name: string, v: number | undefined, lo: number, hi: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !(v >= lo && v <= hi)) throw new InvalidArgumentError(`${name} must be in [${lo}, ${hi}], got ${String(v)}`);
}

export function validateSampling(o: SamplingOptions): void {
  checkRange('temperature', o.temperature, 0, 100);
  checkRange('topP', o.topP, 0, 1);
  checkRange('minP', o.minP, 0, 1);
  checkRange('repetitionPenalty', o.repetitionPenalty, 0.01, 100);
  checkRange('presencePenalty', o.presencePenalty, -100, 100);
  checkRange('frequencyPenalty', o.frequencyPenalty, -100, 100);
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) throw new InvalidArgumentError(`topK must be a non-negative integer, got ${o.topK}`);
  if (o.penaltyLastN !== undefined && (!Number.isInteger(o.penaltyLastN) || o.penaltyLastN < 0)) {
    throw new InvalidArgumentError(`penaltyLastN must be a non-negative integer, got ${o.penaltyLastN}`);
  }
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new InvalidArgumentError(`seed must be an integer, got ${o.seed}`);
}

/** A sampler for one sequence: keeps its RNG state so a seeded run is reproducible token by token. */
export class Sampler {
  private readonly o: Required<Omit<SamplingOptions, 'logitBias' | 'seed'>>;
  private readonly bias: [number, number][];
  private readonly rng: Rng;
  private scratch = new Float32Array(0);
  private idx = new Int32Array(0);

  constructor(options: SamplingOptions = {}) {
    validateSampling(options);
    this.o = {
      temperature: options.temperature ?? 0,
      topK: options.topK ?? 0,
      topP: options.topP ?? 1,
      minP: options.minP ?? 0,
      repetitionPenalty: options.repetitionPenalty ?? 1,
      presencePenalty: options.presencePenalty ?? 0,
      frequencyPenalty: options.frequencyPenalty ?? 0,
      penaltyLastN: options.penaltyLastN ?? 64,
    };
    const b = options.logitBias;
    this.bias = b instanceof Map ? [...b.entries()] : b ? Object.entries(b).map(([k, v]) => [Number(k), v]) : [];
    this.rng = new Rng(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  get greedy(): boolean {
    return this.o.temperature === 0;
  }

  /**
   * True when sample() is exactly argmax of the raw logits (greedy, no penalties, no logit bias): the caller
   * may then ask the backend for the pick instead of the logits (ModelRuntime.forwardArgmax).
   */
  get argmaxOnly(): boolean {
    const o = this.o;
    return this.greedy && o.repetitionPenalty === 1 && o.presencePenalty === 0 && o.frequencyPenalty === 0 && this.bias.length === 0;
  }

  /**
   * Pick the next token from logits[offset .. offset+nVocab). `history` = tokens so far (prompt + generated),
   * used by the penalties. The logits are not modified.
   */
  sample(logits: Float32Array, history: ArrayLike<number> = [], offset = 0, nVocab = logits.length - offset): number {
    const o = this.o;
    const needPenalty = o.repetitionPenalty !== 1 || o.presencePenalty !== 0 || o.frequencyPenalty !== 0;
    if (this.greedy && !needPenalty && this.bias.length === 0) return argmax(logits, offset, nVocab);
    if (this.scratch.length !== nVocab) {
      this.scratch = new Float32Array(nVocab);
      this.idx = new Int32Array(nVocab);
    }
    const x = this.scratch;
    x.set(logits.subarray(offset, offset + nVocab));
    for (const [t, v] of this.bias) if (t >= 0 && t < nVocab) x[t] = x[t]! + v;
    if (needPenalty) {
      const counts = new Map<number, number>();
      const start = o.penaltyLastN > 0 ? Math.max(0, history.length - o.penaltyLastN) : 0;
      for (let i = start; i < history.length; i++) {
        const t = history[i]!;
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      for (const [t, c] of counts) {
        if (t < 0 || t >= nVocab) continue;
        let v = x[t]!;
        if (o.repetitionPenalty !== 1) v = v > 0 ? v / o.repetitionPenalty : v * o.repetitionPenalty;
        v -= o.presencePenalty + c * o.frequencyPenalty;
        x[t] = v;
      }
    }
    if (this.greedy) return argmax(x);
    const invT = 1 / o.temperature;
    // candidates sorted by logit, descending (top-k first to keep the sort small)
    let n = nVocab;
    const idx = this.idx;
    for (let i = 0; i < n; i++) idx[i] = i;
    if (o.topK > 0 && o.topK < n) {
      // partial selection: quickselect the k largest to the front
      quickselect(idx, x, o.topK, n);
      n = o.topK;
    }
    const cand = Array.from(idx.subarray(0, n)).sort((a, b) => x[b]! - x[a]!);
    const maxL = x[cand[0]!]! * invT;
    const probs = new Float64Array(cand.length);
    let sum = 0;
    for (let i = 0; i < cand.length; i++) {
      const p = Math.exp(x[cand[i]!]! * invT - maxL);
      probs[i] = p;
      sum += p;
    }
    let m = cand.length;
    if (o.topP < 1) {
      let acc = 0;
      for (let i = 0; i < m; i++) {
        acc += probs[i]! / sum;
        if (acc >= o.topP) {
          m = i + 1;
          break;
        }
      }
    }
    if (o.minP > 0) {
      const thr = o.minP * probs[0]!;
      let k = 1;
      while (k < m && probs[k]! >= thr) k++;
      m = k;
    }
    let total = 0;
    for (let i = 0; i < m; i++) total += probs[i]!;
    let r = this.rng.next() * total;
    for (let i = 0; i < m; i++) {
      r -= probs[i]!;
      if (r <= 0) return cand[i]!;
    }
    return cand[m - 1]!;
  }
}

/** Reorder idx[0..n) so that its first k entries index the k largest values of x. */
function quickselect(idx: Int32Array, x: Float32Array, k: number, n: number): void {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = x[idx[(lo + hi) >> 1]!]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (x[idx[i]!]! > pivot) i++;
      while (x[idx[j]!]! < pivot) j--;
      if (i <= j) {
        const t = idx[i]!;
        idx[i] = idx[j]!;
        idx[j] = t;
        i++;
        j--;
      }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else return;
  }
}
