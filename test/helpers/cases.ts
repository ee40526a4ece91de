/**
 * Random test-case generators shared by the op tests: RoPE parameter sets (every style and scaling scheme,
 * head_dim 8/64/80 with partial rotary 32/128) and float inputs.
 */
import type { RopeParams, RopeScaling } from '../../ts/backend/types.ts';
import type { Rng } from './rng.ts';

/** (headDim, rotaryDim) shapes the op tests cover. */
export const HEAD_SHAPES: ReadonlyArray<{ headDim: number; rotaryDim: number }> = [
  { headDim: 8, rotaryDim: 8 },
  { headDim: 64, rotaryDim: 64 },
  { headDim: 80, rotaryDim: 32 },
  { headDim: 128, rotaryDim: 128 },
];

export const STYLES = ['neox', 'normal'] as const;
export const SCALINGS = ['none', 'linear', 'llama3', 'yarn'] as const;

export function randomScaling(rng: Rng, type: (typeof SCALINGS)[number]): RopeScaling {
  switch (type) {
    case 'none':
      return { type: 'none' };
    case 'linear':
      return { type: 'linear', factor: rng.pick([2, 4, 8]) * (0.5 + rng.next()) };
    case 'llama3':
      // small originalMaxPosition puts many frequencies in the smoothed middle band
      return {
        type: 'llama3',
        factor: rng.pick([8, 16, 32]),
        lowFreqFactor: rng.pick([1, 1.5]),
        highFreqFactor: rng.pick([4, 3.5]),
        originalMaxPosition: rng.pick([64, 512, 8192]),
      };
    case 'yarn':
      return {
        type: 'yarn',
        factor: rng.pick([4, 8, 40]) * (0.75 + 0.5 * rng.next()),
        originalMaxPosition: rng.pick([256, 4096, 32768]),
        betaFast: rng.pick([32, 16]),
        betaSlow: rng.pick([1, 2]),
        truncate: rng.bool(),
      };
  }
}

export function ropeParams(rng: Rng, shape: { headDim: number; rotaryDim: number }, style: 'neox' | 'normal', scaling: (typeof SCALINGS)[number]): RopeParams {
  return {
    headDim: shape.headDim,
    rotaryDim: shape.rotaryDim,
    style,
    theta: rng.pick([10000, 500000, 1000000]),
    scaling: randomScaling(rng, scaling),
  };
}

/** Every (head shape, style, scaling) combination with fresh random parameters. */
export function allRopeParams(rng: Rng): RopeParams[] {
  const out: RopeParams[] = [];
  for (const shape of HEAD_SHAPES) for (const style of STYLES) for (const sc of SCALINGS) out.push(ropeParams(rng, shape, style, sc));
  return out;
}

export function describeRope(p: RopeParams): string {
  return JSON.stringify(p);
}

/** Random positions: small, negative, around powers of two, and a few large ones. */
export function randomPositions(rng: Rng, n: number, maxAbs = 70000): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const kind = rng.int(0, 3);
    if (kind === 0) out[i] = rng.int(-16, 64);
    else if (kind === 1) out[i] = rng.int(-4096, 4096);
    else if (kind === 2) out[i] = rng.pick([1, -1]) * (2 ** rng.int(0, 15) + rng.int(-1, 1));
    else out[i] = rng.int(-maxAbs, maxAbs);
  }
  return out;
}
