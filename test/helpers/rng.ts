/**
 * Seeded random numbers for tests. One seed per run: HOGWILD_TEST_SEED if set (to replay a failure),
 * otherwise fresh. Each test derives its own stream from (seed, test name), so a test replays identically
 * whatever else ran before it.
 */
import { Sfc32 } from '../../ts/util/random.ts';

let cachedSeed: number | undefined;

export function runSeed(): number {
  if (cachedSeed === undefined) {
    const env = process.env.HOGWILD_TEST_SEED;
    if (env !== undefined && env !== '') {
      const n = Number(env);
      if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`HOGWILD_TEST_SEED must be an integer in 0..4294967295, got '${env}'`);
      cachedSeed = n;
    } else {
      cachedSeed = (Math.random() * 0x100000000) >>> 0;
      process.env.HOGWILD_TEST_SEED = String(cachedSeed); // child processes and later reads see the same seed
    }
  }
  return cachedSeed;
}

/** FNV-1a over the label, mixed with the run seed. */
function mixSeed(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Test inputs: sfc32 (ts/util/random.ts) plus the draws tests use. */
export class Rng extends Sfc32 {
  constructor(seed: number) {
    super(seed, 15);
  }

  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  pick<T>(xs: ReadonlyArray<T>): T {
    return xs[this.int(0, xs.length - 1)]!;
  }

  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }

  /** n standard-normal float32 values times `scale`. */
  f32(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * scale;
    return out;
  }

  /** n integer codes uniform in [0, 2^bits). */
  codes(n: number, bits: number): Uint16Array {
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() % 2 ** bits;
    return out;
  }
}

/** The stream for one test: seeded from (run seed, label). */
export function rngFor(label: string): Rng {
  return new Rng(mixSeed(runSeed(), label));
}

export function replayHint(): string {
  return `seed ${runSeed()} (replay: HOGWILD_TEST_SEED=${runSeed()} node test/run.mjs)`;
}
