/**
 * SentencePiece-style BPE over a scored vocabulary (GGUF `tokenizer.ggml.model == "llama"`).
 *
 * The text (spaces already escaped to U+2581) starts as one symbol per character. Adjacent pairs whose
 * concatenation is a vocabulary entry are candidates; the candidate with the highest score is merged
 * first (ties: leftmost), repeatedly, until no candidate is left. Symbols that are not vocabulary entries
 * at the end fall back to byte tokens `<0xXX>` for each of their UTF-8 bytes.
 */

import { mergePairs } from './merge.ts';
import { utf8Encode } from './utf8.ts';
import type { GgufVocab } from './vocab.ts';

export class SpmEncoder {
  /** Byte value to its `<0xXX>` token (or the single-character token for ASCII, or unk). */
  private readonly byteTokens: Int32Array;

  constructor(private readonly vocab: GgufVocab) {
    this.byteTokens = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = vocab.ids.get(hex) ?? (b < 0x80 ? vocab.ids.get(String.fromCharCode(b)) : undefined);
      this.byteTokens[b] = id ?? vocab.special.unk ?? -1;
    }
  }

  /** Appends the ids of `text` (whitespace already escaped) to `out`. */
  encode(text: string, out: number[]): void {
    if (text.length === 0) return;
    const { ids, scores } = this.vocab;
    const merged = mergePairs(Array.from(text) /* one symbol per code point */, (l, r) => {
      const id = ids.get(l + r);
      return id === undefined ? undefined : -scores[id]!;
    });
    for (const s of merged) {
      const id = ids.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const b of utf8Encode(s)) {
        const bt = this.byteTokens[b]!;
        if (bt >= 0) out.push(bt);
      }
    }
  }
}
