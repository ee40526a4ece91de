/**
 * The sampler (ts/engine/sampling.ts) against independently computed distributions, and sampling through
 * the model:
 *  - temperature / top-k / top-p / min-p / logit bias / penalties on fresh random logits each run: the
 *    empirical frequencies of many draws vs the analytic truncated softmax (chi-square at p = 1e-7 over tokens
 *    expected >= 5 times, the rarer ones pooled, and
 *    truncated tokens never drawn);
 *  - repetition / presence / frequency penalties and penaltyLastN on a hand-computed example;
 *    logit bias -Infinity bans a token;
 *  - seeded reproducibility on stories260K (same seed -> same tokens, different seeds -> different
 *    sequences at temperature 1), stop strings ("Lily": ends before it, stopReason 'stop'), streamed chunks
 *    concatenating to result.text, timings.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel, type GenerateChunk, type Generation } from '../ts/index.ts';
import { Sampler, type SamplingOptions } from '../ts/engine/sampling.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import type { Rng } from './helpers/rng.ts';

const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const STORIES = path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf');
const S = suite('sampling');

/**
 * The distribution the options define, computed in float64 from the definitions: bias, then penalties
 * (given here as already-adjusted logits), softmax at temperature T, keep the k largest, keep the smallest
 * most-likely prefix with mass >= topP (of the renormalised top-k), drop p < minP * p_max.
 */
function expectedDistribution(logits: ArrayLike<number>, o: SamplingOptions): number[] {
  const V = logits.length;
  const l = Array.from(logits, (x) => Math.fround(x));
  if (o.logitBias) for (const [t, b] of Object.entries(o.logitBias)) l[Number(t)] = Math.fround(l[Number(t)]! + b);
  const T = o.temperature!;
  const order = [...Array(V).keys()].sort((a, b) => l[b]! - l[a]!);
  let keep = order.filter((i) => l[i] !== -Infinity);
  if (o.topK) keep = keep.slice(0, o.topK);
  const w = (i: number) => Math.exp((l[i]! - l[keep[0]!]!) / T);
  let z = keep.reduce((s, i) => s + w(i), 0);
  if (o.topP !== undefined && o.topP < 1) {
    let acc = 0;
    let n = 0;
    while (n < keep.length) {
      acc += w(keep[n]!) / z;
      n++;
      if (acc >= o.topP) break;
    }
    keep = keep.slice(0, n);
  }
  if (o.minP) keep = keep.filter((i) => w(i) >= o.minP! * w(keep[0]!));
  z = keep.reduce((s, i) => s + w(i), 0);
  const p = new Array<number>(V).fill(0);
  for (const i of keep) p[i] = w(i) / z;
  return p;
}

/** Upper 1e-7 quantile of chi-square with df degrees of freedom (Wilson-Hilferty). */
function chiSquareLimit(df: number): number {
  const z = 5.199; // standard normal 1 - 1e-7
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

function drawCounts(logits: Float32Array, o: SamplingOptions, n: number, history: number[] = []): number[] {
  const s = new Sampler(o);
  const c = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) c[s.sample(logits, history)]!++;
  return c;
}

function checkAgainst(what: string, counts: number[], p: number[]): string {
  const n = counts.reduce((a, b) => a + b, 0);
  let chi = 0;
  let df = -1;
  // tokens expected fewer than 5 times are pooled into one bin (the chi-square approximation needs expected
  // counts of about 5 or more: one draw of a token expected 0.01 times would alone add ~100)
  let poolE = 0;
  let poolC = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) {
      assert.is(counts[i], 0, `${what}: token ${i} is outside the truncated distribution but was drawn ${counts[i]} times`);
      continue;
    }
    const e = n * p[i]!;
    if (e < 5) {
      poolE += e;
      poolC += counts[i]!;
      continue;
    }
    df++;
    chi += (counts[i]! - e) ** 2 / e;
  }
  if (poolE > 0) {
    df++;
    chi += (poolC - poolE) ** 2 / poolE;
  }
  if (df <= 0) return `${what}: single bin`;
  const lim = chiSquareLimit(df);
  assert.ok(chi <= lim, `${what}: chi-square ${chi.toFixed(1)} > ${lim.toFixed(1)} (df ${df})\n  counts ${counts.join(',')}\n  expect ${p.map((x) => (x * n).toFixed(0)).join(',')}`);
  return `${what}: chi2=${chi.toFixed(1)}/${lim.toFixed(0)} df=${df}`;
}

function randomLogits(rng: Rng, V: number): Float32Array {
  return Float32Array.from({ length: V }, () => rng.normal() * 2);
}

seededTest(S, 'sampling', 'temperature / top-k / top-p / min-p / bias: empirical frequencies vs the analytic truncated softmax', (rng) => {
  const N = 40000;
  const lines: string[] = [];
  const V = 16;
  for (let trial = 0; trial < 12; trial++) {
    const logits = randomLogits(rng, V);
    const T = rng.pick([0.5, 1, 1.5]);
    const kind = trial % 6;
    const o: SamplingOptions = { temperature: T, seed: rng.int(0, 2 ** 31) };
    if (kind === 1) o.topK = rng.int(2, 8);
    if (kind === 2) o.topP = rng.pick([0.5, 0.8, 0.95]);
    if (kind === 3) o.minP = rng.pick([0.05, 0.1, 0.3]);
    if (kind === 4) Object.assign(o, { topK: rng.int(4, 10), topP: 0.9, minP: 0.05 });
    if (kind === 5) o.logitBias = { [rng.int(0, V - 1)]: -Infinity, [rng.int(0, V - 1)]: 3 };
    const p = expectedDistribution(logits, o);
    lines.push(checkAgainst(`trial ${trial} ${JSON.stringify({ ...o, seed: undefined })}`, drawCounts(logits, o, N), p));
  }
  // a sanity check of the checker itself: a wrong distribution (temperature 1 vs 1.5) is rejected
  const logits = randomLogits(rng, V);
  const wrong = expectedDistribution(logits, { temperature: 1.5 });
  let rejected = false;
  try {
    checkAgainst('wrong temperature', drawCounts(logits, { temperature: 1, seed: 1 }, N), wrong);
  } catch {
    rejected = true;
  }
  assert.ok(rejected, 'the chi-square check rejects draws at temperature 1 against the temperature-1.5 distribution');
  console.log(`\n${lines.join('\n')}`);
});

S('penalties and bias on a hand-computed example', () => {
  // logits of 6 tokens; history (oldest first) 4, 0, 1, 1, 3 with penaltyLastN 4 -> window 0, 1, 1, 3
  const logits = Float32Array.of(2.0, -1.0, 0.5, 1.9, -0.5, 1.0);
  const history = [4, 0, 1, 1, 3];
  const o = { repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25, penaltyLastN: 4 };
  // by hand: t0 (seen once): 2.0/2 - 0.5 - 0.25 = 0.25; t1 (twice): -1.0*2 - 0.5 - 0.5 = -3.0;
  //          t3 (once): 1.9/2 - 0.75 = 0.2; t4 outside the window: -0.5; t2, t5 unseen: 0.5, 1.0
  const adjusted = [0.25, -3.0, 0.5, 0.2, -0.5, 1.0];
  assert.is(new Sampler(o).sample(logits, history), 5, 'greedy after penalties');
  assert.is(new Sampler({}).sample(logits, history), 0, 'greedy without penalties');
  assert.is(new Sampler({ repetitionPenalty: 1.1 }).sample(Float32Array.of(3.0, 2.9), [0]), 1, '3.0/1.1 < 2.9');
  assert.is(new Sampler({ repetitionPenalty: 1.1 }).sample(Float32Array.of(-3.0, -3.2), [0]), 1, '-3.0*1.1 < -3.2');
  // with temperature 1 the draws follow softmax(adjusted)
  const p = expectedDistribution(Float32Array.from(adjusted), { temperature: 1 });
  checkAgainst('penalised distribution', drawCounts(logits, { ...o, temperature: 1, seed: 7 }, 40000, history), p);
  // penaltyLastN 0 = whole history: t4 is penalised too
  assert.is(new Sampler({ presencePenalty: 10, penaltyLastN: 0 }).sample(Float32Array.of(0, 0, 0, 0, 5), history), 2);
  // bias: -Infinity bans the argmax; +bias promotes
  assert.is(new Sampler({ logitBias: { 0: -Infinity } }).sample(logits), 3);
  assert.is(new Sampler({ logitBias: new Map([[4, 10]]) }).sample(logits), 4);
  const banned = drawCounts(logits, { temperature: 2, logitBias: { 0: -Infinity, 3: -Infinity }, seed: 3 }, 20000);
  assert.is(banned[0], 0);
  assert.is(banned[3], 0);
  // the logits array is not modified
  assert.equal(Array.from(logits), Array.from(Float32Array.of(2.0, -1.0, 0.5, 1.9, -0.5, 1.0)));
});

async function collect(gen: Generation): Promise<{ chunks: GenerateChunk[]; text: string }> {
  const chunks: GenerateChunk[] = [];
  for await (const c of gen) chunks.push(c);
  return { chunks, text: chunks.map((c) => c.text).join('') };
}

seededTest(S, 'sampling', 'stories260K: seeds, stop strings, streaming and timings', async (rng) => {
  if (!existsSync(STORIES)) {
    skipLine('sampling/stories260K', `${STORIES} not found (../shared absent)`);
    return;
  }
  const golden = readFileSync(path.join(path.dirname(STORIES), 'golden_stories260K_greedy_onceupon.txt'), 'utf8');
  const backends = (await backendsUnderTest()).filter((b) => b.name !== 'cuda');
  for (const { name: bname, backend } of backends) {
    const m = await loadModel(STORIES, { backend });
    try {
      const seed = rng.int(0, 2 ** 31);
      const opts = { temperature: 1, maxTokens: 60, stopOnEog: false };
      const a = await m.generate('Once upon a time', { ...opts, seed }).result;
      const b = await m.generate('Once upon a time', { ...opts, seed }).result;
      assert.equal(b.tokens, a.tokens, `${bname}: same seed, same tokens`);
      const others = new Set<string>([a.tokens.join()]);
      for (let i = 1; i <= 4; i++) others.add((await m.generate('Once upon a time', { ...opts, seed: seed + i }).result).tokens.join());
      assert.ok(others.size >= 4, `${bname}: 5 seeds gave only ${others.size} distinct sequences`);

      // stop string: the greedy text is the golden one, cut before the first "Lily"
      const gen = m.generate('Once upon a time', { maxTokens: 200, stop: ['Lily'] });
      const { chunks, text } = await collect(gen);
      const r = await gen.result;
      const want = golden.slice('Once upon a time'.length, golden.indexOf('Lily'));
      assert.is(r.stopReason, 'stop', `${bname}: stopReason`);
      assert.is(r.text, want, `${bname}: text before the stop string`);
      assert.is(text, r.text, `${bname}: streamed chunks concatenate to result.text`);
      assert.ok(!chunks.some((c) => c.text.includes('Lily')), 'no chunk carries the stop string');
      // a stop string spanning tokens, streamed: chunks still concatenate, the text is cut right before it
      const stop2 = rng.pick([' named', 'girl n', '. She', 'park']);
      const gen2 = m.generate('Once upon a time', { maxTokens: 200, stop: [stop2, 'zzzz'] });
      const s2 = await collect(gen2);
      const r2 = await gen2.result;
      assert.is(r2.text, golden.slice('Once upon a time'.length, golden.indexOf(stop2, 'Once upon a time'.length)), `${bname}: cut before ${JSON.stringify(stop2)}`);
      assert.is(s2.text, r2.text);
      // plain streaming of a longer sampled run + timings
      const gen3 = m.generate('Once upon a time', { maxTokens: 50, temperature: 0.8, seed, stopOnEog: false });
      const s3 = await collect(gen3);
      const r3 = await gen3.result;
      assert.is(s3.text, r3.text, `${bname}: chunks concatenate to result.text`);
      assert.equal(s3.chunks.flatMap((c) => c.tokens), r3.tokens, 'chunk tokens concatenate to result.tokens');
      assert.is(r3.stopReason, 'maxTokens');
      assert.is(r3.tokens.length, 50);
      assert.is(r3.promptTokens, m.tokenize('Once upon a time').length);
      const t = r3.timings;
      for (const k of ['prefillMs', 'decodeMs', 'prefillTokensPerSecond', 'decodeTokensPerSecond'] as const) {
        assert.ok(Number.isFinite(t[k]) && t[k] > 0, `${bname}: timings.${k} = ${t[k]}`);
      }
      assert.ok(Math.abs(t.decodeTokensPerSecond - (49 / t.decodeMs) * 1000) < 1e-6 * t.decodeTokensPerSecond, 'decode rate = tokens / time');
    } finally {
      m.dispose();
    }
  }
});

S.run();
