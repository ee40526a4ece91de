/**
 * Hogwild! shared cache, exactness (token level, no tokenizer needed):
 *  - one worker with view [prompt, own] reproduces plain decoding (256+ greedy steps; fixture + stories260K);
 *  - query rotation equals a materialized reference: random W, layouts and block lengths, every worker's logits
 *    equal the plain engine run on its view laid out as one sequence (keys re-rotated to absolute positions);
 *  - visibility and causality; permuting worker order permutes the outputs exactly;
 *  - a finished step merged into the common block equals the same step written there directly;
 *  - empty blocks.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel, type Model } from '../ts/index.ts';
import { HogwildCache, type BlockRef, type LayoutSpec } from '../ts/hogwild/index.ts';
import { argmax } from '../ts/engine/sampling.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import type { Rng } from './helpers/rng.ts';
import { relMax, maxAbsDiff } from './helpers/metrics.ts';

const FIX = path.resolve('test/fixtures/hf');
const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const STORIES = path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf');
const TOL = 1e-4;



const SINGLE: LayoutSpec = { name: 'single', mergeFinishedSteps: false, views: [['common', 'self']] };

/** Every available backend (the CUDA one included where it exists). */
async function allBackends() {
  return backendsUnderTest();
}

/** Plain decoding: one block, prompt in one call, then one token per call; greedy. */
async function plainGreedy(model: Model, prompt: number[], steps: number): Promise<{ rows: Float32Array[]; ids: number[] }> {
  const rt = model.runtime;
  const b = rt.store.createBlock();
  try {
    const rows: Float32Array[] = [];
    const ids: number[] = [];
    let l = await rt.forward([{ view: [b], tokens: prompt }], 'last');
    for (let s = 0; s <= steps; s++) {
      rows.push(l);
      const t = argmax(l);
      ids.push(t);
      if (s < steps) l = await rt.forward([{ view: [b], tokens: [t] }], 'last');
    }
    return { rows, ids };
  } finally {
    rt.store.freeBlock(b);
  }
}

/** Hogwild with one worker, view [prompt, own]: prompt minus its last token in common, then one token per step. */
async function hogwildGreedy(model: Model, prompt: number[], steps: number): Promise<{ rows: Float32Array[]; ids: number[] }> {
  const cache = new HogwildCache(model.runtime, { workers: 1, layout: SINGLE });
  try {
    await cache.prefill(prompt.slice(0, -1), {});
    const rows: Float32Array[] = [];
    const ids: number[] = [];
    let feed = [prompt[prompt.length - 1]!];
    for (let s = 0; s <= steps; s++) {
      const l = await cache.step([feed]);
      rows.push(l);
      const t = argmax(l);
      ids.push(t);
      feed = [t];
    }
    assert.ok(cache.consistent(), 'cache consistent');
    return { rows, ids };
  } finally {
    cache.dispose();
  }
}

/**
 * The materialized reference for worker w after a step that fed it `n` tokens: every block of its view read
 * as one sequence with keys re-rotated to absolute positions (store.readView), minus its own n new tokens,
 * copied into a fresh block; then the plain engine runs those n tokens on that single block.
 */
async function materializedLogits(model: Model, cache: HogwildCache, w: number, newTokens: number[]): Promise<Float32Array> {
  const rt = model.runtime;
  const st = cache.store;
  const c = rt.config;
  const view = cache.view(w);
  const total = cache.viewLength(w);
  const m = total - newTokens.length;
  const kd = c.nKvHead * c.headDim;
  const K = new Float32Array(c.nLayer * m * kd);
  const V = new Float32Array(c.nLayer * m * kd);
  for (let l = 0; l < c.nLayer; l++) {
    const { k, v } = st.readView(view, l, c.rope);
    K.set(k.subarray(0, m * kd), l * m * kd);
    V.set(v.subarray(0, m * kd), l * m * kd);
  }
  const ref = st.createBlock();
  try {
    if (m > 0) st.append(ref, m, K, V, null);
    return await rt.forward([{ view: [ref], tokens: newTokens }], 'all', undefined, st);
  } finally {
    st.freeBlock(ref);
  }
}

function randomTokens(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => rng.int(3, vocab - 1));
}

function randomLayout(rng: Rng, W: number): LayoutSpec {
  const views: BlockRef[][] = [];
  for (let w = 0; w < W; w++) {
    const pool: BlockRef[] = ['common', 'header:a', 'header:b'];
    for (let j = 0; j < W; j++) if (j !== w) pool.push(`worker:${j}`);
    const v = rng.shuffle(pool.filter(() => rng.bool(0.7)));
    views.push([...v, 'self']);
  }
  return { name: 'random', mergeFinishedSteps: rng.bool(), views };
}

const fixtures = ['llama', 'qwen3', 'llama3-scaled'].filter((f) => existsSync(path.join(FIX, f, 'model.safetensors')));

const S = suite('hogwild-cache');

S('one worker, view [prompt, own]: greedy logits equal plain decoding for 256 steps (fixture, stories260K)', async () => {
  const report: string[] = [];
  const STEPS = 256;
  for (const { name: bname, backend } of await allBackends()) {
    const models: [string, string, (m: Model) => number[]][] = [['llama', path.join(FIX, 'llama'), () => [1, 17, 250, 33, 401, 5, 90, 122, 7, 300]]];
    if (existsSync(STORIES)) models.push(['stories260K', STORIES, (m) => m.tokenize('Once upon a time, there was a little')]);
    else skipLine('hogwild stories260K', `${STORIES} not found`);
    for (const [label, file, prompt] of models) {
      const model = await loadModel(file, { backend });
      try {
        const p = prompt(model);
        const plain = await plainGreedy(model, p, STEPS);
        const hw = await hogwildGreedy(model, p, STEPS);
        assert.equal(hw.ids, plain.ids, `${bname}/${label}: greedy ids`);
        let e = 0;
        for (let s = 0; s <= STEPS; s++) e = Math.max(e, relMax(hw.rows[s]!, plain.rows[s]!));
        assert.ok(e <= TOL, `${bname}/${label}: rel err ${e}`);
        report.push(`${bname}/${label}=${e.toExponential(1)}`);
      } finally {
        model.dispose();
      }
    }
  }
  console.log(`\nMAXERR hogwild single-worker vs plain (${STEPS + 1} steps): ${report.join(' ')}`);
});

seededTest(S, 'hogwild-cache', 'query rotation equals the materialized view: random W, layouts, block lengths', async (rng) => {
  const report: string[] = [];
  for (const { name: bname, backend } of await allBackends()) {
    for (const fx of fixtures) {
      const model = await loadModel(path.join(FIX, fx), { backend });
      const V = model.config.nVocab;
      let worst = 0;
      try {
        for (let trial = 0; trial < 4; trial++) {
          const W = rng.int(1, 4);
          const kind = rng.pick(['combined', 'contiguous', 'interleaved', 'random'] as const);
          const layout = kind === 'random' ? randomLayout(rng, W) : kind;
          const cache = new HogwildCache(model.runtime, { workers: W, layout });
          try {
            const headers: Record<string, number[]> = {};
            for (const h of cache.headerIds) headers[h] = randomTokens(rng, rng.int(0, 5), V);
            await cache.prefill(randomTokens(rng, rng.int(1, 40), V), headers, { chunk: rng.int(3, 64) });
            for (let step = 0; step < 6; step++) {
              const feeds = Array.from({ length: W }, () => randomTokens(rng, rng.bool(0.3) ? rng.int(2, 4) : 1, V));
              const got = await cache.step(feeds, 'all');
              let row = 0;
              for (let w = 0; w < W; w++) {
                const n = feeds[w]!.length;
                const mine = got.subarray(row * V, (row + n) * V);
                const ref = await materializedLogits(model, cache, w, feeds[w]!);
                const e = relMax(mine, ref);
                worst = Math.max(worst, e);
                assert.ok(e <= TOL, `${bname}/${fx} W=${W} ${kind} step ${step} worker ${w}: rel err ${e}`);
                row += n;
              }
              for (let w = 0; w < W; w++) if (rng.bool(0.3)) await cache.finishStep(w);
              assert.ok(cache.consistent(), 'consistent');
            }
          } finally {
            cache.dispose();
          }
        }
      } finally {
        model.dispose();
      }
      report.push(`${bname}/${fx}=${worst.toExponential(1)}`);
    }
  }
  console.log(`\nMAXERR hogwild query rotation vs materialized view: ${report.join(' ')}`);
});

/** Run a scripted session; returns every step's 'last' logits per worker. */
async function scripted(
  model: Model,
  W: number,
  layout: LayoutSpec | 'combined' | 'interleaved',
  prompt: number[],
  feeds: number[][][],
  finish: Map<number, number[]> = new Map(),
): Promise<Float32Array[]> {
  const cache = new HogwildCache(model.runtime, { workers: W, layout });
  try {
    const headers: Record<string, number[]> = {};
    for (const h of cache.headerIds) headers[h] = [11, 12, 13];
    await cache.prefill(prompt, headers);
    const out: Float32Array[] = [];
    for (let s = 0; s < feeds.length; s++) {
      out.push(await cache.step(feeds[s]!, 'last'));
      for (const w of finish.get(s) ?? []) await cache.finishStep(w);
    }
    return out;
  } finally {
    cache.dispose();
  }
}

seededTest(S, 'hogwild-cache', 'visibility and causality: a token fed to worker j at step n changes the others at step n, nothing before', async (rng) => {
  for (const { name: bname, backend } of await allBackends()) {
    const model = await loadModel(path.join(FIX, 'llama'), { backend });
    const V = model.config.nVocab;
    try {
      const W = 3;
      const N = 3;
      const prompt = randomTokens(rng, 12, V);
      const feeds = Array.from({ length: 6 }, () => Array.from({ length: W }, () => randomTokens(rng, rng.bool(0.25) ? 2 : 1, V)));
      const alt = feeds.map((f) => f.map((x) => x.slice()));
      const j = 1;
      // a different token in [3, V): shift by 1..V-4 within the V-3 ids (never a whole turn, so never the same id)
      alt[N]![j]![0] = 3 + ((alt[N]![j]![0]! - 3 + 1 + rng.int(0, V - 5)) % (V - 3));
      assert.ok(alt[N]![j]![0] !== feeds[N]![j]![0], 'the altered token differs');
      for (const layout of ['combined', 'interleaved'] as const) {
        const a = await scripted(model, W, layout, prompt, feeds);
        const b = await scripted(model, W, layout, prompt, alt);
        for (let s = 0; s < N; s++) assert.ok(maxAbsDiff(a[s]!, b[s]!) === 0, `${bname}/${layout}: step ${s} < ${N} changed`);
        for (let w = 0; w < W; w++) {
          const d = maxAbsDiff(a[N]!.subarray(w * V, (w + 1) * V), b[N]!.subarray(w * V, (w + 1) * V));
          if (w === j) assert.ok(d > 1e-3, `${bname}/${layout}: worker ${j}'s own logits must change (${d})`);
          else if (layout === 'combined') assert.ok(d > 1e-4, `${bname}/combined: worker ${w} must see worker ${j}'s token in the same step (${d})`);
          else assert.ok(d === 0, `${bname}/interleaved: worker ${w} must not see worker ${j}'s unfinished step (${d})`);
        }
      }
    } finally {
      model.dispose();
    }
  }
});

/**
 * Worker order. The core accumulates each query row's per-block partial softmaxes in the order in which blocks
 * first appear in the whole batch (so a block shared by several workers is read once for all of them), and
 * splits attention work across threads by the batch's rows; so a permutation can change the rounding. With
 * the core of 2026-11-26 05:00, interleaved views (common, header, own) were bit-exact and combined ones ~1e-6;
 * the asserted bound is 1e-5 relative for both, and the report says which cases were bit-exact.
 */
seededTest(S, 'hogwild-cache', 'permuting worker order permutes the outputs (to float rounding; bit-exactness reported)', async (rng) => {
  const report: string[] = [];
  for (const { name: bname, backend } of await allBackends()) {
    const model = await loadModel(path.join(FIX, 'llama'), { backend });
    const V = model.config.nVocab;
    try {
      const W = 3;
      const perm = [2, 0, 1]; // worker w of run A is worker perm[w] of run B
      for (const kind of ['interleaved', 'combined'] as const) {
        const viewsA: BlockRef[][] = Array.from({ length: W }, (_, w) => {
          const o: BlockRef[] = [];
          if (kind === 'combined') for (let j = 0; j < W; j++) if (j !== w) o.push(`worker:${j}`);
          return ['common', 'header:x', ...o, 'self'] as BlockRef[];
        });
        const viewsB: BlockRef[][] = new Array(W);
        viewsA.forEach((v, w) => {
          viewsB[perm[w]!] = v.map((r) => (r.startsWith('worker:') ? (`worker:${perm[Number(r.slice(7))]}` as BlockRef) : r));
        });
        const prompt = randomTokens(rng, 10, V);
        const feedsA = Array.from({ length: 6 }, () => Array.from({ length: W }, () => randomTokens(rng, rng.bool(0.3) ? 3 : 1, V)));
        const feedsB = feedsA.map((f) => {
          const g: number[][] = new Array(W);
          f.forEach((x, w) => (g[perm[w]!] = x));
          return g;
        });
        const finA = new Map([[2, [1]], [4, [0]]]);
        const finB = new Map([[2, [perm[1]!]], [4, [perm[0]!]]]);
        const a = await scripted(model, W, { name: 'A', mergeFinishedSteps: true, views: viewsA }, prompt, feedsA, finA);
        const b = await scripted(model, W, { name: 'B', mergeFinishedSteps: true, views: viewsB }, prompt, feedsB, finB);
        let worst = 0;
        let exact = true;
        for (let s = 0; s < a.length; s++) {
          for (let w = 0; w < W; w++) {
            const x = a[s]!.subarray(w * V, (w + 1) * V);
            const y = b[s]!.subarray(perm[w]! * V, (perm[w]! + 1) * V);
            const e = relMax(y, x);
            worst = Math.max(worst, e);
            if (maxAbsDiff(x, y) !== 0) exact = false;
            assert.ok(e <= 1e-5, `${bname}/${kind}: step ${s} worker ${w}: rel err ${e}`);
          }
        }
        report.push(`${bname}/${kind}=${exact ? 'bit-exact' : worst.toExponential(1)}`);
      }
    } finally {
      model.dispose();
    }
  }
  console.log(`\nMAXERR hogwild worker permutation: ${report.join(' ')}`);
});

seededTest(S, 'hogwild-cache', 'merge: a finished step moved into the common block equals writing it there', async (rng) => {
  const report: string[] = [];
  for (const { name: bname, backend } of await allBackends()) {
    for (const fx of fixtures) {
      const model = await loadModel(path.join(FIX, fx), { backend });
      const V = model.config.nVocab;
      const rt = model.runtime;
      const c = rt.config;
      try {
        const prompt = randomTokens(rng, rng.int(5, 70), V);
        const stepToks = randomTokens(rng, rng.int(1, 70), V);
        const next = randomTokens(rng, 4, V);
        // A: the step is written in the worker's block, then merged
        const A = new HogwildCache(rt, { workers: 1, layout: { name: 'm', mergeFinishedSteps: true, views: [['common', 'self']] } });
        // B: the same tokens written straight into the common block
        const B = new HogwildCache(rt, { workers: 1, layout: { name: 'm', mergeFinishedSteps: true, views: [['common', 'self']] } });
        try {
          await A.prefill(prompt, {});
          await A.step([stepToks], 'none');
          assert.equal(await A.finishStep(0), stepToks, 'moved tokens');
          await B.prefill([...prompt, ...stepToks], {});
          assert.is(A.store.blockLength(A.common), B.store.blockLength(B.common));
          assert.is(A.store.blockLength(A.own[0]!), 0, 'own block emptied');
          // (B computes the step inside a different batch than A, so even V differs in the last bits)
          let ek = 0;
          for (let l = 0; l < c.nLayer; l++) {
            const ka = A.store.read(A.common, l);
            const kb = B.store.read(B.common, l);
            ek = Math.max(ek, relMax(ka.k, kb.k), relMax(ka.v, kb.v));
          }
          const la = await A.step([next], 'all');
          const lb = await B.step([next], 'all');
          const e = relMax(la, lb);
          assert.ok(ek <= 1e-5 && e <= TOL, `${bname}/${fx}: keys rel err ${ek}, logits rel err ${e}`);
          report.push(`${bname}/${fx}=keys ${ek.toExponential(1)} logits ${e.toExponential(1)}`);
        } finally {
          A.dispose();
          B.dispose();
        }
      } finally {
        model.dispose();
      }
    }
  }
  console.log(`\nMAXERR hogwild merge vs direct write: ${report.join(' ')}`);
});

S('empty blocks in a view change nothing; a disposed cache frees every block', async () => {
  for (const { name: bname, backend } of await allBackends()) {
    const model = await loadModel(path.join(FIX, 'llama'), { backend });
    const rt = model.runtime;
    try {
      const before = rt.store.stats().blocksLive;
      const prompt = [1, 40, 41, 42, 43];
      const plain = await plainGreedy(model, [...prompt, 50], 0);
      // one worker whose view has empty header blocks before and after the prompt
      const one = new HogwildCache(rt, { workers: 1, layout: { name: 'e', mergeFinishedSteps: true, views: [['header:a', 'common', 'header:b', 'self']] } });
      await one.prefill(prompt, { a: [], b: [] });
      const l1 = await one.step([[50]], 'last');
      const e1 = relMax(l1, plain.rows[0]!);
      assert.ok(e1 <= TOL, `${bname}: empty headers: ${e1}`);
      one.dispose();
      // interleaved, 4 workers, empty own-header: at step 0 every view is [prompt, (empty), own]
      const cache = new HogwildCache(rt, { workers: 4, layout: 'interleaved' });
      await cache.prefill(prompt, { own: [] });
      const l = await cache.step([[50], [50], [50], [50]], 'last');
      for (let w = 0; w < 4; w++) {
        const e = relMax(l.subarray(w * 512, (w + 1) * 512), plain.rows[0]!);
        assert.ok(e <= TOL, `${bname}: worker ${w} vs plain: ${e}`);
      }
      assert.is(rt.store.stats().blocksLive, before + 1 + 4 + 1);
      cache.dispose();
      assert.is(rt.store.stats().blocksLive, before, 'all blocks freed');
    } finally {
      model.dispose();
    }
  }
});

S.run();
