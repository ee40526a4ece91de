/** UTF-8 helpers: byte-exact encoding and an incremental decoder that holds back incomplete sequences. */

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8'); // non-fatal: invalid bytes become U+FFFD

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Length of the UTF-8 sequence a lead byte starts (1 for ASCII and for stray continuation bytes). */
export function utf8SequenceLength(lead: number): number {
  if (lead < 0xc0) return 1;
  if (lead < 0xe0) return 2;
  if (lead < 0xf0) return 3;
  if (lead < 0xf8) return 4;
  return 1;
}

/**
 * How many bytes at the end of `bytes[0..end)` form the start of a sequence that is not complete yet
 * (0 when the buffer ends on a boundary, or when the tail is invalid anyway and may be decoded as U+FFFD).
 */
export function incompleteUtf8Tail(bytes: Uint8Array, end = bytes.length): number {
  // Walk back over at most 3 continuation bytes to the lead byte.
  for (let back = 1; back <= Math.min(4, end); back++) {
    const b = bytes[end - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte
    const need = utf8SequenceLength(b);
    return need > back ? back : 0;
  }
  return 0;
}

/** Incremental UTF-8 decoder over byte chunks: `push` returns only whole characters. */
export class Utf8StreamDecoder {
  private pending = new Uint8Array(0);

  /** Appends bytes; returns the text of the complete characters so far. */
  push(bytes: Uint8Array): string {
    let buf: Uint8Array;
    if (this.pending.length === 0) {
      buf = bytes;
    } else {
      buf = new Uint8Array(this.pending.length + bytes.length);
      buf.set(this.pending);
      buf.set(bytes, this.pending.length);
    }
    const hold = incompleteUtf8Tail(buf);
    this.pending = buf.slice(buf.length - hold);
    return hold === buf.length ? '' : decoder.decode(buf.subarray(0, buf.length - hold));
  }

  /** Bytes held back waiting for the rest of their character. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Returns the held-back bytes decoded (U+FFFD for an incomplete sequence) and resets. */
  flush(): string {
    const out = this.pending.length ? decoder.decode(this.pending) : '';
    this.pending = new Uint8Array(0);
    return out;
  }
}
