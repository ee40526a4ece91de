/**
 * Reference bit packing: codes of `bits` bits in a continuous LSB-first little-endian bit stream of 32-bit
 * words (stream bit k = bit k%32 of word k/32). Done one bit at a time, so it cannot share a bug with a
 * word-level implementation.
 */
export function refPackedWords(n: number, bits: number): number {
  return Math.ceil((n * bits) / 32);
}

export function refPack(codes: ArrayLike<number>, bits: number): Uint32Array {
  const words = new Uint32Array(refPackedWords(codes.length, bits));
  let k = 0; // stream bit index
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= 2 ** bits) throw new RangeError(`refPack: code ${c} does not fit ${bits} bits`);
    for (let b = 0; b < bits; b++, k++) {
      const bit = Math.floor(c / 2 ** b) % 2;
      if (bit) words[Math.floor(k / 32)] = (words[Math.floor(k / 32)]! + 2 ** (k % 32)) >>> 0;
    }
  }
  return words;
}

export function refUnpack(words: ArrayLike<number>, bits: number, n: number): Uint16Array {
  const codes = new Uint16Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    let c = 0;
    for (let b = 0; b < bits; b++, k++) {
      const w = words[Math.floor(k / 32)]!;
      const bit = Math.floor(w / 2 ** (k % 32)) % 2;
      c += bit * 2 ** b;
    }
    codes[i] = c;
  }
  return codes;
}

/** Same stream through BigInt: an independent second formulation, used to cross-check the bitwise one. */
export function refPackBigInt(codes: ArrayLike<number>, bits: number): Uint32Array {
  let acc = 0n;
  for (let i = codes.length - 1; i >= 0; i--) acc = (acc << BigInt(bits)) | BigInt(codes[i]!);
  const words = new Uint32Array(refPackedWords(codes.length, bits));
  for (let w = 0; w < words.length; w++) words[w] = Number((acc >> BigInt(32 * w)) & 0xffffffffn);
  return words;
}
