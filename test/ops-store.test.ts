/**
 * KV block store on every backend variant, against the pure-TS store model (test/ref/store.ts):
 *  - random sequences of create / append / truncate / merge / free with pageTokens 1, 17 and random,
 *    empty appends, page-boundary lengths, several layers, headDimV != headDim, with and without RoPE.
 *    Without RoPE every read is an exact copy; with RoPE keys are within 1e-6 relative of float64.
 *  - partial reads and views are exact slices / concatenations; readView(rope) re-rotates by +o_j.
 *  - stats: blocksLive, pages (a fixed number of pages per ceil(len/pageTokens)), bytes (a fixed page
 *    size, reserved = in use + free pages, never below the payload).
 * *  - maxBytes: exceeding the cap throws OutOfMemoryError and leaves blocks, data and stats unchanged;
 *    CUDA: a page the GPU cannot hold is OutOfMemoryError naming cudaMalloc, and the device stays usable.
 *  - dtype f16: values within half precision (or a visible SKIP where the backend reports UnsupportedError).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { OutOfMemoryError, UnsupportedError } from '../ts/index.ts';
import type { KvStore, RopeParams, StoreParams } from '../ts/backend/types.ts';
import { refRopeApply } from './ref/rope.ts';
import { RefStore } from './ref/store.ts';
import { backendsUnderTest, forEachVariant, skipLine } from './helpers/backends.ts';
import { HEAD_SHAPES, ropeParams, SCALINGS, STYLES } from './helpers/cases.ts';
import { expectThrows, seededTest } from './helpers/harness.ts';
import { expectClose, expectExact, printWorstErrors } from './helpers/metrics.ts';
import type { Rng } from './helpers/rng.ts';

const NAME = 'ops-store';
const S = suite(NAME);
const TOL = 1e-6;

interface StatsMemo {
  pageBytes?: number;
  pagesPerRow?: number;
}

/** Check the store's stats against the model: live blocks, pages per ceil(len/pageTokens), bytes. */
function checkStats(st: KvStore, ref: RefStore, memo: StatsMemo, where: string): void {
  const s = st.stats();
  const p = st.params;
  const esize = p.dtype === 'f16' ? 2 : 4;
  const ids = ref.ids();
  const ctx = `${where}: stats ${JSON.stringify(s)}`;
  assert.is(s.blocksLive, ids.length, `${ctx}: blocksLive`);
  const rows = ids.reduce((a, id) => a + Math.ceil(ref.len(id) / p.pageTokens), 0);
  for (const k of ['bytesReserved', 'bytesInUse', 'pagesInUse', 'pagesFree', 'blocksLive'] as const) {
    assert.ok(Number.isInteger(s[k]) && s[k] >= 0, `${ctx}: ${k} must be a non-negative integer`);
  }
  if (rows === 0) {
    assert.is(s.pagesInUse, 0, `${ctx}: no tokens -> no pages in use`);
    assert.is(s.bytesInUse, 0, `${ctx}: no tokens -> no bytes in use`);
  } else {
    assert.ok(s.pagesInUse > 0 && s.pagesInUse % rows === 0, `${ctx}: pagesInUse must be a multiple of sum ceil(len/pageTokens) = ${rows}`);
    const perRow = s.pagesInUse / rows;
    memo.pagesPerRow ??= perRow;
    assert.is(perRow, memo.pagesPerRow, `${ctx}: pages per page-row changed`);
    const pageBytes = s.bytesInUse / s.pagesInUse;
    assert.ok(Number.isInteger(pageBytes), `${ctx}: bytesInUse / pagesInUse not an integer`);
    memo.pageBytes ??= pageBytes;
    assert.is(pageBytes, memo.pageBytes, `${ctx}: page size changed`);
    const payload = rows * p.pageTokens * p.nLayer * p.nKvHead * (p.headDim + p.headDimV) * esize;
    assert.ok(s.bytesInUse >= payload, `${ctx}: bytesInUse below the payload of ${payload} bytes`);
  }
  if (memo.pageBytes !== undefined) {
    assert.is(s.bytesReserved, (s.pagesInUse + s.pagesFree) * memo.pageBytes, `${ctx}: bytesReserved = (pagesInUse + pagesFree) * pageBytes`);
  }
  assert.ok(s.bytesReserved >= s.bytesInUse, `${ctx}: bytesReserved >= bytesInUse`);
  if (p.maxBytes > 0) assert.ok(s.bytesReserved <= p.maxBytes, `${ctx}: bytesReserved above maxBytes ${p.maxBytes}`);
}

/** Compare every live block, every layer, with the model; exact when no rotation ever happened. */
function checkContents(st: KvStore, ref: RefStore, exact: boolean, where: string, rng: Rng, label: string): void {
  const p = st.params;
  for (const id of ref.ids()) {
    assert.is(st.blockLength(id), ref.len(id), `${where}: length of block ${id}`);
    for (let l = 0; l < p.nLayer; l++) {
      const got = st.read(id, l);
      const want = ref.read(id, l);
      if (exact) expectExact(got.k, want.k, `${where}: block ${id} layer ${l} keys`);
      else expectClose(got.k, want.k, TOL, `${where}: block ${id} layer ${l} keys (rotated)`, `storeK/${label}`);
      expectExact(got.v, want.v, `${where}: block ${id} layer ${l} values`);
      // a partial read is an exact slice of the full read
      const len = ref.len(id);
      if (len > 0) {
        const start = rng.int(0, len - 1);
        const n = rng.int(0, len - start);
        const part = st.read(id, l, start, n);
        const kd = p.nKvHead * p.headDim;
        const vd = p.nKvHead * p.headDimV;
        expectExact(part.k, got.k.subarray(start * kd, (start + n) * kd), `${where}: read(${id}, ${l}, ${start}, ${n}) keys`);
        expectExact(part.v, got.v.subarray(start * vd, (start + n) * vd), `${where}: read(${id}, ${l}, ${start}, ${n}) values`);
      }
    }
  }
}

/** A view without rope is the exact concatenation of the blocks; with rope, keys are re-rotated by +o_j. */
function checkViews(st: KvStore, ref: RefStore, rope: RopeParams, where: string, rng: Rng, label: string): void {
  const ids = ref.ids();
  if (ids.length === 0) return;
  const p = st.params;
  for (let rep = 0; rep < 3; rep++) {
    const view = rng.shuffle([...ids]).slice(0, rng.int(1, ids.length));
    const layer = rng.int(0, p.nLayer - 1);
    const plain = st.readView(view, layer);
    const parts = view.map((id) => st.read(id, layer));
    const catK = new Float32Array(plain.k.length);
    const catV = new Float32Array(plain.v.length);
    let ok = 0;
    let ov = 0;
    for (const part of parts) {
      catK.set(part.k, ok);
      catV.set(part.v, ov);
      ok += part.k.length;
      ov += part.v.length;
    }
    assert.is(ok, plain.k.length, `${where}: view [${view}] key length`);
    expectExact(plain.k, catK, `${where}: readView([${view}]) keys = concatenation`);
    expectExact(plain.v, catV, `${where}: readView([${view}]) values = concatenation`);
    // with rope: against the model's float64 re-rotation of the stored (backend) keys
    const rot = st.readView(view, layer, rope);
    const want = new Float64Array(rot.k.length);
    let o = 0;
    const kd = p.nKvHead * p.headDim;
    view.forEach((id, j) => {
      const n = ref.len(id);
      want.set(refRopeApply(rope, parts[j]!.k, n, p.nKvHead, new Array<number>(n).fill(o)), o * kd);
      o += n;
    });
    expectClose(rot.k, want, TOL, `${where}: readView([${view}], rope) keys`, `viewK/${label}`);
    expectExact(rot.v, catV, `${where}: readView([${view}], rope) values`);
    // the model agrees too (end to end from the raw inputs)
    expectClose(rot.k, ref.readView(view, layer, rope).k, TOL, `${where}: readView([${view}], rope) vs model`, `viewK/${label}`);
  }
}

function tokenCount(rng: Rng, pt: number): number {
  return rng.pick([0, 1, 2, pt - 1, pt, pt + 1, 2 * pt + 1, rng.int(1, 40)].filter((x) => x >= 0));
}

function randomScenario(rng: Rng, st: KvStore, rope: RopeParams | null, viewRope: RopeParams, steps: number, label: string): void {
  const p = st.params;
  const ref = new RefStore({ nLayer: p.nLayer, nKvHead: p.nKvHead, headDim: p.headDim, headDimV: p.headDimV });
  const memo: StatsMemo = {};
  const where = (i: number, op: string) => `${label} step ${i} (${op}) params ${JSON.stringify(p)} rope ${rope ? JSON.stringify(rope) : 'none'}`;
  const live = () => ref.ids();
  for (let i = 0; i < steps; i++) {
    const ids = live();
    const op = ids.length === 0 ? 'create' : rng.pick(['create', 'append', 'append', 'append', 'truncate', 'merge', 'merge', 'free']);
    switch (op) {
      case 'create': {
        const id = st.createBlock();
        assert.ok(Number.isInteger(id) && id >= 0, `${where(i, op)}: block id ${id} must be a non-negative integer`);
        assert.ok(!ref.has(id), `${where(i, op)}: id ${id} handed out while still live`);
        ref.create(id);
        assert.is(st.blockLength(id), 0);
        break;
      }
      case 'append': {
        const id = rng.pick(ids);
        const n = tokenCount(rng, p.pageTokens);
        const k = rng.f32(p.nLayer * n * p.nKvHead * p.headDim);
        const v = rng.f32(p.nLayer * n * p.nKvHead * p.headDimV);
        st.append(id, n, k, v, rope);
        ref.append(id, n, k, v, rope);
        break;
      }
      case 'truncate': {
        const id = rng.pick(ids);
        const len = ref.len(id);
        const pt = p.pageTokens;
        const n = rng.pick([0, len, rng.int(0, len), Math.min(len, pt), Math.min(len, Math.max(0, pt - 1)), Math.min(len, pt + 1)]);
        st.truncate(id, n);
        ref.truncate(id, n);
        break;
      }
      case 'merge': {
        if (ids.length < 2) break;
        const [dst, src] = rng.shuffle([...ids]);
        st.merge(dst!, src!, rope);
        ref.merge(dst!, src!, rope);
        break;
      }
      case 'free': {
        if (ids.length < 2) break;
        const id = rng.pick(ids);
        st.freeBlock(id);
        ref.free(id);
        break;
      }
    }
    checkStats(st, ref, memo, where(i, op));
    if (i % 8 === 7 || i === steps - 1) {
      checkContents(st, ref, rope === null, where(i, op), rng, label);
      checkViews(st, ref, viewRope, where(i, op), rng, label);
    }
  }
}

seededTest(S, NAME, 'random op sequences vs the store model (pageTokens 1, 17, random; with and without rope)', async (rng) => {
  await forEachVariant((v) => {
    for (const pageTokens of [1, 17, rng.int(2, 9), 64]) {
      for (const withRope of [false, true]) {
        const shape = rng.pick(HEAD_SHAPES);
        const rope = ropeParams(rng, shape, rng.pick(STYLES), rng.pick(SCALINGS));
        const params: StoreParams = {
          nLayer: rng.int(1, 3),
          nKvHead: rng.int(1, 3),
          headDim: shape.headDim,
          headDimV: rng.pick([shape.headDim, 8, 24]),
          pageTokens,
        };
        const st = v.backend.createStore(params);
        try {
          assert.is(st.params.dtype, 'f32');
          assert.is(st.params.maxBytes, 0);
          assert.is(st.params.headDimV, params.headDimV);
          randomScenario(rng, st, withRope ? rope : null, rope, 40, v.label);
        } finally {
          st.dispose();
        }
      }
    }
  });
});

seededTest(S, NAME, 'page boundaries: pageTokens 1 and 17, lengths 16/17/18/34/35, merges across pages', async (rng) => {
  await forEachVariant((v) => {
    for (const pt of [1, 17]) {
      const shape = { headDim: 8, rotaryDim: 8 };
      const rope = ropeParams(rng, shape, 'neox', 'none');
      const st = v.backend.createStore({ nLayer: 2, nKvHead: 2, headDim: 8, pageTokens: pt });
      const ref = new RefStore({ nLayer: 2, nKvHead: 2, headDim: 8, headDimV: 8 });
      const memo: StatsMemo = {};
      try {
        const a = st.createBlock();
        const b = st.createBlock();
        ref.create(a);
        ref.create(b);
        const add = (id: number, n: number) => {
          const k = rng.f32(2 * n * 2 * 8);
          const vv = rng.f32(2 * n * 2 * 8);
          st.append(id, n, k, vv, rope);
          ref.append(id, n, k, vv, rope);
          checkStats(st, ref, memo, `pt=${pt} append ${n} to ${id}`);
        };
        for (const n of [16, 1, 1, 0, 16, 1]) add(a, n); // 16, 17, 18, 18, 34, 35
        for (const n of [17, 17]) add(b, n);
        st.merge(a, b, rope);
        ref.merge(a, b, rope);
        checkStats(st, ref, memo, `pt=${pt} merge`);
        for (const n of [69, 52, 35, 34, 18, 17, 16, 1, 0]) {
          st.truncate(a, n);
          ref.truncate(a, n);
          checkStats(st, ref, memo, `pt=${pt} truncate ${n}`);
          checkContents(st, ref, false, `pt=${pt} truncate ${n}`, rng, v.label);
        }
        st.merge(a, b, rope); // into an empty block: +0
        ref.merge(a, b, rope);
        checkContents(st, ref, false, `pt=${pt} merge into empty`, rng, v.label);
        expectExact(st.read(a, 1).k, st.read(b, 1).k, `pt=${pt}: merge into an empty block is an exact copy`);
        checkViews(st, ref, rope, `pt=${pt}`, rng, v.label);
      } finally {
        st.dispose();
      }
    }
  });
});

seededTest(S, NAME, 'block ids: freed ids may be reused, live ids never collide; blockLength of a fresh block is 0', async (rng) => {
  await forEachVariant((v) => {
    const st = v.backend.createStore({ nLayer: 1, nKvHead: 1, headDim: 8 });
    try {
      const live = new Set<number>();
      for (let i = 0; i < 60; i++) {
        if (live.size > 0 && rng.bool(0.4)) {
          const id = rng.pick([...live]);
          st.freeBlock(id);
          live.delete(id);
        } else {
          const id = st.createBlock();
          assert.ok(!live.has(id), `id ${id} handed out twice`);
          assert.is(st.blockLength(id), 0);
          live.add(id);
        }
        assert.is(st.stats().blocksLive, live.size);
      }
    } finally {
      st.dispose();
    }
  });
});

seededTest(S, NAME, 'device out of memory (CUDA): a page larger than the GPU is OutOfMemoryError with the CUDA message; store and backend stay usable', async (rng) => {
  const cuda = (await backendsUnderTest()).find((b) => b.name === 'cuda');
  if (!cuda) {
    skipLine('ops-store device out of memory', 'needs the CUDA backend (the CPU backends would be killed by the kernel, not refused)');
    return;
  }
  // one page of 2^26 tokens x 8 heads x (128 + 128) f32 = 550 GB: more than any GPU has (the store's cap is 1 TB)
  const huge = cuda.backend.createStore({ nLayer: 1, nKvHead: 8, headDim: 128, pageTokens: 1 << 26 });
  try {
    const b = huge.createBlock();
    const before = huge.stats();
    expectThrows(() => huge.append(b, 1, rng.f32(8 * 128), rng.f32(8 * 128)), OutOfMemoryError, 'append needing a 550 GB page', /cudaMalloc.*(memory|Memory)/);
    assert.equal(huge.stats(), before, 'stats unchanged after the device refused');
    assert.is(huge.blockLength(b), 0);
  } finally {
    huge.dispose();
  }
  // the failed allocation leaves no sticky error: a normal store on the same device works, values round-trip
  const ok = cuda.backend.createStore({ nLayer: 2, nKvHead: 2, headDim: 16, pageTokens: 4 });
  try {
    const b = ok.createBlock();
    const k = rng.f32(2 * 5 * 2 * 16);
    const v = rng.f32(2 * 5 * 2 * 16);
    ok.append(b, 5, k, v);
    const r = ok.read(b, 1);
    expectExact(r.k, k.subarray(5 * 2 * 16), 'keys of layer 1 after the refused allocation');
    expectExact(r.v, v.subarray(5 * 2 * 16), 'values of layer 1 after the refused allocation');
  } finally {
    ok.dispose();
  }
});

seededTest(S, NAME, 'maxBytes: OutOfMemoryError on append and merge past the cap, state unchanged, then usable', async (rng) => {
  await forEachVariant((v) => {
    const pt = rng.pick([2, 5, 17]);
    const base: StoreParams = { nLayer: 2, nKvHead: 2, headDim: 16, headDimV: 8, pageTokens: pt };
    const rope = ropeParams(rng, { headDim: 16, rotaryDim: 16 }, 'normal', 'none');
    // size of one page-row (one page's worth of tokens across the store), measured
    const probe = v.backend.createStore(base);
    const pb = probe.createBlock();
    probe.append(pb, 1, rng.f32(2 * 1 * 2 * 16), rng.f32(2 * 1 * 2 * 8));
    const rowBytes = probe.stats().bytesInUse;
    probe.dispose();
    assert.ok(rowBytes > 0, 'one token uses page memory');
    const capped = v.backend.createStore({ ...base, maxBytes: 3 * rowBytes + Math.floor(rowBytes / 2) });
    const ref = new RefStore({ nLayer: 2, nKvHead: 2, headDim: 16, headDimV: 8 });
    const memo: StatsMemo = {};
    try {
      const add = (id: number, n: number) => {
        const k = rng.f32(2 * n * 2 * 16);
        const vv = rng.f32(2 * n * 2 * 8);
        capped.append(id, n, k, vv, rope);
        ref.append(id, n, k, vv, rope);
      };
      const a = capped.createBlock();
      const b = capped.createBlock();
      ref.create(a);
      ref.create(b);
      add(a, 2 * pt);
      add(b, pt - 1); // three page-rows in use
      checkStats(capped, ref, memo, 'filled to 3 rows');
      const before = capped.stats();
      const snap = () => [a, b].map((id) => capped.read(id, 1));
      const snapBefore = snap();
      const tooMuch = pt + 1;
      expectThrows(
        () => capped.append(b, tooMuch, rng.f32(2 * tooMuch * 2 * 16), rng.f32(2 * tooMuch * 2 * 8), rope),
        OutOfMemoryError,
        'append past maxBytes',
      );
      expectThrows(() => capped.merge(a, b, rope), OutOfMemoryError, 'merge past maxBytes');
      assert.equal(capped.stats(), before, 'stats unchanged after OutOfMemoryError');
      assert.is(capped.blockLength(a), 2 * pt);
      assert.is(capped.blockLength(b), pt - 1);
      snap().forEach((r, i) => {
        expectExact(r.k, snapBefore[i]!.k, `block ${i} keys unchanged after OutOfMemoryError`);
        expectExact(r.v, snapBefore[i]!.v, `block ${i} values unchanged after OutOfMemoryError`);
      });
      // still usable: fill the last row exactly, then free a row and reuse it
      add(b, 1);
      checkStats(capped, ref, memo, 'after exact fill');
      capped.truncate(a, pt);
      ref.truncate(a, pt);
      checkStats(capped, ref, memo, 'after truncate');
      add(b, pt);
      checkStats(capped, ref, memo, 'after reuse of the freed page');
      checkContents(capped, ref, false, 'maxBytes', rng, v.label);
      expectThrows(() => capped.merge(b, a, rope), OutOfMemoryError, 'merge past maxBytes (2)');
      checkContents(capped, ref, false, 'maxBytes after second OOM', rng, v.label);
    } finally {
      capped.dispose();
    }
  });
});

/** |got - want| <= 2^-11 |want| + slack: round-to-nearest half precision (11-bit significand). */
function expectHalfClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, slack: number): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const bound = Math.abs(want[i]!) * 2 ** -11 + slack;
    if (!(Math.abs(got[i]! - want[i]!) <= bound)) {
      throw new Error(`${what}: [${i}] got ${got[i]}, expected ${want[i]} within half precision (bound ${bound.toExponential(2)})`);
    }
  }
}

seededTest(S, NAME, 'dtype f16: values within half precision, rotations consistent, half the bytes of f32', async (rng) => {
  await forEachVariant((v) => {
    const params: StoreParams = { nLayer: 2, nKvHead: 2, headDim: 64, headDimV: 32, pageTokens: 17, dtype: 'f16' };
    let st: KvStore;
    try {
      st = v.backend.createStore(params);
    } catch (e) {
      if (e instanceof UnsupportedError) {
        skipLine(`${v.label} dtype f16`, e.message);
        return;
      }
      throw e;
    }
    const st32 = v.backend.createStore({ ...params, dtype: 'f32' });
    try {
      assert.is(st.params.dtype, 'f16');
      const rope = ropeParams(rng, { headDim: 64, rotaryDim: 64 }, 'neox', 'llama3');
      const a = st.createBlock();
      const b = st.createBlock();
      const a32 = st32.createBlock();
      const b32 = st32.createBlock();
      const ref = new RefStore({ nLayer: 2, nKvHead: 2, headDim: 64, headDimV: 32 });
      ref.create(a);
      ref.create(b);
      const ka = rng.f32(2 * 20 * 2 * 64);
      const va = rng.f32(2 * 20 * 2 * 32);
      const kb = rng.f32(2 * 9 * 2 * 64);
      const vb = rng.f32(2 * 9 * 2 * 32);
      st.append(a, 20, ka, va, null);
      ref.append(a, 20, ka, va, null);
      st.append(b, 9, kb, vb, rope);
      ref.append(b, 9, kb, vb, rope);
      st32.append(a32, 20, ka, va, null);
      st32.append(b32, 9, kb, vb, rope);
      for (let l = 0; l < 2; l++) {
        for (const id of [a, b]) {
          const got = st.read(id, l);
          const want = ref.read(id, l);
          expectHalfClose(got.k, want.k, `f16 block ${id} layer ${l} keys`, 2 ** -24 + 1e-7);
          expectHalfClose(got.v, want.v, `f16 block ${id} layer ${l} values`, 2 ** -24);
        }
      }
      assert.is(st.stats().bytesInUse * 2, st32.stats().bytesInUse, 'f16 pages hold the same tokens in half the bytes of f32');
      // merge with rope: the stored half values rotated by +len(dst), rounded to half again
      const beforeB = [0, 1].map((l) => st.read(b, l));
      st.merge(a, b, rope);
      for (let l = 0; l < 2; l++) {
        const got = st.read(a, l, 20, 9);
        const want = refRopeApply(rope, beforeB[l]!.k, 9, 2, new Array<number>(9).fill(20));
        expectHalfClose(got.k, want, `f16 merge layer ${l} keys`, 2 ** -24 + 1e-6);
        expectExact(got.v, beforeB[l]!.v, `f16 merge layer ${l} values`);
      }
      // readView with rope: rotation of the stored half values, output in float32
      const parts = [b, a].map((id) => st.read(id, 1));
      const view = st.readView([b, a], 1, rope);
      const want = new Float64Array(view.k.length);
      want.set(parts[0]!.k, 0);
      want.set(refRopeApply(rope, parts[1]!.k, 29, 2, new Array<number>(29).fill(9)), 9 * 2 * 64);
      expectClose(view.k, want, TOL, 'f16 readView(rope) keys');
    } finally {
      st.dispose();
      st32.dispose();
    }
  });
});

S.after(() => printWorstErrors(NAME));
S.run();
