/**
 * AQUA-KV quantizers and ridge algebra (core/include/hwkv_quant.h) on every CPU backend variant, against
 * the float64 references of test/ref/quant.ts:
 *   - HIGGS encode/decode: codes equal the reference except near-exact ties, fp16 scales exact,
 *     reconstruction within 1e-5; accumulate mode; n > 256 codes round-trip (no 8-bit wrap-around);
 *     zero groups decode to zeros (no NaN); relMSE is scale invariant;
 *   - the quality targets on N(0,1) vectors of 1024 values (full pipeline) within ±3%;
 *   - uniform quantizer (both axes, 2/3/4/8 bits, partial token group) vs reference, exact codes;
 *   - ridge fit vs a float64 normal-equations solve (1e-4); not-SPD -> typed error; linear apply vs float64 within the float32 summation bound;
 *   - byte accounting equals the packed sizes; native vs WASM identical codes; bad inputs -> typed errors.
 */
import { suite } from 'uvu';
import { gaussianGrid, listGrids } from '../ts/aqua/grids.ts';
import type { HiggsConfig, HiggsGrid, QuantOps, UniformConfig } from '../ts/aqua/types.ts';
import type { Backend } from '../ts/backend/types.ts';
import { InvalidArgumentError, OutOfRangeError } from '../ts/errors.ts';
import { backendPairs, forEachVariant, skipLine } from './helpers/backends.ts';
import { expectThrows, seededTest } from './helpers/harness.ts';
import { compareArrays, expectClose, expectExact, printWorstErrors, recordErr } from './helpers/metrics.ts';
import type { Rng } from './helpers/rng.ts';
import { halfToNumber, refHiggsDecode, refHiggsEncode, refLinear, refRidge, refSigns, refUniform } from './ref/quant.ts';

const NAME = 'aqua-quant';
const S = suite(NAME);

function ops(b: Backend): QuantOps {
  if (!b.quant) throw new Error(`${b.name}: backend has no quant ops`);
  return b.quant;
}

/** forEachVariant over the variants whose build has the quantizers (an older build prints a SKIP line). */
async function forEachQuantVariant(fn: Parameters<typeof forEachVariant>[0]): Promise<void> {
  await forEachVariant((v) => {
    if (!v.backend.quant) {
      skipLine(`${v.name} quantizers`, 'this build of the backend has no hwkv_quant_api (rebuild: npm run build:native / npm run build:wasm)');
      return;
    }
    return fn(v);
  });
}

function relMse(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let e = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    const d = y[i]! - x[i]!;
    e += d * d;
    n += x[i]! * x[i]!;
  }
  return e / n;
}

/** Unpack a code stream with the backend's own unpackBits. */
function unpack(b: Backend, words: Uint32Array, bits: number, n: number): Uint16Array {
  return b.unpackBits(words, bits, n);
}

function cfgOf(grid: HiggsGrid, channels: number, group: number, signs: boolean, seed = 7): HiggsConfig {
  return { channels, group, grid, signs, seed };
}

/** Codes equal the reference except where the reference's two best distances (nearly) tie. */
function compareCodes(got: ArrayLike<number>, ref: { codes: Uint32Array; margin: Float64Array }, what: string): number {
  let ties = 0;
  for (let i = 0; i < ref.codes.length; i++) {
    if (got[i] === ref.codes[i]) continue;
    if (ref.margin[i]! <= 1e-5) {
      ties++;
      continue;
    }
    throw new Error(`${what}: code [${i}] = ${got[i]}, reference ${ref.codes[i]} (margin ${ref.margin[i]!.toExponential(2)}: not a tie)`);
  }
  // every mismatch above is a genuine near-tie (margin <= 1e-5); the cap only catches a systematic shift
  if (ties > ref.codes.length * 1e-2 + 4) throw new Error(`${what}: ${ties} near-tie mismatches of ${ref.codes.length}: too many`);
  return ties;
}

function randomGrid(rng: Rng, dim: 1 | 2 | 4 | 8, n: number): HiggsGrid {
  return { dim, points: rng.f32(n * dim) };
}

seededTest(S, NAME, 'HIGGS encode/decode vs float64 reference (grids d=1,2,4,8; C=1024/512/384; signs on/off)', async (rng) => {
  const grids = [gaussianGrid(1, 16), gaussianGrid(2, 16), gaussianGrid(2, 256), gaussianGrid(4, 256), gaussianGrid(8, 256)];
  const shapes = [
    { C: 1024, g: 1024 },
    { C: 512, g: 512 },
    { C: 384, g: 128 },
  ];
  const nTok = 6;
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const grid of grids) {
      for (const { C, g } of shapes) {
        for (const signs of [false, true]) {
          const x = rng.f32(nTok * C, rng.pick([0.01, 1, 30]));
          const cfg = cfgOf(grid, C, g, signs, rng.int(0, 0xffffffff));
          const what = `${grid.name} C=${C} g=${g} signs=${signs}`;
          const enc = q.higgsEncode(cfg, x);
          const ref = refHiggsEncode({ channels: C, group: g, dim: grid.dim, grid: grid.points, signs, seed: cfg.seed! }, x, nTok);
          const bits = Math.log2(grid.points.length / grid.dim);
          const codes = unpack(v.backend, enc.codes, bits, (nTok * C) / grid.dim);
          compareCodes(codes, ref, what);
          expectExact(Array.from(enc.scales, halfToNumber), ref.scales, `${what}: fp16 scales`);
          const y = q.higgsDecode(cfg, enc);
          const yRef = refHiggsDecode({ channels: C, group: g, dim: grid.dim, grid: grid.points, signs, seed: cfg.seed! }, codes, ref.scales, nTok);
          expectClose(y, yRef, 1e-5, `${what}: decode`, `higgs-decode/${v.label}`);
          // accumulate: out = pred + x̂
          const pred = rng.f32(nTok * C);
          const acc = Float32Array.from(pred);
          q.higgsDecode(cfg, enc, acc, true);
          expectClose(acc, Array.from(pred, (p, i) => p + y[i]!), 1e-6, `${what}: accumulate`);
        }
      }
    }
  });
});

seededTest(S, NAME, 'quality targets: relMSE on N(0,1) vectors of 1024 values within ±3%', async (rng) => {
  const targets: [1 | 2 | 4 | 8, number, number][] = [
    [2, 16, 0.108],
    [2, 64, 0.0296],
    [2, 256, 0.0078],
    [4, 256, 0.0964],
  ];
  const nTok = 256;
  const x = rng.f32(nTok * 1024);
  const lines: string[] = [];
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const [d, n, target] of targets) {
      const grid = gaussianGrid(d, n);
      for (const signs of [true, false]) {
        const cfg: HiggsConfig = { channels: 1024, grid, signs, seed: 1 };
        const y = q.higgsDecode(cfg, q.higgsEncode(cfg, x));
        const e = relMse(x, y);
        if (!v.scalar && signs) lines.push(`${v.name} ${grid.name}: relMSE ${e.toFixed(5)} (target ${target})`);
        if (Math.abs(e / target - 1) > 0.03) throw new Error(`${grid.name} signs=${signs}: relMSE ${e.toFixed(5)} not within ±3% of ${target}`);
      }
    }
  });
  process.stdout.write(`\nRELMSE ${lines.join('; ')}\n`);
});

seededTest(S, NAME, 'n > 256: codes up to 4095 and 65535 round-trip (no 8-bit wrap-around)', async (rng) => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const [dim, n] of [
      [2, 4096],
      [1, 65536],
      [8, 4096],
    ] as const) {
      const grid = randomGrid(rng, dim, n);
      const C = 256;
      const nTok = 4;
      const x = rng.f32(nTok * C);
      const cfg = cfgOf(grid, C, C, true, 3);
      const enc = q.higgsEncode(cfg, x);
      const bits = Math.log2(n);
      const codes = unpack(v.backend, enc.codes, bits, (nTok * C) / dim);
      const ref = refHiggsEncode({ channels: C, group: C, dim, grid: grid.points, signs: true, seed: 3 }, x, nTok);
      compareCodes(codes, ref, `random grid d=${dim} n=${n}`);
      let big = 0;
      for (const c of codes) if (c > 255) big++;
      if (big < codes.length / 4) throw new Error(`d=${dim} n=${n}: only ${big} of ${codes.length} codes > 255; the test does not exercise wide codes`);
      const y = q.higgsDecode(cfg, enc);
      const yRef = refHiggsDecode({ channels: C, group: C, dim, grid: grid.points, signs: true, seed: 3 }, codes, ref.scales, nTok);
      expectClose(y, yRef, 1e-5, `d=${dim} n=${n}: decode`);
      // gridNearest agrees with the codes HIGGS picked
      const z = Float32Array.from(ref.z.subarray(0, C));
      const idx = q.gridNearest(grid, z);
      compareCodes(idx, { codes: ref.codes.subarray(0, C / dim), margin: ref.margin.subarray(0, C / dim) }, `gridNearest d=${dim} n=${n}`);
    }
  });
});

seededTest(S, NAME, 'zero groups decode to exact zeros, no NaN; tiny and huge-but-valid norms', async (rng) => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    const grid = gaussianGrid(2, 16);
    const C = 512;
    const cfg: HiggsConfig = { channels: C, group: 128, grid, signs: true, seed: 9 };
    const x = rng.f32(3 * C);
    x.fill(0, 0, C); // token 0 all zero
    x.fill(0, C + 128, C + 256); // one zero group of token 1
    x.fill(1e-9, 2 * C, 2 * C + 128); // norm below the fp16 range -> scale 0
    const enc = q.higgsEncode(cfg, x);
    const y = q.higgsDecode(cfg, enc);
    for (let i = 0; i < y.length; i++) if (!Number.isFinite(y[i]!)) throw new Error(`y[${i}] = ${y[i]} is not finite`);
    for (let i = 0; i < C; i++) if (y[i] !== 0) throw new Error(`zero token decoded to ${y[i]} at ${i}`);
    for (let i = C + 128; i < C + 256; i++) if (y[i] !== 0) throw new Error(`zero group decoded to ${y[i]} at ${i}`);
    if (enc.scales[0] !== 0 || enc.scales[4 + 1] !== 0 || enc.scales[8] !== 0) throw new Error('zero groups must store scale 0');
    // norm close to the fp16 maximum still works
    const big = rng.f32(C, 1);
    let ss = 0;
    for (const b of big) ss += b * b;
    const k = 45000 / Math.sqrt(ss / 4); // group norms ~ 45000 (fp16 max 65504)
    for (let i = 0; i < C; i++) big[i] = big[i]! * k;
    const yb = q.higgsDecode(cfg, q.higgsEncode(cfg, big));
    const e = relMse(big, yb);
    if (!(e < 0.2)) throw new Error(`huge-norm vector: relMSE ${e}`);
  });
});

seededTest(S, NAME, 'relMSE is scale invariant (x and c·x)', async (rng) => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    const cfg: HiggsConfig = { channels: 1024, grid: gaussianGrid(2, 64), signs: true, seed: 5 };
    const x = rng.f32(32 * 1024);
    const e1 = relMse(x, q.higgsDecode(cfg, q.higgsEncode(cfg, x)));
    for (const c of [1 / 1024, 4, 1e-3, 37.5, 1000]) {
      const xc = Float32Array.from(x, (a) => a * c);
      const enc = q.higgsEncode(cfg, xc);
      const ec = relMse(xc, q.higgsDecode(cfg, enc));
      if (Math.abs(ec / e1 - 1) > 0.01) throw new Error(`scale ${c}: relMSE ${ec} vs ${e1} at scale 1`);
      if (Number.isInteger(Math.log2(c))) {
        // a power-of-two scale is exact in fp16: identical codes
        expectExact(enc.codes, q.higgsEncode(cfg, x).codes, `scale ${c}: codes`);
      }
    }
  });
});

seededTest(S, NAME, 'uniform quantizer vs reference: both axes, 2/3/4/8 bits, partial token group', async (rng) => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const bits of [2, 3, 4, 8]) {
      for (const [axis, group, nTok] of [
        ['token', 32, 5],
        ['token', 128, 3],
        ['channel', 16, 40],
        ['channel', 32, 32],
      ] as const) {
        const C = 256;
        const cfg: UniformConfig = { channels: C, bits, axis, group };
        const x = rng.f32(nTok * C, rng.pick([0.05, 1, 20]));
        for (let i = 0; i < C; i++) x[i + C] = 1.5; // a constant token (zero range per token)
        const enc = q.uniformEncode(cfg, x);
        const ref = refUniform(cfg, x, nTok);
        const what = `uniform bits=${bits} axis=${axis} group=${group} nTok=${nTok}`;
        expectExact(Array.from(enc.scales, halfToNumber), ref.scales, `${what}: scales`);
        expectExact(Array.from(enc.zeros, halfToNumber), ref.zeros, `${what}: zeros`);
        expectExact(unpack(v.backend, enc.codes, bits, nTok * C), ref.codes, `${what}: codes`);
        const y = q.uniformDecode(cfg, enc);
        expectClose(y, ref.y, 1e-6, `${what}: decode`, `uniform/${v.label}`);
        for (const val of y) if (!Number.isFinite(val)) throw new Error(`${what}: non-finite output`);
        const acc = new Float32Array(nTok * C).fill(1);
        q.uniformDecode(cfg, enc, acc, true);
        expectClose(acc, Array.from(y, (a) => a + 1), 1e-6, `${what}: accumulate`);
        // error bound: per value at most half a step (plus fp16 rounding of scale/zero)
        const e = relMse(x, y);
        if (bits >= 4 && !(e < 0.02)) throw new Error(`${what}: relMSE ${e}`);
      }
    }
  });
});

seededTest(S, NAME, 'ridge fit vs float64 normal-equations solve (1e-4), chunked accumulation, not-SPD error', async (rng) => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const [p, qq, n, lambda] of [
      [7, 3, 500, 1e-3],
      [40, 5, 1000, 1e-6],
      [130, 9, 700, 1e-2],
      [0, 2, 50, 1e-3],
      [300, 130, 1200, 1e-3], // > 128 rows below the pivot and > 64 columns: the pooled Cholesky and column-split solves
    ] as const) {
      const x = rng.f32(n * p);
      const wTrue = rng.f32((p + 1) * qq);
      const y = new Float32Array(n * qq);
      for (let r = 0; r < n; r++)
        for (let k = 0; k < qq; k++) {
          let s = wTrue[p * qq + k]!;
          for (let i = 0; i < p; i++) s += x[r * p + i]! * wTrue[i * qq + k]!;
          y[r * qq + k] = s + 0.1 * rng.normal();
        }
      const acc = q.ridgeCreate(p, qq);
      for (let r = 0; r < n; r += 123) {
        const m = Math.min(123, n - r);
        q.ridgeAccumulate(acc, x.subarray(r * p, (r + m) * p), y.subarray(r * qq, (r + m) * qq), m);
      }
      if (acc.rows !== n) throw new Error(`rows ${acc.rows} != ${n}`);
      const w = q.ridgeSolve(acc, lambda);
      const wRef = refRidge(x, y, n, p, qq, lambda);
      expectClose(w, wRef, 1e-4, `ridge p=${p} q=${qq} n=${n} λ=${lambda}`, `ridge/${v.label}`);
      let yy = 0;
      for (const a of y) yy += a * a;
      let yyAcc = 0;
      for (const a of acc.yy) yyAcc += a;
      if (Math.abs(yyAcc / yy - 1) > 1e-9) throw new Error(`yy ${yyAcc} vs ${yy}`);
    }
    // collinear inputs without regularisation: not positive definite -> typed error
    const n = 64;
    const x = new Float32Array(n * 2);
    for (let r = 0; r < n; r++) {
      x[2 * r] = rng.normal();
      x[2 * r + 1] = 2 * x[2 * r]!;
    }
    const acc = q.ridgeCreate(2, 1);
    q.ridgeAccumulate(acc, x, rng.f32(n));
    expectThrows(() => q.ridgeSolve(acc, 0), InvalidArgumentError, 'collinear ridge', /positive definite/);
  });
});

seededTest(S, NAME, 'linear apply (the calibration predictions) vs float64 [x, 1]·W; bad shapes -> typed errors', async (rng) => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const [n, p, qq] of [
      [131, 37, 70],
      [300, 513, 256],
      [5, 0, 9],
      [0, 16, 8],
      [1, 1, 1],
      [1100, 512, 130], // CUDA: >= 1024 rows, K % 16 == 0: the big-tile GEMM (M and N tails)
    ] as const) {
      const x = rng.f32(n * p);
      const w = rng.f32((p + 1) * qq);
      const y = q.linearApply(x, w, n, p, qq);
      const ref = refLinear(x, w, n, p, qq);
      recordErr(`linear/${v.label}`, n > 0 ? compareArrays(y, ref).relMax : 0);
      // float32 sums of p + 1 terms: each output within the sequential-summation bound (p + 2)·2^-23·Σ|terms|
      // (a relative check fails on cancellation, e.g. one term nearly cancelling the bias); CUDA's 3xTF32
      // tensor-core products add at most 3·2^-22 per product (dropped small·small and the TF32 roundings): 2^-19
      const tc = v.backend.name === 'cuda' ? 2 ** -19 : 0;
      const abs = refLinear(x.map(Math.abs), w.map(Math.abs), n, p, qq);
      for (let i = 0; i < ref.length; i++) {
        const bound = ((p + 2) * 2 ** -23 + tc) * abs[i]!;
        if (!(Math.abs(y[i]! - ref[i]!) <= bound)) {
          throw new Error(`linear n=${n} p=${p} q=${qq} [${i}]: got ${y[i]}, float64 ${ref[i]} (|Δ| > ${bound.toExponential(2)})`);
        }
      }
      if (n >= 1024) {
        // rows do not depend on the call's other rows (CUDA: the two halves take the 64 x 64 kernel): bit-identical
        const h = 550;
        const y0 = q.linearApply(x.subarray(0, h * p), w, h, p, qq);
        const y1 = q.linearApply(x.subarray(h * p), w, n - h, p, qq);
        expectExact(y.subarray(0, h * qq), y0, 'linear rows 0..549 alone vs in the whole call');
        expectExact(y.subarray(h * qq), y1, 'linear rows 550.. alone vs in the whole call');
      }
    }
    expectThrows(() => q.linearApply(rng.f32(10), rng.f32(4 * 2), 3, 3, 2), InvalidArgumentError, 'x too short', /n\*p/);
    expectThrows(() => q.linearApply(rng.f32(9), rng.f32(3 * 2), 3, 3, 2), InvalidArgumentError, 'w too short', /\(p\+1\)\*q/);
    expectThrows(() => q.linearApply(rng.f32(9), rng.f32(4 * 2), 3, 3, 0), OutOfRangeError, 'q = 0');
  });
});

seededTest(S, NAME, 'byte accounting equals the packed sizes', async (rng) => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const [d, n, C, g] of [
      [2, 16, 1024, 1024],
      [2, 256, 512, 512],
      [4, 256, 384, 128],
      [1, 8, 1024, 1024],
    ] as const) {
      const grid = gaussianGrid(d, n);
      const cfg: HiggsConfig = { channels: C, group: g, grid };
      for (const nTok of [1, 3, 128]) {
        const sz = q.higgsSize(cfg, nTok);
        const enc = q.higgsEncode(cfg, rng.f32(nTok * C));
        const actual = enc.codes.byteLength + enc.scales.byteLength;
        if (sz.bytes !== actual) throw new Error(`higgs ${grid.name} nTok=${nTok}: size ${sz.bytes} != packed ${actual}`);
        const bits = Math.log2(n);
        const expect = 4 * Math.ceil((nTok * (C / d) * bits) / 32) + 2 * nTok * (C / g);
        if (sz.bytes !== expect) throw new Error(`higgs ${grid.name} nTok=${nTok}: size ${sz.bytes} != formula ${expect}`);
      }
      const s128 = q.higgsSize(cfg, 128);
      const bpv = Math.log2(n) / d + 16 / g;
      if (Math.abs(s128.bitsPerValue - bpv) > 1e-12) throw new Error(`bits/value ${s128.bitsPerValue} != ${bpv}`);
    }
    for (const cfg of [
      { channels: 256, bits: 2, axis: 'token', group: 32 },
      { channels: 256, bits: 3, axis: 'channel', group: 32 },
      { channels: 100, bits: 4, axis: 'channel', group: 7 },
    ] as UniformConfig[]) {
      for (const nTok of [1, 13, 64]) {
        const sz = q.uniformSize(cfg, nTok);
        const enc = q.uniformEncode(cfg, rng.f32(nTok * cfg.channels));
        const actual = enc.codes.byteLength + enc.scales.byteLength + enc.zeros.byteLength;
        if (sz.bytes !== actual) throw new Error(`uniform ${JSON.stringify(cfg)} nTok=${nTok}: size ${sz.bytes} != packed ${actual}`);
      }
    }
  });
});

seededTest(S, NAME, 'native vs WASM (and SIMD vs scalar): identical codes and scales, identical decode', async (rng) => {
  const pair = await backendPairs('native', 'wasm');
  const quantPair = pair && pair.every((b) => b.backend.quant) ? pair : null;
  const grids = [gaussianGrid(1, 8), gaussianGrid(2, 64), gaussianGrid(4, 256), gaussianGrid(8, 256)];
  const x = rng.f32(16 * 1024);
  const results = new Map<string, { codes: Uint32Array; scales: Uint16Array; y: Float32Array }[]>();
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    for (const grid of grids) {
      const cfg: HiggsConfig = { channels: 1024, grid, signs: true, seed: 11 };
      const enc = q.higgsEncode(cfg, x);
      const y = q.higgsDecode(cfg, enc);
      const key = grid.name!;
      if (!results.has(key)) results.set(key, []);
      results.get(key)!.push({ codes: enc.codes, scales: enc.scales, y });
    }
    const ucfg: UniformConfig = { channels: 1024, bits: 3, axis: 'channel', group: 16 };
    const u = q.uniformEncode(ucfg, x);
    if (!results.has('uniform')) results.set('uniform', []);
    results.get('uniform')!.push({ codes: u.codes, scales: u.scales, y: q.uniformDecode(ucfg, u) });
  });
  for (const [k, rs] of results) {
    for (let i = 1; i < rs.length; i++) {
      expectExact(rs[i]!.codes, rs[0]!.codes, `${k}: codes of variant ${i} vs 0`);
      expectExact(rs[i]!.scales, rs[0]!.scales, `${k}: scales of variant ${i} vs 0`);
      expectExact(rs[i]!.y, rs[0]!.y, `${k}: decode of variant ${i} vs 0`);
    }
  }
  if (!quantPair) {
    if (pair) skipLine('native-vs-wasm quantizers', 'one of the builds has no hwkv_quant_api');
    return;
  }
  // signs agree with the documented formula on both
  for (const b of quantPair) expectExact(ops(b.backend).higgsSigns(123456789, 300), refSigns(123456789, 300), `${b.name} signs`);
});

seededTest(S, NAME, 'bad inputs -> typed errors', async () => {
  await forEachQuantVariant((v) => {
    const q = ops(v.backend);
    const grid = gaussianGrid(2, 16);
    const x = new Float32Array(2 * 512);
    // bits 17 (n = 2^17 points)
    expectThrows(() => q.higgsEncode({ channels: 512, grid: { dim: 1, points: new Float32Array(1 << 17) } }, x), OutOfRangeError, 'n = 2^17', /n_points/);
    // n not a power of two
    expectThrows(() => q.higgsEncode({ channels: 512, grid: { dim: 2, points: new Float32Array(2 * 24) } }, x), InvalidArgumentError, 'n = 24', /power of two/);
    // C not a multiple of g
    expectThrows(() => q.higgsEncode({ channels: 512, group: 384, grid }, x), InvalidArgumentError, 'g = 384', /power of two/);
    expectThrows(() => q.higgsEncode({ channels: 640, group: 256, grid }, new Float32Array(640)), InvalidArgumentError, 'C % g', /multiple of group/);
    // wrong lengths
    expectThrows(() => q.higgsEncode({ channels: 512, grid }, new Float32Array(700)), InvalidArgumentError, 'x length', /multiple of channels/);
    expectThrows(() => q.higgsEncode({ channels: 512, grid }, x, 3), InvalidArgumentError, 'x vs nTok', /nTok\*channels/);
    const enc = q.higgsEncode({ channels: 512, grid }, x);
    expectThrows(() => q.higgsDecode({ channels: 512, grid }, { ...enc, codes: enc.codes.subarray(1) }), InvalidArgumentError, 'short codes', /words/);
    expectThrows(() => q.higgsDecode({ channels: 512, grid }, enc, new Float32Array(10)), InvalidArgumentError, 'short out', /out/);
    expectThrows(() => q.higgsEncode({ channels: 512, grid: { dim: 3 as 2, points: new Float32Array(48) } }, x), InvalidArgumentError, 'dim 3', /dim/);
    expectThrows(() => q.higgsEncode({ channels: 512, grid }, new Float32Array(512).fill(NaN)), OutOfRangeError, 'NaN input', /finite/);
    expectThrows(() => q.higgsEncode({ channels: 512, grid }, new Float32Array(512).fill(5000)), OutOfRangeError, 'norm > fp16', /fp16/);
    expectThrows(() => q.higgsEncode({ channels: 512, grid, seed: -1 }, x), OutOfRangeError, 'seed', /seed/);
    // uniform
    expectThrows(() => q.uniformEncode({ channels: 512, bits: 17, axis: 'token', group: 32 }, x), OutOfRangeError, 'bits 17', /bits/);
    expectThrows(() => q.uniformEncode({ channels: 512, bits: 0, axis: 'token', group: 32 }, x), OutOfRangeError, 'bits 0', /bits/);
    expectThrows(() => q.uniformEncode({ channels: 512, bits: 4, axis: 'token', group: 100 }, x), InvalidArgumentError, 'group 100', /multiple of group/);
    expectThrows(() => q.uniformEncode({ channels: 512, bits: 4, axis: 'rows' as 'token', group: 32 }, x), InvalidArgumentError, 'axis', /axis/);
    expectThrows(() => q.uniformEncode({ channels: 512, bits: 4, axis: 'token', group: 32 }, new Float32Array(512).fill(1e6)), OutOfRangeError, 'fp16 range', /fp16/);
    // ridge
    const acc = q.ridgeCreate(4, 2);
    expectThrows(() => q.ridgeAccumulate(acc, new Float32Array(13), new Float32Array(6)), InvalidArgumentError, 'ridge x length', /n\*p/);
    expectThrows(() => q.ridgeSolve(acc, -1), InvalidArgumentError, 'lambda < 0', /lambdaRel/);
    expectThrows(() => q.ridgeCreate(70000, 2), OutOfRangeError, 'p too large', /p/);
  });
});

seededTest(S, NAME, 'stored grids: sha256 matches the data, MSE as recorded', async () => {
  const { createHash } = await import('node:crypto');
  const { GRID_DATA } = await import('../ts/aqua/grids-data.ts');
  const infos = listGrids();
  if (infos.length < 8) throw new Error(`expected at least 8 stored grids, got ${infos.length}`);
  for (const g of infos) {
    const sha = createHash('sha256').update(Buffer.from(GRID_DATA[g.name]!.b64, 'base64')).digest('hex');
    if (sha !== g.sha256) throw new Error(`${g.name}: sha256 ${sha} != recorded ${g.sha256}`);
    const pts = gaussianGrid(g.dim, g.n).points;
    if (pts.length !== g.n * g.dim) throw new Error(`${g.name}: ${pts.length} values`);
  }
  if (!infos.some((g) => g.dim === 8)) skipLine('grids d=8', 'no d=8 grid stored');
});

S.after(() => printWorstErrors(NAME));
S.run();
