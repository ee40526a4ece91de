/**
 * Bit budgets of the HIGGS / AQUA-KV caches: which stored grid a target of "b bits per value" means once the
 * fp16 scale per (token, group) is counted.
 *
 *   bits per value = log2(n) / d  (codes)  +  16 / g  (one fp16 norm per group of g channels)
 *
 * With g = min(1024, C) this overhead is 0.016 bits for C = 1024 but 0.5 bits for stories260K (C = 32), so a
 * "2-bit" grid (d=2, n=16) really costs 2.5 bits there. aquaGridFor picks, among the stored grids, the one
 * with the most code bits whose total stays within bits + 0.1 (ties: the lowest Gaussian MSE).
 */
import { InvalidArgumentError } from '../errors.js';
import { gridByName, listGrids } from './grids.js';
import { defaultGroup } from './quantizer.js';
import type { HiggsGrid } from './types.js';

/** Total bits per value of a HIGGS grid over C channels (codes + fp16 scales). */
export function higgsBitsPerValue(grid: { dim: number; n: number } | HiggsGrid, channels: number): number {
  const n = 'points' in grid ? grid.points.length / grid.dim : grid.n;
  return Math.log2(n) / grid.dim + 16 / defaultGroup(channels);
}

/** The stored grid for a target of `bits` bits per value (scales included) over C channels. */
export function aquaGridFor(bits: number, channels: number): HiggsGrid & { name: string } {
  if (!(typeof bits === 'number' && bits > 0 && bits <= 16)) throw new InvalidArgumentError(`bits must be a number in (0, 16], got ${String(bits)}`);
  const over = 16 / defaultGroup(channels);
  let best: { name: string; code: number; mse: number } | null = null;
  for (const g of listGrids()) {
    if (g.dim === 1) continue; // scalar grids: what 'uniform' already covers
    const code = g.bitsPerValue;
    if (code + over > bits + 0.1 + 1e-9) continue;
    if (!best || code > best.code + 1e-9 || (Math.abs(code - best.code) < 1e-9 && g.mse < best.mse)) best = { name: g.name, code, mse: g.mse };
  }
  if (!best) {
    throw new InvalidArgumentError(`no stored grid fits ${bits} bits per value with C = ${channels} (fp16 scales alone cost ${over.toFixed(3)} bits)`);
  }
  return gridByName(best.name) as HiggsGrid & { name: string };
}
