/**
 * Cross-backend agreement: native and wasm (the same C++ core, two compilers and SIMD sets) give the same
 * results on the same inputs: float ops within 1e-6 relative, pack/unpack and store copies exactly, store
 * stats identical. Compared SIMD-vs-SIMD and scalar-vs-scalar. CUDA is compared with native when both exist.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend, RopeParams } from '../ts/backend/types.ts';
import { backendPairs, type BackendUnderTest } from './helpers/backends.ts';
import { allRopeParams, HEAD_SHAPES, randomPositions, ropeParams, SCALINGS, STYLES } from './helpers/cases.ts';
import { seededTest } from './helpers/harness.ts';
import { expectClose, expectExact, expectLseClose, printWorstErrors } from './helpers/metrics.ts';
import type { Rng } from './helpers/rng.ts';

const NAME = 'ops-cross';
const S = suite(NAME);
const TOL = 1e-6;

async function eachPair(fn: (x: Backend, y: Backend, label: string) => void): Promise<void> {
  for (const [a, b] of [['native', 'wasm'], ['cuda', 'native']] as const) {
    const pair = await backendPairs(a, b);
    if (!pair) continue;
    const [x, y]: [BackendUnderTest, BackendUnderTest] = pair;
    const modes = a === 'native' ? [false, true] : [false];
    for (const scalar of modes) {
      x.backend.setForceScalar?.(scalar);
      y.backend.setForceScalar?.(scalar);
      const label = `${a}-vs-${b}${scalar ? '/scalar' : '/simd'}`;
      try {
        fn(x.backend, y.backend, label);
      } catch (e) {
        (e as Error).message = `[${label}] ${(e as Error).message}`;
        throw e;
      } finally {
        x.backend.setForceScalar?.(false);
        y.backend.setForceScalar?.(false);
      }
    }
  }
}

seededTest(S, NAME, 'rope inv_freq and apply agree within 1e-6', async (rng) => {
  const cases = allRopeParams(rng);
  await eachPair((x, y, label) => {
    for (const p of cases) {
      expectClose(x.ropeInvFreq(p).invFreq, y.ropeInvFreq(p).invFreq, TOL, `inv_freq ${JSON.stringify(p)}`, `invFreq/${label}`);
      const nTok = 9;
      const pos = randomPositions(rng, nTok);
      const a = rng.f32(nTok * 3 * p.headDim);
      const b = Float32Array.from(a);
      x.ropeApply(p, a, nTok, 3, pos);
      y.ropeApply(p, b, nTok, 3, pos);
      expectClose(a, b, TOL, `apply ${JSON.stringify(p)}`, `apply/${label}`);
    }
  });
});

seededTest(S, NAME, 'pack/unpack identical words and codes; FWHT within 1e-6', async (rng) => {
  await eachPair((x, y, label) => {
    for (let bits = 1; bits <= 16; bits++) {
      const codes = rng.codes(rng.int(0, 1000), bits);
      const wx = x.packBits(codes, bits);
      expectExact(wx, y.packBits(codes, bits), `pack bits=${bits}`);
      expectExact(x.unpackBits(wx, bits, codes.length), y.unpackBits(wx, bits, codes.length), `unpack bits=${bits}`);
    }
    for (const n of [1, 2, 8, 128, 1024, 8192]) {
      const a = rng.f32(2 * n);
      const b = Float32Array.from(a);
      x.fwht(a, n, 1 / Math.sqrt(n));
      y.fwht(b, n, 1 / Math.sqrt(n));
      expectClose(a, b, TOL, `fwht n=${n}`, `fwht/${label}`);
    }
  });
});

function storeScript(rng: Rng, be: Backend, seed: number, rope: RopeParams | null) {
  // the same random script on each backend: re-seed from `seed` so inputs are identical
  void rng;
  const { Rng: R } = rngModule;
  const r = new R(seed);
  const shape = HEAD_SHAPES[seed % HEAD_SHAPES.length]!;
  const p = { nLayer: 2, nKvHead: 2, headDim: shape.headDim, headDimV: 24, pageTokens: r.pick([1, 17, 64]) };
  const st = be.createStore(p);
  const ids: number[] = [];
  const stats: unknown[] = [];
  for (let i = 0; i < 30; i++) {
    const op = ids.length < 2 ? 'create' : r.pick(['create', 'append', 'append', 'truncate', 'merge', 'free']);
    if (op === 'create') ids.push(st.createBlock());
    else if (op === 'append') {
      const id = r.pick(ids);
      const n = r.int(0, 40);
      st.append(id, n, r.f32(2 * n * 2 * p.headDim), r.f32(2 * n * 2 * 24), rope);
    } else if (op === 'truncate') {
      const id = r.pick(ids);
      st.truncate(id, r.int(0, st.blockLength(id)));
    } else if (op === 'merge') {
      const [d, s] = r.shuffle([...ids]);
      st.merge(d!, s!, rope);
    } else {
      const id = ids.splice(r.int(0, ids.length - 1), 1)[0]!;
      st.freeBlock(id);
    }
    stats.push(st.stats());
  }
  const reads = ids.flatMap((id) => [0, 1].map((l) => st.read(id, l)));
  const view = st.readView(ids, 1, rope ?? ropeParams(r, shape, 'neox', 'none'));
  const nQ = 6;
  const nHead = 2 * r.pick([1, 2, 4, 8]);
  const attnRope = rope ?? ropeParams(r, shape, 'normal', 'yarn');
  const total = ids.reduce((a, id) => a + st.blockLength(id), 0);
  const attn = st.attention(
    1,
    attnRope,
    { views: [ids, ids.slice(1)], positions: [[total - 1, total - 2, 3], [0, -1, total]] },
    r.f32(nQ * nHead * p.headDim),
    nHead,
    1 / Math.sqrt(p.headDim),
  );
  st.dispose();
  return { ids, stats, reads, view, attn };
}

import * as rngModule from './helpers/rng.ts';

seededTest(S, NAME, 'store: identical ids, stats and copies; rotations and attention within 1e-6', async (rng) => {
  await eachPair((x, y, label) => {
    for (let rep = 0; rep < 4; rep++) {
      const seed = rng.u32();
      const shape = HEAD_SHAPES[seed % HEAD_SHAPES.length]!;
      for (const rope of [null, ropeParams(rng, shape, rng.pick(STYLES), rng.pick(SCALINGS))]) {
        const a = storeScript(rng, x, seed, rope);
        const b = storeScript(rng, y, seed, rope);
        const what = `script seed ${seed} rope ${rope ? JSON.stringify(rope) : 'none'}`;
        assert.equal(a.ids, b.ids, `${what}: block ids`);
        assert.equal(a.stats, b.stats, `${what}: stats after every op`);
        a.reads.forEach((r, i) => {
          if (rope) expectClose(r.k, b.reads[i]!.k, TOL, `${what}: keys ${i}`, `storeK/${label}`);
          else expectExact(r.k, b.reads[i]!.k, `${what}: keys ${i}`);
          expectExact(r.v, b.reads[i]!.v, `${what}: values ${i}`);
        });
        expectClose(a.view.k, b.view.k, TOL, `${what}: readView keys`, `viewK/${label}`);
        expectExact(a.view.v, b.view.v, `${what}: readView values`);
        expectClose(a.attn.out, b.attn.out, TOL, `${what}: attention out`, `attn/${label}`);
        expectLseClose(a.attn.lse, b.attn.lse, TOL, `${what}: attention lse`, `lse/${label}`);
      }
    }
  });
});

S.after(() => printWorstErrors(NAME));
S.run();
