/**
 * Text chunking for perplexity evaluation.
 */

/**
 * Packs the non-empty lines of `text` greedily into chunks of at most `maxChars` characters, joined by a single
 * newline (blank lines between paragraphs are dropped). A line longer than `maxChars` is split into pieces of
 * `maxChars` characters. Returns the chunks in text order; no character of a kept line is lost.
 */
export function paragraphChunks(text: string, maxChars: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const raw of text.split(/\r?\n/)) {
    if (raw.trim() === '') continue;
    const pieces: string[] = [];
    for (let i = 0; i < raw.length; i += maxChars) pieces.push(raw.slice(i, i + maxChars));
    for (const p of pieces) {
      if (cur !== '' && cur.length + 1 + p.length > maxChars) {
        out.push(cur);
        cur = '';
      }
      cur = cur === '' ? p : `${cur}\n${p}`;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}
