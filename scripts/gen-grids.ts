/**
 * gen-grids.ts — regenerate the Gaussian vector-quantization grids of ts/aqua/grids-data.ts
 * (`npm run gen:grids`).
 *
 * Lloyd's algorithm (k-means on samples; the batch form of CLVQ) on standard-Gaussian samples, from a
 * deterministic seed, with a few restarts per grid; the restart with the lowest distortion on a separate
 * validation sample wins. The nearest-point step runs in the core (backend.quant.gridNearest: the same
 * search the HIGGS quantizer uses), the centroid step here in double precision.
 *
 *   node --import tsx scripts/gen-grids.ts [--only gauss-d2-n16,...] [--out ts/aqua/grids-data.ts]
 *
 * Output: ts/aqua/grids-data.ts with every grid as base64 float32 [n, d] (points sorted lexicographically),
 * its sha256 (of the float32 little-endian bytes) and the validation MSE per coordinate.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createBackend } from '../ts/index.js';
import { quantOf } from '../ts/aqua/quantizer.js';
import { Sfc32 } from '../ts/util/random.js';

interface Spec {
  dim: 1 | 2 | 4 | 8;
  n: number;
  samples: number;
  iters: number;
  restarts: number;
}

const SPECS: Spec[] = [
  { dim: 1, n: 4, samples: 400_000, iters: 300, restarts: 1 },
  { dim: 1, n: 8, samples: 400_000, iters: 300, restarts: 1 },
  { dim: 1, n: 16, samples: 400_000, iters: 400, restarts: 1 },
  { dim: 2, n: 16, samples: 500_000, iters: 200, restarts: 4 },
  { dim: 2, n: 64, samples: 800_000, iters: 250, restarts: 3 },
  { dim: 2, n: 256, samples: 1_000_000, iters: 300, restarts: 2 },
  { dim: 4, n: 256, samples: 1_000_000, iters: 250, restarts: 2 },
  { dim: 8, n: 256, samples: 1_000_000, iters: 150, restarts: 1 },
  { dim: 8, n: 4096, samples: 1_000_000, iters: 40, restarts: 1 },
];

const SEED = 20250131;
const VALID_SAMPLES = 1_000_000;

/** sfc32 (20 warm-up words) + Box–Muller: deterministic standard normal samples (the grids depend on this stream). */
class Gauss extends Sfc32 {
  constructor(seed: number) {
    super(seed, 20);
  }
  uniform(): number {
    return this.open();
  }
  fill(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}

function distortion(ops: ReturnType<typeof quantOf>, dim: 1 | 2 | 4 | 8, pts: Float32Array, x: Float32Array): number {
  const idx = ops.gridNearest({ dim, points: pts }, x);
  let s = 0;
  for (let i = 0; i < idx.length; i++) {
    const c = idx[i]! * dim;
    for (let k = 0; k < dim; k++) {
      const e = x[i * dim + k]! - pts[c + k]!;
      s += e * e;
    }
  }
  return s / x.length;
}

function lloyd(ops: ReturnType<typeof quantOf>, spec: Spec, rng: Gauss, log: (s: string) => void): Float32Array {
  const { dim, n, samples, iters } = spec;
  const x = rng.fill(samples * dim);
  const pts = new Float32Array(n * dim);
  // init: n random samples
  for (let i = 0; i < n; i++) {
    const j = Math.floor(rng.uniform() * samples);
    for (let k = 0; k < dim; k++) pts[i * dim + k] = x[j * dim + k]!;
  }
  const sum = new Float64Array(n * dim);
  const cnt = new Float64Array(n);
  let prev = Infinity;
  for (let it = 0; it < iters; it++) {
    const idx = ops.gridNearest({ dim, points: pts }, x);
    sum.fill(0);
    cnt.fill(0);
    let mse = 0;
    for (let i = 0; i < samples; i++) {
      const c = idx[i]!;
      cnt[c]!++;
      for (let k = 0; k < dim; k++) {
        const v = x[i * dim + k]!;
        sum[c * dim + k]! += v;
        const e = v - pts[c * dim + k]!;
        mse += e * e;
      }
    }
    mse /= samples * dim;
    for (let c = 0; c < n; c++) {
      if (cnt[c] === 0) {
        const j = Math.floor(rng.uniform() * samples);
        for (let k = 0; k < dim; k++) pts[c * dim + k] = x[j * dim + k]!;
      } else {
        for (let k = 0; k < dim; k++) pts[c * dim + k] = sum[c * dim + k]! / cnt[c]!;
      }
    }
    if (it % 25 === 0 || it === iters - 1) log(`  iter ${it}: train mse ${mse.toFixed(6)}`);
    if (prev - mse < 1e-9 * mse && it > 20) {
      log(`  converged at iter ${it}: train mse ${mse.toFixed(6)}`);
      break;
    }
    prev = mse;
  }
  return pts;
}

function sortPoints(pts: Float32Array, dim: number): Float32Array {
  const n = pts.length / dim;
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => {
    for (let k = 0; k < dim; k++) {
      const d = pts[a * dim + k]! - pts[b * dim + k]!;
      if (d !== 0) return d;
    }
    return a - b;
  });
  const out = new Float32Array(pts.length);
  order.forEach((src, dst) => out.set(pts.subarray(src * dim, src * dim + dim), dst * dim));
  return out;
}

function bytesOf(a: Float32Array): Buffer {
  const b = Buffer.alloc(a.length * 4);
  for (let i = 0; i < a.length; i++) b.writeFloatLE(a[i]!, i * 4);
  return b;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const onlyArg = args.indexOf('--only');
  const only = onlyArg >= 0 ? new Set(args[onlyArg + 1]!.split(',')) : null;
  const outArg = args.indexOf('--out');
  const outPath = outArg >= 0 ? args[outArg + 1]! : new URL('../ts/aqua/grids-data.ts', import.meta.url).pathname;
  const backend = await createBackend({ backend: (process.env.HOGWILD_BACKEND as 'native' | 'wasm' | undefined) ?? 'auto' });
  const ops = quantOf(backend);
  const log = (s: string) => process.stderr.write(s + '\n');
  log(`gen-grids: backend ${backend.name}, seed ${SEED}`);

  // Keep grids not regenerated this run (with --only).
  const existing = new Map<string, string>();
  try {
    const text = readFileSync(outPath, 'utf8');
    for (const m of text.matchAll(/^  '([^']+)': (\{.*\}),$/gm)) existing.set(m[1]!, m[2]!);
  } catch {
    /* first run */
  }

  const entries = new Map<string, string>(existing);
  for (const spec of SPECS) {
    const name = `gauss-d${spec.dim}-n${spec.n}`;
    if (only && !only.has(name)) continue;
    const t0 = Date.now();
    const valid = new Gauss(SEED ^ 0x5a5a5a5a ^ (spec.dim * 1000 + spec.n)).fill(VALID_SAMPLES * spec.dim);
    let best: Float32Array | null = null;
    let bestMse = Infinity;
    for (let r = 0; r < spec.restarts; r++) {
      log(`${name}: restart ${r + 1}/${spec.restarts}`);
      const pts = lloyd(ops, spec, new Gauss(SEED + 7919 * r + spec.dim * 100003 + spec.n), log);
      const mse = distortion(ops, spec.dim, pts, valid);
      log(`  validation mse ${mse.toFixed(6)}`);
      if (mse < bestMse) {
        bestMse = mse;
        best = pts;
      }
    }
    const pts = sortPoints(best!, spec.dim);
    const bytes = bytesOf(pts);
    const sha = createHash('sha256').update(bytes).digest('hex');
    entries.set(
      name,
      JSON.stringify({ dim: spec.dim, n: spec.n, mse: Number(bestMse.toPrecision(6)), sha256: sha, b64: bytes.toString('base64') }),
    );
    log(`${name}: mse ${bestMse.toFixed(6)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const order = SPECS.map((s) => `gauss-d${s.dim}-n${s.n}`).filter((k) => entries.has(k));
  const lines = [
    '// Generated by scripts/gen-grids.ts (`npm run gen:grids`): Lloyd/CLVQ grids for a standard Gaussian.',
    '// Do not edit. Each entry: dim, n, validation MSE per coordinate on 10^6 fresh samples, sha256 of the',
    '// float32 little-endian [n, dim] bytes, and those bytes in base64.',
    `// Seed ${SEED}.`,
    '/* eslint-disable */',
    'export const GRID_DATA: Record<string, { dim: 1 | 2 | 4 | 8; n: number; mse: number; sha256: string; b64: string }> = {',
    ...order.map((k) => `  '${k}': ${entries.get(k)},`),
    '};',
    '',
  ];
  writeFileSync(outPath, lines.join('\n'));
  log(`gen-grids: wrote ${outPath}`);
  backend.dispose();
}

await main();
