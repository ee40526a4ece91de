/**
 * Float64 reference for rotary position embeddings (RoPE), written from the formulas of the Hugging Face
 * transformers rope initialisation functions (default, linear, llama3, yarn) and the two pairing styles.
 * Deliberately plain: one loop per formula, no caching, everything in double precision.
 */
import type { RopeParams } from '../../ts/backend/types.ts';

export function rotaryDimOf(p: RopeParams): number {
  return p.rotaryDim ?? p.headDim;
}

/** base^(-2i/dim) for i < dim/2: the unscaled frequencies (radians per token). */
function plainInvFreq(base: number, dim: number): Float64Array {
  const half = dim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = 1 / Math.pow(base, (2 * i) / dim);
  return out;
}

/** YaRN: the (fractional) dimension index at which a frequency completes `numRotations` turns over maxPos tokens. */
export function yarnCorrectionDim(numRotations: number, dim: number, base: number, maxPos: number): number {
  return (dim * Math.log(maxPos / (numRotations * 2 * Math.PI))) / (2 * Math.log(base));
}

/** YaRN: the [low, high] dimension range over which the interpolation ramp runs. */
export function yarnCorrectionRange(betaFast: number, betaSlow: number, dim: number, base: number, maxPos: number, truncate: boolean): [number, number] {
  let low = yarnCorrectionDim(betaFast, dim, base, maxPos);
  let high = yarnCorrectionDim(betaSlow, dim, base, maxPos);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  return [Math.max(low, 0), Math.min(high, dim - 1)];
}

/** YaRN: clamp((i - min) / (max - min), 0, 1) for i < n; min == max is widened by 0.001 like transformers. */
export function yarnLinearRamp(min: number, max: number, n: number): Float64Array {
  if (min === max) max += 0.001;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1, Math.max(0, (i - min) / (max - min)));
  return out;
}

/** YaRN attention factor (mscale) without DeepSeek's mscale/mscale_all_dim: 0.1 ln(factor) + 1, 1 for factor <= 1. */
export function yarnAttentionFactor(factor: number): number {
  return factor <= 1 ? 1 : 0.1 * Math.log(factor) + 1;
}

/** inv_freq[rotaryDim/2] after the scaling scheme, and the attention factor (1 except YaRN). */
export function refInvFreq(p: RopeParams): { invFreq: Float64Array; attentionFactor: number } {
  const dim = rotaryDimOf(p);
  const base = p.theta;
  const s = p.scaling ?? { type: 'none' };
  const inv = plainInvFreq(base, dim);
  switch (s.type) {
    case 'none':
      return { invFreq: inv, attentionFactor: 1 };
    case 'linear': {
      for (let i = 0; i < inv.length; i++) inv[i] = inv[i]! / s.factor;
      return { invFreq: inv, attentionFactor: 1 };
    }
    case 'llama3': {
      const lowFreqWavelen = s.originalMaxPosition / s.lowFreqFactor;
      const highFreqWavelen = s.originalMaxPosition / s.highFreqFactor;
      const out = new Float64Array(inv.length);
      for (let i = 0; i < inv.length; i++) {
        const f = inv[i]!;
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highFreqWavelen) {
          out[i] = f; // high frequency: kept
        } else if (wavelen > lowFreqWavelen) {
          out[i] = f / s.factor; // low frequency: interpolated
        } else {
          // medium: smooth blend between the two
          const smooth = (s.originalMaxPosition / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
          out[i] = (1 - smooth) * (f / s.factor) + smooth * f;
        }
      }
      return { invFreq: out, attentionFactor: 1 };
    }
    case 'yarn': {
      const betaFast = s.betaFast ?? 32;
      const betaSlow = s.betaSlow ?? 1;
      const truncate = s.truncate ?? true;
      const [low, high] = yarnCorrectionRange(betaFast, betaSlow, dim, base, s.originalMaxPosition, truncate);
      const ramp = yarnLinearRamp(low, high, dim / 2);
      const out = new Float64Array(inv.length);
      for (let i = 0; i < inv.length; i++) {
        const posFreq = Math.pow(base, (2 * i) / dim);
        const extrapolation = 1 / posFreq;
        const interpolation = 1 / (s.factor * posFreq);
        const extrapolationFactor = 1 - ramp[i]!;
        out[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
      }
      return { invFreq: out, attentionFactor: yarnAttentionFactor(s.factor) };
    }
  }
}

/** The two dimensions rotated together by frequency i. */
export function ropePair(p: RopeParams, i: number): [number, number] {
  const rd = rotaryDimOf(p);
  return p.style === 'neox' ? [i, i + rd / 2] : [2 * i, 2 * i + 1];
}

/**
 * x[nTok, nHead, headDim] rotated at positions[t]; returns a new Float64Array (input untouched).
 * Pure rotation: the YaRN attention factor is not applied.
 */
export function refRopeApply(p: RopeParams, x: ArrayLike<number>, nTok: number, nHead: number, positions: ArrayLike<number>): Float64Array {
  const hd = p.headDim;
  const half = rotaryDimOf(p) / 2;
  const { invFreq } = refInvFreq(p);
  const out = Float64Array.from(x as ArrayLike<number>);
  for (let t = 0; t < nTok; t++) {
    for (let h = 0; h < nHead; h++) {
      const base = (t * nHead + h) * hd;
      for (let i = 0; i < half; i++) {
        const angle = positions[t]! * invFreq[i]!;
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        const [a, b] = ropePair(p, i);
        const xa = out[base + a]!;
        const xb = out[base + b]!;
        out[base + a] = xa * c - xb * s;
        out[base + b] = xb * c + xa * s;
      }
    }
  }
  return out;
}

/** Rotate every token of x[nTok, nHead, headDim] by the same position delta. */
export function refRotateAll(p: RopeParams, x: ArrayLike<number>, nTok: number, nHead: number, delta: number): Float64Array {
  return refRopeApply(p, x, nTok, nHead, new Array<number>(nTok).fill(delta));
}
