/**
 * Bit packing on every backend variant: bits 1..16, lengths 0, 1, 31, 32, 33, 1000. The packed words equal
 * the bit-by-bit reference exactly (layout, length, zeroed tail); unpack inverts pack exactly.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { refPack, refPackedWords, refUnpack } from './ref/bits.ts';
import { forEachVariant } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import { expectExact } from './helpers/metrics.ts';

const NAME = 'ops-bits';
const S = suite(NAME);
const LENGTHS = [0, 1, 31, 32, 33, 1000];

seededTest(S, NAME, 'pack: word layout equals the reference exactly; unpack(pack(x)) = x', async (rng) => {
  await forEachVariant((v) => {
    for (let bits = 1; bits <= 16; bits++) {
      for (const n of LENGTHS) {
        for (const fill of ['random', 'max', 'zero'] as const) {
          const codes = fill === 'random' ? rng.codes(n, bits) : new Uint16Array(n).fill(fill === 'max' ? 2 ** bits - 1 : 0);
          const words = v.backend.packBits(codes, bits);
          const ref = refPack(codes, bits);
          assert.is(words.length, refPackedWords(n, bits), `words length for n=${n} bits=${bits}`);
          expectExact(words, ref, `pack bits=${bits} n=${n} ${fill}`);
          expectExact(v.backend.unpackBits(words, bits, n), codes, `unpack(pack) bits=${bits} n=${n} ${fill}`);
          expectExact(v.backend.unpackBits(ref, bits, n), refUnpack(ref, bits, n), `unpack(ref words) bits=${bits} n=${n}`);
        }
      }
    }
  });
});

seededTest(S, NAME, 'pack accepts number[]; unpack ignores bits past the last code and extra words', async (rng) => {
  await forEachVariant((v) => {
    for (const bits of [1, 3, 5, 7, 11, 13, 16]) {
      const n = rng.int(1, 200);
      const codes = rng.codes(n, bits);
      expectExact(v.backend.packBits(Array.from(codes), bits), refPack(codes, bits), `pack(number[]) bits=${bits}`);
      const need = refPackedWords(n, bits);
      const words = new Uint32Array(need + 3);
      words.set(refPack(codes, bits));
      // garbage after the last code, in the last word and in the extra words
      const used = (n * bits) % 32;
      if (used !== 0) words[need - 1] = (words[need - 1]! | ((0xffffffff << used) >>> 0)) >>> 0;
      for (let i = need; i < words.length; i++) words[i] = rng.u32();
      expectExact(v.backend.unpackBits(words, bits, n), codes, `unpack with trailing garbage bits=${bits} n=${n}`);
    }
  });
});

S.run();
