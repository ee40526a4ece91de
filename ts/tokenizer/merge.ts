/**
 * The pair-merge loop both vocabulary kinds use: symbols start as given; among adjacent pairs that have a
 * priority, the lowest priority value is merged first (ties: leftmost), repeatedly, until no pair has one.
 * SentencePiece-style vocabularies rank a pair by minus the score of the merged token, byte-level BPE by the
 * rank of the pair in the merge list.
 */
import { Heap } from './heap.ts';

interface Candidate {
  left: number;
  right: number;
  priority: number;
  /** Length of the merged text, to detect candidates made stale by an earlier merge. */
  length: number;
}

const before = (a: Candidate, b: Candidate): boolean => a.priority < b.priority || (a.priority === b.priority && a.left < b.left);

/** Merges `symbols` in place of a copy; returns the surviving symbols in text order. */
export function mergePairs(symbols: readonly string[], priority: (left: string, right: string) => number | undefined): string[] {
  const sym = symbols.slice();
  const n = sym.length;
  if (n === 0) return [];
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const queue = new Heap<Candidate>(before);
  const consider = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const p = priority(sym[left]!, sym[right]!);
    if (p === undefined) return;
    queue.push({ left, right, priority: p, length: sym[left]!.length + sym[right]!.length });
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
  const out: string[] = [];
  for (let i = 0; i !== -1; i = next[i]!) out.push(sym[i]!);
  return out;
}
