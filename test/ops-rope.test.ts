/**
 * RoPE on every backend variant: inv_freq for every scaling scheme and apply for both styles, partial
 * rotary and negative positions, against the float64 reference (f32 relative error < 1e-6), and the
 * composition identity R(a)R(b) = R(a+b) on the backend itself.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { refInvFreq, refRopeApply } from './ref/rope.ts';
import { forEachVariant } from './helpers/backends.ts';
import { HEAD_SHAPES, SCALINGS, STYLES, allRopeParams, describeRope, randomPositions, ropeParams } from './helpers/cases.ts';
import { seededTest } from './helpers/harness.ts';
import { expectClose, expectExact, printWorstErrors } from './helpers/metrics.ts';

const NAME = 'ops-rope';
const S = suite(NAME);
const TOL = 1e-6;

seededTest(S, NAME, 'inv_freq: every scheme and head shape vs float64', async (rng) => {
  const cases = [...allRopeParams(rng), ...allRopeParams(rng)];
  await forEachVariant((v) => {
    for (const p of cases) {
      const got = v.backend.ropeInvFreq(p);
      const ref = refInvFreq(p);
      assert.is(got.invFreq.length, (p.rotaryDim ?? p.headDim) / 2, 'inv_freq length = rotaryDim/2');
      expectClose(got.invFreq, ref.invFreq, TOL, `inv_freq ${describeRope(p)}`, `invFreq/${v.label}`);
      expectClose([got.attentionFactor], [ref.attentionFactor], TOL, `attentionFactor ${describeRope(p)}`);
    }
  });
});

seededTest(S, NAME, 'apply: both styles, partial rotary, every scheme, negative and large positions vs float64', async (rng) => {
  await forEachVariant((v) => {
    for (const shape of HEAD_SHAPES) {
      for (const style of STYLES) {
        for (const sc of SCALINGS) {
          const p = ropeParams(rng, shape, style, sc);
          const nTok = rng.pick([1, 3, 17, 33]);
          const nHead = rng.int(1, 5);
          const pos = randomPositions(rng, nTok);
          const x = rng.f32(nTok * nHead * p.headDim);
          const ref = refRopeApply(p, x, nTok, nHead, pos);
          const y = Float32Array.from(x);
          v.backend.ropeApply(p, y, nTok, nHead, pos);
          expectClose(y, ref, TOL, `apply ${describeRope(p)} nTok=${nTok} nHead=${nHead} pos=[${Array.from(pos).slice(0, 8)}...]`, `apply/${v.label}`);
          // dims past rotaryDim are untouched, bit for bit
          const rd = p.rotaryDim ?? p.headDim;
          for (let r = 0; r < nTok * nHead; r++) {
            for (let d = rd; d < p.headDim; d++) {
              if (y[r * p.headDim + d] !== x[r * p.headDim + d]) throw new Error(`dim ${d} >= rotaryDim ${rd} was modified (${describeRope(p)})`);
            }
          }
        }
      }
    }
  });
});

seededTest(S, NAME, 'apply: positions passed as number[] and Int32Array agree; nTok = 0 is a no-op', async (rng) => {
  await forEachVariant((v) => {
    const p = ropeParams(rng, { headDim: 64, rotaryDim: 64 }, 'neox', 'none');
    const pos = randomPositions(rng, 4);
    const x = rng.f32(4 * 2 * 64);
    const a = Float32Array.from(x);
    const b = Float32Array.from(x);
    v.backend.ropeApply(p, a, 4, 2, pos);
    v.backend.ropeApply(p, b, 4, 2, Array.from(pos));
    expectExact(a, b, 'Int32Array vs number[] positions');
    const empty = new Float32Array(0);
    v.backend.ropeApply(p, empty, 0, 2, []);
  });
});

seededTest(S, NAME, 'composition: R(a)R(b) = R(a+b) on the backend (offsets incl. -10,-2,-1,0,1,30,1024,1025)', async (rng) => {
  const offsets = [-10, -2, -1, 0, 1, 30, 1024, 1025];
  await forEachVariant((v) => {
    for (const p of allRopeParams(rng)) {
      const nTok = offsets.length;
      const nHead = 2;
      const x = rng.f32(nTok * nHead * p.headDim);
      const a = Int32Array.from(offsets);
      const b = randomPositions(rng, nTok, 20000);
      const ab = a.map((q, i) => q + b[i]!);
      const two = Float32Array.from(x);
      v.backend.ropeApply(p, two, nTok, nHead, b);
      v.backend.ropeApply(p, two, nTok, nHead, a);
      const one = Float32Array.from(x);
      v.backend.ropeApply(p, one, nTok, nHead, ab);
      expectClose(two, one, TOL, `R(a)R(b) vs R(a+b) ${describeRope(p)}`, `compose/${v.label}`);
      // and R(-a)R(a) = I
      v.backend.ropeApply(p, one, nTok, nHead, ab.map((q) => -q));
      expectClose(one, x, TOL, `R(-p)R(p) = I ${describeRope(p)}`);
    }
  });
});

S.after(() => printWorstErrors(NAME));
S.run();
