/**
 * Byte-level BPE (GGUF `tokenizer.ggml.model == "gpt2"`).
 *
 * Text is split by the vocabulary's pre-tokenizer; each piece's UTF-8 bytes are mapped to printable
 * characters (the GPT-2 byte alphabet), and within each piece adjacent symbols are merged by the rank of
 * their pair in `tokenizer.ggml.merges` (lowest rank first; ties: leftmost) until no pair has a rank.
 */

import { mergePairs } from './merge.ts';
import { preTokenizerFor, type PreTokenizer } from './pretokenize.ts';
import { utf8Encode } from './utf8.ts';
import type { GgufVocab } from './vocab.ts';

/**
 * The GPT-2 byte alphabet: printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for themselves;
 * the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) take code points 256, 257, ... in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return out;
})();

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** Maps text to the byte alphabet: one character per UTF-8 byte. */
export function bytesToBpeChars(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}

const CACHE_LIMIT = 20000;

export class BpeEncoder {
  readonly preTokenizer: PreTokenizer;
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly vocab: GgufVocab) {
    this.preTokenizer = preTokenizerFor(vocab.pre);
    vocab.merges.forEach((m, rank) => {
      // "left right"; the separator is the first space after position 0 (a left side may start with one).
      const at = m.indexOf(' ', 1);
      if (at < 0) return;
      const key = m.slice(0, at) + '\u0000' + m.slice(at + 1);
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
  }

  /** Appends the ids of `text` to `out`. */
  encode(text: string, out: number[]): void {
    for (const piece of this.preTokenizer.split(text)) {
      let ids = this.cache.get(piece);
      if (!ids) {
        ids = this.encodeWord(bytesToBpeChars(utf8Encode(piece)));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  private encodeWord(word: string): number[] {
    const vocabIds = this.vocab.ids;
    if (this.preTokenizer.ignoreMerges) {
      const whole = vocabIds.get(word);
      if (whole !== undefined) return [whole];
    }
    // Byte-alphabet characters are all in the BMP: one symbol per UTF-16 unit.
    const merged = mergePairs(word.split(''), (l, r) => this.ranks.get(l + '\u0000' + r));
    const out: number[] = [];
    for (const s of merged) {
      const id = vocabIds.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // A merged symbol outside the vocabulary (inconsistent merges): fall back to one token per byte.
      for (const ch of s) {
        const bid = vocabIds.get(ch) ?? this.vocab.special.unk;
        if (bid !== null && bid !== undefined) out.push(bid);
      }
    }
    return out;
  }
}
