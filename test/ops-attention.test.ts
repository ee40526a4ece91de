/**
 * Attention over views on every backend variant.
 *
 *  1. vs the materialised float64 reference (each sequence's view turned into one sequence with keys at
 *     absolute positions o_j + l, queries at P, causal-by-position softmax, GQA), built from the keys the
 *     backend actually stored: out and lse within 1e-5 relative.
 *  2. THE HOGWILD! IDENTITY end to end: the backend's query-rotation attention over blocks at offsets equals
 *     ordinary attention over the materialised sequence with keys rotated at absolute positions, computed in
 *     float64 from the raw (un-rotated) inputs (f32 vs float64, <= 1e-5 relative).
 *  3. The same identity backend-vs-itself: readView(view, rope) materialises the sequence, a fresh single
 *     block holding it is attended with the plain single-block path: equal within 1e-5.
 *  4. merge-then-attend equals attend over the view [dst, src] (and [prefix, dst, src]).
 *  5. Edge cases: nothing visible (P < 0, empty blocks, empty view) gives lse = -Infinity and out = 0.
 *
 * Shapes: head_dim 8/64/80 (partial rotary 32)/128, GQA 1/2/4/8, n_seq 1..5 with shared blocks, empty
 * blocks, pageTokens 1/17/64, every RoPE style and scaling scheme, layer 1 of 2.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AttentionBatch, Backend, KvStore, RopeParams } from '../ts/backend/types.ts';
import { refViewAttention, type RefBlockData } from './ref/attention.ts';
import { RefStore } from './ref/store.ts';
import { forEachVariant } from './helpers/backends.ts';
import { HEAD_SHAPES, ropeParams, SCALINGS, STYLES } from './helpers/cases.ts';
import { seededTest } from './helpers/harness.ts';
import { expectClose, expectLseClose, printWorstErrors } from './helpers/metrics.ts';
import type { Rng } from './helpers/rng.ts';

const NAME = 'ops-attention';
const S = suite(NAME);
const TOL = 1e-5;
const GROUPS = [1, 2, 4, 8];

interface Scenario {
  st: KvStore;
  ref: RefStore;
  rope: RopeParams;
  nHead: number;
  layer: number;
  batch: { views: number[][]; positions: number[][] };
  q: Float32Array;
  scale: number;
  desc: string;
}

function viewLen(ref: RefStore, view: number[]): number {
  return view.reduce((a, id) => a + ref.len(id), 0);
}

/** A Hogwild!-shaped random scenario: a shared prompt, a shared history, headers, private per-worker blocks. */
function buildScenario(rng: Rng, be: Backend, headShape: { headDim: number; rotaryDim: number }, group: number, nSeq: number, rope: RopeParams): Scenario {
  const nKvHead = rng.int(1, 2);
  const nHead = nKvHead * group;
  const headDim = headShape.headDim;
  const headDimV = rng.pick([headDim, headDim, 16]);
  const nLayer = 2;
  const pageTokens = rng.pick([1, 17, 64]);
  const st = be.createStore({ nLayer, nKvHead, headDim, headDimV, pageTokens });
  const ref = new RefStore({ nLayer, nKvHead, headDim, headDimV });
  const block = (n: number) => {
    const id = st.createBlock();
    ref.create(id);
    const k = rng.f32(nLayer * n * nKvHead * headDim);
    const v = rng.f32(nLayer * n * nKvHead * headDimV);
    st.append(id, n, k, v, rope);
    ref.append(id, n, k, v, rope);
    return id;
  };
  const prompt = block(rng.int(1, 90));
  const history = block(rng.pick([0, rng.int(1, 40)]));
  const header = block(rng.int(0, 4));
  const own = Array.from({ length: nSeq }, () => block(rng.pick([0, 1, rng.int(1, 12)])));
  const views: number[][] = [];
  const positions: number[][] = [];
  for (let s = 0; s < nSeq; s++) {
    const others = rng.shuffle(own.filter((_, i) => i !== s)).slice(0, rng.int(0, nSeq - 1));
    const view = rng.pick([
      [prompt, history, header, ...others, own[s]!],
      [prompt, ...others, header, own[s]!],
      [prompt, own[s]!],
      [history, prompt, own[s]!, ...others],
    ]);
    views.push(view);
    const total = viewLen(ref, view);
    const S_ = rng.int(1, 3);
    const pos: number[] = [];
    for (let i = 0; i < S_; i++) pos.push(total - S_ + i); // decode / prefill rows at the end
    pos.push(rng.int(-2, total + 2)); // anywhere, incl. before the view and past its end
    if (rng.bool(0.3)) pos.push(-1);
    positions.push(pos);
  }
  const nQ = positions.reduce((a, p) => a + p.length, 0);
  const q = rng.f32(nQ * nHead * headDim, rng.pick([0.5, 1, 2]));
  const desc = `headDim=${headDim} rotaryDim=${headShape.rotaryDim} headDimV=${headDimV} nKvHead=${nKvHead} nHead=${nHead} pageTokens=${pageTokens} rope=${JSON.stringify(rope)} views=${JSON.stringify(views)} lens=${JSON.stringify(views.map((v) => v.map((id) => ref.len(id))))} positions=${JSON.stringify(positions)}`;
  return { st, ref, rope, nHead, layer: 1, batch: { views, positions }, q, scale: 1 / Math.sqrt(headDim), desc };
}

function shapeOf(sc: Scenario) {
  const p = sc.st.params;
  return { nHead: sc.nHead, nKvHead: p.nKvHead, headDim: p.headDim, headDimV: p.headDimV };
}

/** Rows [row0, row0 + n) of an [nQ, width] array. */
function rows(a: Float32Array | Float64Array, row0: number, n: number, width: number) {
  return a.subarray(row0 * width, (row0 + n) * width);
}

function forEachCase(rng: Rng, fn: (headShape: { headDim: number; rotaryDim: number }, group: number, nSeq: number, rope: RopeParams) => void) {
  for (const headShape of HEAD_SHAPES) {
    for (const group of GROUPS) {
      const rope = ropeParams(rng, headShape, rng.pick(STYLES), rng.pick(SCALINGS));
      fn(headShape, group, rng.int(1, 5), rope);
    }
  }
}

seededTest(S, NAME, 'vs materialised float64 reference over the stored keys (out and lse)', async (rng) => {
  await forEachVariant((v) => {
    forEachCase(rng, (hs, group, nSeq, rope) => {
      const sc = buildScenario(rng, v.backend, hs, group, nSeq, rope);
      try {
        const got = sc.st.attention(sc.layer, sc.rope, sc.batch, sc.q, sc.nHead, sc.scale);
        const data = sc.batch.views.map((view) => view.map((id): RefBlockData => ({ len: sc.st.blockLength(id), ...sc.st.read(id, sc.layer) })));
        const want = refViewAttention(shapeOf(sc), sc.rope, data, sc.batch.positions, sc.q, sc.scale);
        expectClose(got.out, want.out, TOL, `attention out (${sc.desc})`, `attn/${v.label}`);
        expectLseClose(got.lse, want.lse, TOL, `attention lse (${sc.desc})`, `lse/${v.label}`);
      } finally {
        sc.st.dispose();
      }
    });
  });
});

seededTest(S, NAME, 'Hogwild! identity: query rotation over blocks at offsets == float64 attention over the materialised sequence (from raw inputs)', async (rng) => {
  await forEachVariant((v) => {
    forEachCase(rng, (hs, group, nSeq, rope) => {
      const sc = buildScenario(rng, v.backend, hs, group, nSeq, rope);
      try {
        const got = sc.st.attention(sc.layer, sc.rope, sc.batch, sc.q, sc.nHead, sc.scale);
        const data = sc.batch.views.map((view) => view.map((id): RefBlockData => ({ len: sc.ref.len(id), ...sc.ref.read(id, sc.layer) })));
        const want = refViewAttention(shapeOf(sc), sc.rope, data, sc.batch.positions, sc.q, sc.scale);
        expectClose(got.out, want.out, TOL, `identity out (${sc.desc})`, `identity/${v.label}`);
        expectLseClose(got.lse, want.lse, TOL, `identity lse (${sc.desc})`, `identityLse/${v.label}`);
      } finally {
        sc.st.dispose();
      }
    });
  });
});

seededTest(S, NAME, 'Hogwild! identity backend-vs-itself: view attention == readView(rope) + plain single-block attention', async (rng) => {
  await forEachVariant((v) => {
    forEachCase(rng, (hs, group, nSeq, rope) => {
      const sc = buildScenario(rng, v.backend, hs, group, nSeq, rope);
      const p = sc.st.params;
      const flat = v.backend.createStore({ nLayer: 1, nKvHead: p.nKvHead, headDim: p.headDim, headDimV: p.headDimV, pageTokens: 64 });
      try {
        const got = sc.st.attention(sc.layer, sc.rope, sc.batch, sc.q, sc.nHead, sc.scale);
        let row = 0;
        sc.batch.views.forEach((view, s) => {
          const mat = sc.st.readView(view, sc.layer, sc.rope); // keys at absolute positions o_j + l
          const total = viewLen(sc.ref, view);
          const blk = flat.createBlock();
          flat.append(blk, total, mat.k, mat.v, null); // stored as given: a single block at offset 0
          const pos = sc.batch.positions[s]!;
          const qs = rows(sc.q, row, pos.length, sc.nHead * p.headDim);
          const plain = flat.attention(0, sc.rope, { views: [[blk]], positions: [pos] }, Float32Array.from(qs), sc.nHead, sc.scale);
          expectClose(rows(got.out, row, pos.length, sc.nHead * p.headDimV), plain.out, TOL, `seq ${s}: view attention vs materialised single block (${sc.desc})`, `self/${v.label}`);
          expectLseClose(rows(got.lse, row, pos.length, sc.nHead), plain.lse, TOL, `seq ${s}: lse (${sc.desc})`);
          flat.freeBlock(blk);
          row += pos.length;
        });
      } finally {
        sc.st.dispose();
        flat.dispose();
      }
    });
  });
});

seededTest(S, NAME, 'merge-then-attend == attend over [dst, src] (and [prefix, dst, src])', async (rng) => {
  await forEachVariant((v) => {
    forEachCase(rng, (hs, group, _nSeq, rope) => {
      const sc = buildScenario(rng, v.backend, hs, group, 2, rope);
      try {
        const [prefix, dst, src] = [sc.batch.views[0]![0]!, ...sc.batch.views.map((vw) => vw[vw.length - 1]!)];
        if (dst === src || prefix === dst || prefix === src) return;
        const merged = sc.st.createBlock();
        sc.st.merge(merged, dst!, sc.rope); // an exact copy of dst (rotation by +0)
        sc.st.merge(merged, src!, sc.rope); // src re-rotated by +len(dst)
        for (const pre of [[], [prefix]]) {
          const total = viewLen(sc.ref, [...pre, dst!, src!]);
          const pos = [total - 1, total - 2, rng.int(-1, total + 1), Math.floor(total / 2)];
          const q = rng.f32(pos.length * sc.nHead * sc.st.params.headDim);
          const a = sc.st.attention(sc.layer, sc.rope, { views: [[...pre, merged]], positions: [pos] }, q, sc.nHead, sc.scale);
          const b = sc.st.attention(sc.layer, sc.rope, { views: [[...pre, dst!, src!]], positions: [pos] }, q, sc.nHead, sc.scale);
          expectClose(a.out, b.out, TOL, `merged vs [${pre}, dst, src] (${sc.desc})`, `merge/${v.label}`);
          expectLseClose(a.lse, b.lse, TOL, `merged vs [${pre}, dst, src] lse (${sc.desc})`);
        }
      } finally {
        sc.st.dispose();
      }
    });
  });
});

seededTest(S, NAME, 'edge cases: nothing visible -> lse -Infinity and out 0; empty blocks; empty view; layer selection', async (rng) => {
  await forEachVariant((v) => {
    const rope = ropeParams(rng, { headDim: 64, rotaryDim: 64 }, 'neox', 'none');
    const st = v.backend.createStore({ nLayer: 2, nKvHead: 2, headDim: 64, pageTokens: 17 });
    try {
      const e1 = st.createBlock();
      const e2 = st.createBlock();
      const b = st.createBlock();
      st.append(b, 5, rng.f32(2 * 5 * 2 * 64), rng.f32(2 * 5 * 2 * 64), rope);
      const nHead = 4;
      const check = (batch: AttentionBatch, what: string) => {
        const nQ = batch.positions.reduce((a, p) => a + p.length, 0);
        const q = rng.f32(nQ * nHead * 64);
        const got = st.attention(1, rope, batch, q, nHead, 0.125);
        const data = batch.views.map((view) => view.map((id): RefBlockData => ({ len: st.blockLength(id), ...st.read(id, 1) })));
        const want = refViewAttention({ nHead, nKvHead: 2, headDim: 64, headDimV: 64 }, rope, data, batch.positions.map((p) => Array.from(p)), q, 0.125);
        expectClose(got.out, want.out, TOL, `${what}: out`);
        expectLseClose(got.lse, want.lse, TOL, `${what}: lse`);
        return got;
      };
      const none = check({ views: [[e1, b]], positions: [[-1, -5, -100000]] }, 'P < 0');
      assert.ok(none.lse.every((x) => x === -Infinity), 'P < 0: every lse is -Infinity');
      assert.ok(none.out.every((x) => x === 0), 'P < 0: out is 0');
      check({ views: [[e1, e2]], positions: [[0, 3]] }, 'only empty blocks');
      check({ views: [[e1, b, e2]], positions: [[0, 4, 5, 9]] }, 'empty blocks around a block');
      check({ views: [[b, e1], [e2, b], [e1]], positions: [[2], [4], [0]] }, 'three sequences, shared block, empty blocks');
      check({ views: [[], [b]], positions: [[0, 3], [3]] }, 'an empty view');
      check({ views: [[b]], positions: [[]] }, 'a sequence with no query rows');
      // layer selection: layer 0 and layer 1 hold different data
      const q = rng.f32(nHead * 64);
      const l0 = st.attention(0, rope, { views: [[b]], positions: [[4]] }, q, nHead, 0.125);
      const l1 = st.attention(1, rope, { views: [[b]], positions: [[4]] }, q, nHead, 0.125);
      assert.ok(l0.out.some((x, i) => x !== l1.out[i]), 'layers 0 and 1 give different results');
    } finally {
      st.dispose();
    }
  });
});

S.after(() => printWorstErrors(NAME));
S.run();
