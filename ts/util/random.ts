/**
 * Deterministic pseudo-random numbers: the one implementation behind sampling (`ts/engine/sampling.ts`), the
 * random-model writer (`bench/gguf-writer.ts`), the grid generator (`scripts/gen-grids.ts`) and the test
 * harness (`test/helpers/rng.ts`). Not for cryptography.
 *
 *   Xoshiro128   xoshiro128** seeded by SplitMix32 (sampling, random models)
 *   Sfc32        sfc32 with a configurable warm-up (tests, grids: their streams are fixed by these seeds)
 */

/** A generator of uint32 words with the derived draws every user needs. */
export abstract class Random {
  private spare: number | undefined;

  /** Next uniform 32-bit word. */
  abstract u32(): number;

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 0x100000000;
  }

  /** Uniform in (0, 1) (never 0 or 1: safe under log). */
  open(): number {
    return (this.u32() + 0.5) / 0x100000000;
  }

  /** Standard normal (Box–Muller over two open uniforms; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.open()));
    const th = 2 * Math.PI * this.open();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
}

/** FNV-1a of a string (a numeric seed from a label). */
export function hashString(s: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** xoshiro128** (Blackman & Vigna), its four lanes seeded by SplitMix32 from one 32-bit seed. */
export class Xoshiro128 extends Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    super();
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next() | 1; // never the all-zero state
  }
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }
}

/** sfc32 (Doty-Humphrey's small fast counting generator), after `warmup` discarded words. */
export class Sfc32 extends Random {
  private a = 0x9e3779b9;
  private b = 0x243f6a88;
  private c = 0xb7e15162;
  private d: number;
  constructor(seed: number, warmup = 15) {
    super();
    this.d = seed >>> 0;
    for (let i = 0; i < warmup; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
