/**
 * Fast Walsh–Hadamard transform on every backend variant: against the O(n^2) Sylvester-matrix reference
 * (f32 relative error < 1e-6), the Sylvester order exactly (transform of basis vectors), and H·H = n·I
 * up to n = 2^20.
 */
import { suite } from 'uvu';
import { hadamardEntry, refFwht } from './ref/hadamard.ts';
import { forEachVariant } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import { expectClose, expectExact, printWorstErrors } from './helpers/metrics.ts';

const NAME = 'ops-fwht';
const S = suite(NAME);
const TOL = 1e-6;

seededTest(S, NAME, 'vs O(n^2) reference, n = 1..8192, several rows, scale 1 and 1/sqrt(n)', async (rng) => {
  const cases: { n: number; rows: number; scale: number; x: Float32Array; ref: Float64Array }[] = [];
  for (let k = 0; k <= 13; k++) {
    const n = 2 ** k;
    const rows = n >= 4096 ? 1 : rng.int(1, 3);
    const scale = rng.bool() ? 1 : 1 / Math.sqrt(n);
    const x = rng.f32(rows * n);
    cases.push({ n, rows, scale, x, ref: refFwht(x, n, scale) });
  }
  await forEachVariant((v) => {
    for (const c of cases) {
      const y = Float32Array.from(c.x);
      v.backend.fwht(y, c.n, c.scale);
      expectClose(y, c.ref, TOL, `fwht n=${c.n} rows=${c.rows} scale=${c.scale}`, `fwht/${v.label}`);
    }
    // default scale is 1
    const x = rng.f32(64);
    const y = Float32Array.from(x);
    v.backend.fwht(y, 64);
    expectClose(y, refFwht(x, 64, 1), TOL, 'fwht default scale');
  });
});

seededTest(S, NAME, 'Sylvester order: H e_j = column j of (-1)^popcount(i&j), exactly', async () => {
  await forEachVariant((v) => {
    for (const n of [2, 16, 128]) {
      const x = new Float32Array(n * n);
      for (let j = 0; j < n; j++) x[j * n + j] = 1; // row j = e_j
      v.backend.fwht(x, n, 1);
      const ref = new Float32Array(n * n);
      for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) ref[j * n + i] = hadamardEntry(i, j);
      expectExact(x, ref, `H e_j, n=${n}`);
    }
  });
});

seededTest(S, NAME, 'H·H = n·I and orthonormal round trip, n up to 2^20', async (rng) => {
  await forEachVariant((v) => {
    for (const k of [0, 1, 5, 10, 13, 16, 20]) {
      const n = 2 ** k;
      const rows = k >= 16 ? 1 : 2;
      const x = rng.f32(rows * n);
      const y = Float32Array.from(x);
      v.backend.fwht(y, n, 1);
      v.backend.fwht(y, n, 1);
      expectClose(y, Array.from(x, (q) => q * n), TOL, `H·H x = n x, n=${n}`, `fwhtHH/${v.label}`);
      const z = Float32Array.from(x);
      v.backend.fwht(z, n, 1 / Math.sqrt(n));
      v.backend.fwht(z, n, 1 / Math.sqrt(n));
      expectClose(z, x, TOL, `orthonormal twice = identity, n=${n}`, `fwhtHH/${v.label}`);
    }
  });
});

S.after(() => printWorstErrors(NAME));
S.run();
