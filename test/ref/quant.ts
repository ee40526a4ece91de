/**
 * Float64 references for the AQUA-KV quantizers and the ridge solve (core/include/hwkv_quant.h), written
 * from the math, deliberately plain: butterflies in double, nearest point by explicit squared distances,
 * normal equations by explicit sums and a Gauss–Jordan solve with partial pivoting.
 *
 * Where the core's definition rounds on purpose (fp16 scales and zeros, float32 norm before fp16), the
 * reference rounds the same way (Math.fround and refHalf), so codes can be compared exactly.
 */

// ---- fp16 --------------------------------------------------------------------------------------------

/** Round a number to the nearest IEEE binary16 value (ties to even); ±Infinity beyond 65504 (+ half ulp). */
export function refHalf(v: number): number {
  if (!Number.isFinite(v)) return v;
  const a = Math.abs(v);
  if (a === 0) return v;
  let step: number;
  if (a < 2 ** -14) step = 2 ** -24;
  else {
    let e = Math.floor(Math.log2(a));
    if (2 ** e > a) e--;
    if (2 ** (e + 1) <= a) e++;
    step = 2 ** (e - 10);
  }
  const q = a / step;
  let r = Math.round(q);
  if (Math.abs(q - Math.trunc(q) - 0.5) === 0) r = Math.trunc(q) % 2 === 0 ? Math.trunc(q) : Math.trunc(q) + 1;
  const out = r * step;
  if (out >= 65520) return v < 0 ? -Infinity : Infinity;
  return v < 0 ? -out : out;
}

/** binary16 bit pattern -> value */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// ---- signs -------------------------------------------------------------------------------------------

const M64 = (1n << 64n) - 1n;

/** s_c = ±1 from splitmix64 of (seed·2^32 + c + 1)·golden, as documented in hwkv_quant.h. */
export function refSigns(seed: number, channels: number): Float64Array {
  const out = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    let z = (((BigInt(seed) << 32n) + BigInt(c) + 1n) * 0x9e3779b97f4a7c15n) & M64;
    z ^= z >> 30n;
    z = (z * 0xbf58476d1ce4e5b9n) & M64;
    z ^= z >> 27n;
    z = (z * 0x94d049bb133111ebn) & M64;
    z ^= z >> 31n;
    out[c] = z >> 63n ? -1 : 1;
  }
  return out;
}

// ---- Hadamard (unnormalised Sylvester) in double -------------------------------------------------------

export function refWht(x: Float64Array): void {
  const n = x.length;
  for (let h = 1; h < n; h *= 2) {
    for (let i = 0; i < n; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const u = x[j]!;
        const v = x[j + h]!;
        x[j] = u + v;
        x[j + h] = u - v;
      }
    }
  }
}

// ---- nearest grid point --------------------------------------------------------------------------------

/** Index of the grid point nearest to z (squared distance in double; ties -> lowest index) and the two best distances. */
export function refNearest(grid: ArrayLike<number>, dim: number, z: ArrayLike<number>, zOff = 0): { idx: number; best: number; second: number } {
  const n = grid.length / dim;
  let best = Infinity;
  let second = Infinity;
  let idx = 0;
  for (let i = 0; i < n; i++) {
    let d = 0;
    for (let k = 0; k < dim; k++) {
      const e = z[zOff + k]! - grid[i * dim + k]!;
      d += e * e;
    }
    if (d < best) {
      second = best;
      best = d;
      idx = i;
    } else if (d < second) second = d;
  }
  return { idx, best, second };
}

// ---- HIGGS ------------------------------------------------------------------------------------------

export interface RefHiggsCfg {
  channels: number;
  group: number;
  dim: number;
  grid: ArrayLike<number>;
  signs: boolean;
  seed: number;
}

export interface RefHiggsOut {
  /** one code per piece, [nTok, C/d] */
  codes: Uint32Array;
  /** scale values (fp16-rounded) [nTok, C/g] */
  scales: Float64Array;
  /** margin of each piece's choice: second-best minus best squared distance (small = near tie) */
  margin: Float64Array;
  /** the rotated, normalised coordinates z [nTok, C] */
  z: Float64Array;
}

export function refHiggsEncode(cfg: RefHiggsCfg, x: ArrayLike<number>, nTok: number): RefHiggsOut {
  const { channels: C, group: g, dim: d, grid } = cfg;
  const s = cfg.signs ? refSigns(cfg.seed, C) : new Float64Array(C).fill(1);
  const codes = new Uint32Array((nTok * C) / d);
  const margin = new Float64Array((nTok * C) / d);
  const scales = new Float64Array((nTok * C) / g);
  const z = new Float64Array(nTok * C);
  const buf = new Float64Array(g);
  for (let t = 0; t < nTok; t++) {
    for (let j = 0; j < C / g; j++) {
      const off = t * C + j * g;
      let ss = 0;
      for (let c = 0; c < g; c++) ss += x[off + c]! * x[off + c]!;
      const S = refHalf(Math.fround(Math.sqrt(ss)));
      scales[t * (C / g) + j] = S;
      if (S === 0) {
        margin.fill(Infinity, off / d, (off + g) / d);
        continue;
      }
      for (let c = 0; c < g; c++) buf[c] = s[j * g + c]! * x[off + c]!;
      refWht(buf);
      for (let c = 0; c < g; c++) z[off + c] = buf[c]! / S;
      for (let k = 0; k < g / d; k++) {
        const r = refNearest(grid, d, z, off + k * d);
        codes[off / d + k] = r.idx;
        margin[off / d + k] = r.second - r.best;
      }
    }
  }
  return { codes, scales, margin, z };
}

/** x̂ [nTok, C] from codes and scale values. */
export function refHiggsDecode(cfg: RefHiggsCfg, codes: ArrayLike<number>, scales: ArrayLike<number>, nTok: number): Float64Array {
  const { channels: C, group: g, dim: d, grid } = cfg;
  const s = cfg.signs ? refSigns(cfg.seed, C) : new Float64Array(C).fill(1);
  const out = new Float64Array(nTok * C);
  const buf = new Float64Array(g);
  for (let t = 0; t < nTok; t++) {
    for (let j = 0; j < C / g; j++) {
      const off = t * C + j * g;
      const S = scales[t * (C / g) + j]!;
      if (S === 0) continue;
      for (let k = 0; k < g / d; k++) for (let e = 0; e < d; e++) buf[k * d + e] = grid[codes[off / d + k]! * d + e]!;
      refWht(buf);
      for (let c = 0; c < g; c++) out[off + c] = (s[j * g + c]! * buf[c]! * S) / g;
    }
  }
  return out;
}

// ---- Uniform -------------------------------------------------------------------------------------------

export interface RefUniformCfg {
  channels: number;
  bits: number;
  axis: 'token' | 'channel';
  group: number;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const r = v - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Group index of element (t, c). */
export function refUniformGroup(cfg: RefUniformCfg, t: number, c: number): number {
  return cfg.axis === 'token' ? t * (cfg.channels / cfg.group) + Math.floor(c / cfg.group) : Math.floor(t / cfg.group) * cfg.channels + c;
}

/** Codes [nTok, C], scale and zero values per group, and the reconstruction, following the documented float32 steps. */
export function refUniform(cfg: RefUniformCfg, x: ArrayLike<number>, nTok: number): { codes: Uint32Array; scales: Float64Array; zeros: Float64Array; y: Float64Array } {
  const C = cfg.channels;
  const L = 2 ** cfg.bits - 1;
  const nGroups = cfg.axis === 'token' ? nTok * (C / cfg.group) : Math.ceil(nTok / cfg.group) * C;
  const lo = new Float64Array(nGroups).fill(Infinity);
  const hi = new Float64Array(nGroups).fill(-Infinity);
  for (let t = 0; t < nTok; t++)
    for (let c = 0; c < C; c++) {
      const gi = refUniformGroup(cfg, t, c);
      lo[gi] = Math.min(lo[gi]!, x[t * C + c]!);
      hi[gi] = Math.max(hi[gi]!, x[t * C + c]!);
    }
  const scales = new Float64Array(nGroups);
  const zeros = new Float64Array(nGroups);
  for (let i = 0; i < nGroups; i++) {
    zeros[i] = refHalf(lo[i]!);
    scales[i] = refHalf(Math.fround(Math.fround(hi[i]! - lo[i]!) / L));
  }
  const codes = new Uint32Array(nTok * C);
  const y = new Float64Array(nTok * C);
  for (let t = 0; t < nTok; t++)
    for (let c = 0; c < C; c++) {
      const gi = refUniformGroup(cfg, t, c);
      const D = scales[gi]!;
      const Z = zeros[gi]!;
      let code = 0;
      if (D > 0) code = Math.min(Math.max(roundHalfEven(Math.fround(Math.fround(x[t * C + c]! - Z) / D)), 0), L);
      codes[t * C + c] = code;
      y[t * C + c] = code * D + Z;
    }
  return { codes, scales, zeros, y };
}

// ---- Ridge -------------------------------------------------------------------------------------------

/** Solve A W = B (A [n, n], B [n, q]) by Gauss–Jordan elimination with partial pivoting, in double. */
export function refSolve(A: Float64Array, B: Float64Array, n: number, q: number): Float64Array {
  const a = Float64Array.from(A);
  const b = Float64Array.from(B);
  for (let k = 0; k < n; k++) {
    let piv = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]!) > Math.abs(a[piv * n + k]!)) piv = i;
    if (piv !== k) {
      for (let j = 0; j < n; j++) [a[k * n + j], a[piv * n + j]] = [a[piv * n + j]!, a[k * n + j]!];
      for (let j = 0; j < q; j++) [b[k * q + j], b[piv * q + j]] = [b[piv * q + j]!, b[k * q + j]!];
    }
    const d = a[k * n + k]!;
    for (let i = 0; i < n; i++) {
      if (i === k) continue;
      const f = a[i * n + k]! / d;
      if (f === 0) continue;
      for (let j = k; j < n; j++) a[i * n + j]! -= f * a[k * n + j]!;
      for (let j = 0; j < q; j++) b[i * q + j]! -= f * b[k * q + j]!;
    }
  }
  for (let k = 0; k < n; k++) for (let j = 0; j < q; j++) b[k * q + j]! /= a[k * n + k]!;
  return b;
}

/** Ridge with an intercept: W [(p+1), q] = ([X,1]ᵀ[X,1] + λ·mean(diag)·I)⁻¹ [X,1]ᵀY, everything in double. */
/** y[n, q] = [x, 1] · W for W [(p+1), q] (last row the bias), in float64. */
export function refLinear(x: ArrayLike<number>, w: ArrayLike<number>, n: number, p: number, q: number): Float64Array {
  const y = new Float64Array(n * q);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < q; j++) {
      let s = w[p * q + j]!;
      for (let i = 0; i < p; i++) s += x[r * p + i]! * w[i * q + j]!;
      y[r * q + j] = s;
    }
  return y;
}

export function refRidge(x: ArrayLike<number>, y: ArrayLike<number>, n: number, p: number, q: number, lambdaRel: number): Float64Array {
  const p1 = p + 1;
  const A = new Float64Array(p1 * p1);
  const B = new Float64Array(p1 * q);
  const row = new Float64Array(p1);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < p; i++) row[i] = x[r * p + i]!;
    row[p] = 1;
    for (let i = 0; i < p1; i++) {
      const xi = row[i]!;
      for (let j = 0; j < p1; j++) A[i * p1 + j]! += xi * row[j]!;
      for (let k = 0; k < q; k++) B[i * q + k]! += xi * y[r * q + k]!;
    }
  }
  let mean = 0;
  for (let i = 0; i < p1; i++) mean += A[i * p1 + i]!;
  mean /= p1;
  for (let i = 0; i < p1; i++) A[i * p1 + i]! += lambdaRel * mean;
  return refSolve(A, B, p1, q);
}
