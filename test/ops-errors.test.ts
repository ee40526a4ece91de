/**
 * Bad input on every backend variant: each must throw the right typed error class (instanceof) with a
 * message that names the problem, never crash, and leave the store exactly as it was (lengths, contents,
 * stats), usable by a following valid operation.
 *
 * Classes follow core/include/hwkv.h: malformed parameters (wrong length, bad enum, odd rotary_dim, n_head
 * not a multiple of n_kv_head, a block twice in one view, src == dst, non-power-of-two FWHT size) are
 * InvalidArgumentError; an index / handle / position / bit width outside its range (freed, negative or huge
 * block ids, layers, token ranges, bits 0 and 17, codes >= 2^bits, FWHT n > 2^20) is OutOfRangeError.
 * Every case runs and all mismatches are reported together.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { HogwildError, InvalidArgumentError, OutOfRangeError } from '../ts/index.ts';
import type { Backend, KvStore, RopeParams } from '../ts/backend/types.ts';
import { backendsUnderTest, forEachVariant, skipLine } from './helpers/backends.ts';
import type { CoreBackend } from '../ts/backend/backend.ts';
import { expectThrows, seededTest } from './helpers/harness.ts';
import { expectExact } from './helpers/metrics.ts';
import type { Rng } from './helpers/rng.ts';

const NAME = 'ops-errors';
const S = suite(NAME);

type Cls = typeof InvalidArgumentError | typeof OutOfRangeError;
interface Case {
  what: string;
  cls: Cls;
  re: RegExp;
  fn: () => unknown;
}

const LEN = /length|elements|size|expected|must have|entries|short/i;
const BLOCK = /block|handle|id/i;

const rope64: RopeParams = { headDim: 16, style: 'neox', theta: 10000 };

function run(cases: Case[], after: (c: Case) => void): void {
  const failures: string[] = [];
  for (const c of cases) {
    try {
      expectThrows(c.fn, c.cls, c.what, c.re);
      // a typed error is always a HogwildError with a code
      try {
        c.fn();
      } catch (e) {
        if (!(e instanceof HogwildError) || typeof e.code !== 'string') failures.push(`${c.what}: not a HogwildError with a code`);
      }
      after(c);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  if (failures.length) throw new Error(`${failures.length} of ${cases.length} bad-input cases failed:\n      - ${failures.join('\n      - ')}`);
}

/** A store with two blocks and a snapshot of everything observable. */
function fixture(be: Backend, rng: Rng) {
  const st = be.createStore({ nLayer: 2, nKvHead: 2, headDim: 16, headDimV: 8, pageTokens: 5 });
  const a = st.createBlock();
  const b = st.createBlock();
  st.append(a, 7, rng.f32(2 * 7 * 2 * 16), rng.f32(2 * 7 * 2 * 8), rope64);
  st.append(b, 3, rng.f32(2 * 3 * 2 * 16), rng.f32(2 * 3 * 2 * 8), rope64);
  const freed = st.createBlock();
  st.freeBlock(freed);
  const snapshot = (s: KvStore) => ({
    stats: s.stats(),
    lens: [s.blockLength(a), s.blockLength(b)],
    data: [a, b].flatMap((id) => [0, 1].map((l) => s.read(id, l))),
  });
  const before = snapshot(st);
  const checkUnchanged = (c: Case) => {
    const now = snapshot(st);
    if (JSON.stringify(now.stats) !== JSON.stringify(before.stats)) throw new Error(`${c.what}: stats changed ${JSON.stringify(before.stats)} -> ${JSON.stringify(now.stats)}`);
    if (now.lens.join() !== before.lens.join()) throw new Error(`${c.what}: block lengths changed ${before.lens} -> ${now.lens}`);
    now.data.forEach((d, i) => {
      expectExact(d.k, before.data[i]!.k, `${c.what}: keys changed`);
      expectExact(d.v, before.data[i]!.v, `${c.what}: values changed`);
    });
  };
  return { st, a, b, freed, checkUnchanged };
}

/** A valid op works after all the bad ones. */
function stillUsable(st: KvStore, a: number, b: number, rng: Rng): void {
  st.append(b, 2, rng.f32(2 * 2 * 2 * 16), rng.f32(2 * 2 * 2 * 8), rope64);
  st.merge(a, b, rope64);
  st.attention(1, rope64, { views: [[a, b]], positions: [[0, 5, 14]] }, rng.f32(3 * 4 * 16), 4, 0.25);
  st.readView([b, a], 0, rope64);
  if (st.blockLength(a) !== 12 || st.blockLength(b) !== 5) throw new Error('store not usable after the bad inputs');
}

seededTest(S, NAME, 'backend ops: rope, pack/unpack, fwht', async (rng) => {
  await forEachVariant((v) => {
    const be = v.backend;
    const x = rng.f32(3 * 2 * 16);
    const cases: Case[] = [
      { what: 'ropeApply x too short', cls: InvalidArgumentError, re: LEN, fn: () => be.ropeApply(rope64, x.subarray(1), 3, 2, [0, 1, 2]) },
      { what: 'ropeApply positions length != nTok', cls: InvalidArgumentError, re: LEN, fn: () => be.ropeApply(rope64, x, 3, 2, [0, 1]) },
      { what: 'ropeApply rotaryDim odd', cls: InvalidArgumentError, re: /rotary/i, fn: () => be.ropeApply({ ...rope64, rotaryDim: 15 }, x, 3, 2, [0, 1, 2]) },
      { what: 'ropeInvFreq rotaryDim odd', cls: InvalidArgumentError, re: /rotary/i, fn: () => be.ropeInvFreq({ ...rope64, rotaryDim: 7 }) },
      { what: 'ropeInvFreq rotaryDim 0 (must be >= 2)', cls: InvalidArgumentError, re: /rotary/i, fn: () => be.ropeInvFreq({ ...rope64, rotaryDim: 0 }) },
      { what: 'ropeInvFreq rotaryDim > headDim', cls: InvalidArgumentError, re: /rotary/i, fn: () => be.ropeInvFreq({ ...rope64, rotaryDim: 18 }) },
      { what: 'ropeInvFreq unknown style', cls: InvalidArgumentError, re: /style/i, fn: () => be.ropeInvFreq({ ...rope64, style: 'gptj' as never }) },
      { what: 'ropeInvFreq unknown scaling', cls: InvalidArgumentError, re: /scaling|type/i, fn: () => be.ropeInvFreq({ ...rope64, scaling: { type: 'dynamic' } as never }) },
      { what: 'packBits bits 0', cls: OutOfRangeError, re: /bit/i, fn: () => be.packBits([0, 0], 0) },
      { what: 'packBits bits 17', cls: OutOfRangeError, re: /bit/i, fn: () => be.packBits([1, 2], 17) },
      { what: 'unpackBits bits 0', cls: OutOfRangeError, re: /bit/i, fn: () => be.unpackBits(new Uint32Array(4), 0, 3) },
      { what: 'unpackBits bits 17', cls: OutOfRangeError, re: /bit/i, fn: () => be.unpackBits(new Uint32Array(4), 17, 3) },
      { what: 'packBits code >= 2^bits', cls: OutOfRangeError, re: /code|fit|range|bits/i, fn: () => be.packBits(Uint16Array.from([1, 2, 8, 3]), 3) },
      { what: 'unpackBits words too short', cls: InvalidArgumentError, re: /word|length|short|elements|need/i, fn: () => be.unpackBits(new Uint32Array(2), 5, 13) },
      { what: 'fwht n = 3', cls: InvalidArgumentError, re: /power/i, fn: () => be.fwht(new Float32Array(6), 3) },
      { what: 'fwht n = 12', cls: InvalidArgumentError, re: /power/i, fn: () => be.fwht(new Float32Array(12), 12) },
      { what: 'fwht n = 2^21 (> 2^20)', cls: OutOfRangeError, re: /n|2\^20|1048576|large/i, fn: () => be.fwht(new Float32Array(2 ** 21), 2 ** 21) },
      { what: 'fwht n = 0 (outside 1..2^20)', cls: OutOfRangeError, re: /n|range|2\^20/i, fn: () => be.fwht(new Float32Array(0), 0) },
      { what: 'fwht length not a multiple of n', cls: InvalidArgumentError, re: /multiple|length/i, fn: () => be.fwht(new Float32Array(10), 8) },
    ];
    run(cases, () => {});
    // still works
    const y = Float32Array.from(x.subarray(0, 32));
    be.fwht(y, 32);
    be.packBits([1, 2, 3], 2);
    be.ropeApply(rope64, Float32Array.from(x), 3, 2, [0, 1, 2]);
  });
});

seededTest(S, NAME, 'store creation: unknown dtype, bad sizes', async () => {
  await forEachVariant((v) => {
    const be = v.backend;
    const cases: Case[] = [
      { what: "dtype 'f8'", cls: InvalidArgumentError, re: /dtype/i, fn: () => be.createStore({ nLayer: 1, nKvHead: 1, headDim: 8, dtype: 'f8' as never }) },
      { what: 'nLayer 0', cls: InvalidArgumentError, re: /nLayer|layer/i, fn: () => be.createStore({ nLayer: 0, nKvHead: 1, headDim: 8 }) },
      { what: 'nKvHead 0', cls: InvalidArgumentError, re: /head/i, fn: () => be.createStore({ nLayer: 1, nKvHead: 0, headDim: 8 }) },
      { what: 'pageTokens 0', cls: InvalidArgumentError, re: /page/i, fn: () => be.createStore({ nLayer: 1, nKvHead: 1, headDim: 8, pageTokens: 0 }) },
      { what: 'maxBytes -1', cls: InvalidArgumentError, re: /maxBytes|bytes/i, fn: () => be.createStore({ nLayer: 1, nKvHead: 1, headDim: 8, maxBytes: -1 }) },
    ];
    run(cases, () => {});
    be.createStore({ nLayer: 1, nKvHead: 1, headDim: 8 }).dispose();
  });
});

seededTest(S, NAME, 'store ops: lengths, handles (freed, negative, huge), ranges, views, GQA; store unchanged and usable', async (rng) => {
  await forEachVariant((v) => {
    const { st, a, b, freed, checkUnchanged } = fixture(v.backend, rng);
    try {
      const k1 = rng.f32(2 * 1 * 2 * 16);
      const v1 = rng.f32(2 * 1 * 2 * 8);
      const q = rng.f32(2 * 4 * 16);
      const batch = (views: number[][]) => ({ views, positions: views.map(() => [3]).slice(0, 1).concat(views.slice(1).map(() => [4])) });
      const cases: Case[] = [
        { what: 'append k too short', cls: InvalidArgumentError, re: LEN, fn: () => st.append(a, 1, k1.subarray(1), v1) },
        { what: 'append v too long', cls: InvalidArgumentError, re: LEN, fn: () => st.append(a, 1, k1, rng.f32(v1.length + 1)) },
        { what: 'append k for 2 tokens, nTok 1', cls: InvalidArgumentError, re: LEN, fn: () => st.append(a, 1, rng.f32(2 * k1.length), v1) },
        { what: 'append rope rotaryDim odd', cls: InvalidArgumentError, re: /rotary/i, fn: () => st.append(a, 1, k1, v1, { ...rope64, rotaryDim: 9 }) },
        { what: 'append rope headDim != store headDim', cls: InvalidArgumentError, re: /headDim|head_dim|head dim/i, fn: () => st.append(a, 1, k1, v1, { ...rope64, headDim: 32 }) },
        { what: 'blockLength of a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.blockLength(freed) },
        { what: 'append to a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.append(freed, 1, k1, v1) },
        { what: 'read a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.read(freed, 0, 0, 0) },
        { what: 'truncate a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.truncate(freed, 0) },
        { what: 'free a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.freeBlock(freed) },
        { what: 'merge from a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.merge(a, freed, rope64) },
        { what: 'merge into a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.merge(freed, b, rope64) },
        { what: 'blockLength(-1)', cls: OutOfRangeError, re: BLOCK, fn: () => st.blockLength(-1) },
        { what: 'append to block -1', cls: OutOfRangeError, re: BLOCK, fn: () => st.append(-1, 1, k1, v1) },
        { what: 'blockLength(1e6)', cls: OutOfRangeError, re: BLOCK, fn: () => st.blockLength(1_000_000) },
        { what: 'blockLength(2^31 - 1)', cls: OutOfRangeError, re: BLOCK, fn: () => st.blockLength(2 ** 31 - 1) },
        { what: 'blockLength(2^31) (beyond int32)', cls: OutOfRangeError, re: BLOCK, fn: () => st.blockLength(2 ** 31) },
        { what: 'freeBlock(2^40)', cls: OutOfRangeError, re: BLOCK, fn: () => st.freeBlock(2 ** 40) },
        { what: 'truncate past the end', cls: OutOfRangeError, re: /length|len|range|truncate/i, fn: () => st.truncate(b, 4) },
        { what: 'truncate to -1', cls: OutOfRangeError, re: /length|len|range|truncate|negative/i, fn: () => st.truncate(b, -1) },
        { what: 'read past the end', cls: OutOfRangeError, re: /token|range|length|len/i, fn: () => st.read(b, 0, 2, 2) },
        { what: 'read start -1', cls: OutOfRangeError, re: /token|range|start|negative/i, fn: () => st.read(b, 0, -1, 1) },
        { what: 'read layer 2 of 2', cls: OutOfRangeError, re: /layer/i, fn: () => st.read(b, 2) },
        { what: 'read layer -1', cls: OutOfRangeError, re: /layer/i, fn: () => st.read(b, -1) },
        { what: 'merge a block into itself', cls: InvalidArgumentError, re: /same|differ|itself|dst|src/i, fn: () => st.merge(a, a, rope64) },
        { what: 'readView with a block twice', cls: InvalidArgumentError, re: /twice|duplicate|more than once|repeat|once/i, fn: () => st.readView([a, b, a], 0) },
        { what: 'readView with a freed block', cls: OutOfRangeError, re: BLOCK, fn: () => st.readView([a, freed], 0) },
        { what: 'readView layer 2', cls: OutOfRangeError, re: /layer/i, fn: () => st.readView([a], 2) },
        { what: 'attention view with a block twice', cls: InvalidArgumentError, re: /twice|duplicate|more than once|repeat|once/i, fn: () => st.attention(0, rope64, batch([[a, b, a]]), q.subarray(0, 4 * 16), 4, 0.25) },
        { what: 'attention nHead 3 not a multiple of nKvHead 2', cls: InvalidArgumentError, re: /head/i, fn: () => st.attention(0, rope64, batch([[a]]), rng.f32(3 * 16), 3, 0.25) },
        { what: 'attention q wrong length', cls: InvalidArgumentError, re: LEN, fn: () => st.attention(0, rope64, batch([[a]]), q, 4, 0.25) },
        { what: 'attention layer 2', cls: OutOfRangeError, re: /layer/i, fn: () => st.attention(2, rope64, batch([[a]]), q.subarray(0, 4 * 16), 4, 0.25) },
        { what: 'attention freed block in a view', cls: OutOfRangeError, re: BLOCK, fn: () => st.attention(0, rope64, batch([[a], [freed]]), q, 4, 0.25) },
        { what: 'attention negative block id', cls: OutOfRangeError, re: BLOCK, fn: () => st.attention(0, rope64, batch([[-1, a]]), q.subarray(0, 4 * 16), 4, 0.25) },
        { what: 'attention rope rotaryDim odd', cls: InvalidArgumentError, re: /rotary/i, fn: () => st.attention(0, { ...rope64, rotaryDim: 3 }, batch([[a]]), q.subarray(0, 4 * 16), 4, 0.25) },
        { what: 'attention without rope', cls: InvalidArgumentError, re: /rope|rotary|position/i, fn: () => st.attention(0, null as never, batch([[a]]), q.subarray(0, 4 * 16), 4, 0.25) },
        { what: 'attention positions/views count mismatch', cls: InvalidArgumentError, re: /position|view|sequence/i, fn: () => st.attention(0, rope64, { views: [[a], [b]], positions: [[1]] }, q.subarray(0, 4 * 16), 4, 0.25) },
      ];
      run(cases, checkUnchanged);
      stillUsable(st, a, b, rng);
    } finally {
      st.dispose();
    }
  });
});

/**
 * The addon's own check of the flat parameter structs (bindings/flat_params.h): every integer field of a
 * Float64Array struct that its C type cannot hold (a fraction, a negative uint32, beyond 2^53) is refused
 * with INVALID_ARGUMENT and a message naming the array slot and the field, before the library sees it.
 * (The WASM exports decode without checking: there the TS layer above is the check, tested above.)
 */
seededTest(S, NAME, 'addon: a flat struct field its C type cannot hold is named and refused', async (rng: Rng) => {
  let ran = 0;
  for (const { name, backend } of await backendsUnderTest()) {
    if (name !== 'native' && name !== 'cuda') continue;
    const raw = (backend as unknown as CoreBackend).raw;
    const expect = (what: string, st: number, re: RegExp) => {
      assert.is(st, 1, `${name}: ${what}: status INVALID_ARGUMENT (1)`);
      assert.match(raw.lastError(), re, `${name}: ${what}: message`);
      ran++;
    };
    const storeNames = ['n_layer', 'n_kv_head', 'head_dim', 'head_dim_v', 'page_tokens', 'dtype'];
    const sp = () => new Float64Array([rng.int(1, 4), rng.int(1, 4), 16, 16, 8, 0, 0]);
    const k = rng.int(0, 5);
    const bad = sp();
    bad[k] = bad[k]! + rng.pick([0.5, 0.25, -0.75]);
    expect(`storeCreate sp[${k}] = ${bad[k]}`, raw.storeCreate(bad, []), new RegExp(`sp\\[${k}\\] \\(${storeNames[k]}\\) must be an int32 integer`));
    const big = sp();
    big[6] = 2 ** 54;
    expect('storeCreate max_bytes 2^54', raw.storeCreate(big, []), /sp\[6\] \(max_bytes\) must be a safe integer/);
    if (raw.storeCreateCodec) {
      const codec = new Float64Array([2, 2, 0, 8, 8, 2, 16, 0, 0, -rng.int(1, 99), 0, 0]);
      expect('storeCreateCodec seed < 0', raw.storeCreateCodec(sp(), codec, null, null, []), /codec\[9\] \(seed\) must be a uint32 integer/);
      expect('storeCreateCodec 9 fields', raw.storeCreateCodec(sp(), codec.subarray(0, 9), null, null, []), /codec has 9 elements, needs 10 \(CODEC_LEN\)/);
    }
    if (raw.quant) {
      const hp = new Float64Array([64, 64, 2, 16, 1, rng.int(0, 1000)]);
      hp[3] = 16.5;
      expect('higgsSize n_points 16.5', raw.quant.higgsSize(hp, 4, new Float64Array(2)), /hp\[3\] \(n_points\) must be an int32 integer/);
      // buffers shorter than the library's sizes are refused by the addon before the library writes
      const ok = new Float64Array([64, 64, 2, 16, 1, rng.int(0, 1000)]);
      const nTok = rng.int(2, 6);
      const grid = rng.f32(32);
      expect('higgsEncode scales short', raw.quant.higgsEncode(ok, grid, rng.f32(64 * nTok), nTok, new Uint32Array(64 * nTok), new Uint16Array(nTok - 1)), /scales has \d+ elements, needs at least \d+/);
      expect('higgsDecode y short', raw.quant.higgsDecode(ok, grid, new Uint32Array(64 * nTok), new Uint16Array(nTok), nTok, new Float32Array(64 * nTok - 1), false), /y has \d+ elements, needs at least \d+/);
      const up = new Float64Array([32, 2, 0, 32]);
      expect('uniformEncode zeros short', raw.quant.uniformEncode(up, rng.f32(32 * nTok), nTok, new Uint32Array(64), new Uint16Array(nTok), new Uint16Array(nTok - 1)), /zeros has \d+ elements, needs at least \d+/);
      expect('uniformDecode y short', raw.quant.uniformDecode(up, new Uint32Array(64), new Uint16Array(nTok), new Uint16Array(nTok), nTok, new Float32Array(5), false), /y has \d+ elements, needs at least \d+/);
    }
    if (raw.model) {
      const mp = new Float64Array(24);
      mp.set([1, 32, 2, 2, 16, 64, 50, 0, 1e-5, 1, 0.25, 1, 16, 16, 0, 0, 10000, 1, 1, 4, 8192, 32, 1, 0]);
      const m1 = mp.slice();
      m1[7] = -1;
      const create = (m: Float64Array) =>
        raw.model!.modelCreate(m, [], new Int32Array(0), new Int32Array(0), new Float64Array(0), [], new Float64Array(0), new Float64Array(0), 1, []);
      expect('modelCreate flags -1', create(m1), /mp\[7\] \(flags\) must be a uint32 integer/);
      const m2 = mp.slice();
      m2[23] = 0.5;
      expect('modelCreate rope yarn_truncate 0.5', create(m2), /mp\[23\] \(rope yarn_truncate\) must be an int32 integer/);
    }
  }
  if (ran === 0) skipLine('ops-errors addon structs', 'no addon-based backend (native, cuda) is available');
});

S.run();
