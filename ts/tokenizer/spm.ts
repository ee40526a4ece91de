/**
 * SentencePiece-style BPE over a scored vocabulary (GGUF `tokenizer.ggml.model == "llama"`).
 *
 * The text (spaces already escaped to U+2581) starts as one symbol per character. Adjacent pairs whose
 * concatenation is a vocabulary entry are candidates; the candidate with the highest score is merged
 * first (ties: leftmost), repeatedly, until no candidate is left. Symbols that are not vocabulary entries
 * at the end fall back to byte tokens `<0xXX>` for each of their UTF-8 bytes.
 */

import { Heap } from './heap.ts';
import { utf8Encode } from './utf8.ts';
import type { GgufVocab } from './vocab.ts';

interface Candidate {
  left: number;
  right: number;
  score: number;
  /** Length of the merged text, to detect candidates made stale by an earlier merge. */
  length: number;
}

const before = (a: Candidate, b: Candidate): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

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
    const sym = Array.from(text); // one symbol per code point
    const n = sym.length;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const queue = new Heap<Candidate>(before);
    const consider = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const merged = sym[left]! + sym[right]!;
      const id = ids.get(merged);
      if (id === undefined) return;
      queue.push({ left, right, score: scores[id]!, length: merged.length });
    };
    for (let i = 1; i < n; i++) consider(i - 1, i);

    while (queue.size > 0) {
      const c = queue.pop()!;
      const l = sym[c.left]!;
      const r = sym[c.right]!;
      // Stale: one side was merged away, or grew since this candidate was made.
      if (l.length === 0 || r.length === 0 || l.length + r.length !== c.length) continue;
      sym[c.left] = l + r;
      sym[c.right] = '';
      const after = next[c.right]!;
      next[c.left] = after;
      if (after >= 0) prev[after] = c.left;
      consider(prev[c.left]!, c.left);
      consider(c.left, after);
    }

    for (let i = 0; i !== -1; i = next[i]!) {
      const s = sym[i]!;
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
