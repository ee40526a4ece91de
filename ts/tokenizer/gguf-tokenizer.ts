/**
 * Tokenizer over a GGUF vocabulary: SentencePiece-style (`llama`) or byte-level BPE (`gpt2`).
 * Encoding follows llama.cpp's tokenizers, so ids agree with llama.cpp on the same GGUF.
 */

import { readGguf, type GgufFile } from '../formats/gguf.ts';
import { TokenizerError } from '../formats/errors.ts';
import { BpeEncoder, CHAR_TO_BYTE } from './bpe.ts';
import { SpmEncoder } from './spm.ts';
import type { DecodeOptions, EncodeOptions, Tokenizer, TokenStreamDecoder } from './types.ts';
import { utf8Decode, utf8Encode, Utf8StreamDecoder } from './utf8.ts';
import { partitionSpecial, readGgufVocab, TokenAttr, type GgufVocab } from './vocab.ts';

const EMPTY = new Uint8Array(0);
const SPACE = 0x20;
const SPM_SPACE = '\u2581'; // ▁, SentencePiece's visible space

export class GgufTokenizer implements Tokenizer {
  readonly kind: 'spm' | 'bpe';
  readonly vocab: GgufVocab;
  private readonly spm?: SpmEncoder;
  private readonly bpe?: BpeEncoder;
  /** Bytes of each token as plain text (control tokens empty), filled on first use. */
  private readonly pieceCache: (Uint8Array | undefined)[];

  /** Builds the tokenizer from a GGUF header already read. */
  constructor(file: GgufFile) {
    this.vocab = readGgufVocab(file);
    if (this.vocab.model === 'llama') {
      this.kind = 'spm';
      this.spm = new SpmEncoder(this.vocab);
    } else {
      this.kind = 'bpe';
      this.bpe = new BpeEncoder(this.vocab);
    }
    this.pieceCache = new Array(this.vocab.tokens.length);
  }

  /** Reads the GGUF header at `path` (tensor data is not read) and builds its tokenizer. */
  static fromFile(path: string): GgufTokenizer {
    return new GgufTokenizer(readGguf(path));
  }

  get vocabSize(): number {
    return this.vocab.tokens.length;
  }
  get bosId(): number | null {
    return this.vocab.special.bos;
  }
  get eosId(): number | null {
    return this.vocab.special.eos;
  }
  get unkId(): number | null {
    return this.vocab.special.unk;
  }
  get padId(): number | null {
    return this.vocab.special.pad;
  }
  get addBos(): boolean {
    return this.vocab.addBos;
  }
  get addEos(): boolean {
    return this.vocab.addEos;
  }
  get eogIds(): ReadonlySet<number> {
    return this.vocab.eogIds;
  }
  /** The byte-level BPE pre-tokenizer name (`tokenizer.ggml.pre`), or `default`. */
  get pre(): string {
    return this.vocab.pre;
  }

  isEog(id: number): boolean {
    return this.vocab.eogIds.has(id);
  }

  tokenText(id: number): string {
    this.check(id);
    return this.vocab.tokens[id]!;
  }

  tokenId(text: string): number | undefined {
    return this.vocab.ids.get(text);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecial = options.addSpecial ?? true;
    const { vocab } = this;
    const out: number[] = [];
    // Lone surrogates cannot be UTF-8 encoded; they become U+FFFD as TextEncoder would.
    const input = toWellFormed(text);
    if (addSpecial && vocab.addBos && vocab.special.bos !== null) out.push(vocab.special.bos);
    const fragments = partitionSpecial(vocab, input, options.parseSpecial ?? false);
    if (this.spm) {
      // A space is prefixed to the text at the start and after every special token.
      let afterSpecial = true;
      for (const f of fragments) {
        if (typeof f === 'number') {
          out.push(f);
          afterSpecial = true;
          continue;
        }
        const spaced = vocab.addSpacePrefix && afterSpecial ? ' ' + f : f;
        this.spm.encode(spaced.replaceAll(' ', SPM_SPACE), out);
        afterSpecial = false;
      }
    } else {
      for (const f of fragments) {
        if (typeof f === 'number') out.push(f);
        else this.bpe!.encode(f, out);
      }
    }
    if (addSpecial && vocab.addEos && vocab.special.eos !== null) out.push(vocab.special.eos);
    return out;
  }

  tokenToBytes(id: number, options: { special?: boolean } = {}): Uint8Array {
    this.check(id);
    const attr = this.vocab.attrs[id]!;
    if (attr & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) {
      return options.special ? utf8Encode(this.vocab.tokens[id]!) : EMPTY;
    }
    let bytes = this.pieceCache[id];
    if (!bytes) {
      bytes = this.plainBytes(id, attr);
      this.pieceCache[id] = bytes;
    }
    return bytes;
  }

  tokenToPiece(id: number, options: { special?: boolean } = {}): string {
    return utf8Decode(this.tokenToBytes(id, options));
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const special = options.special ?? false;
    let strip = options.stripLeadingSpace ?? this.vocab.addSpacePrefix;
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      let b = this.tokenToBytes(ids[i]!, { special });
      if (b.length === 0) continue;
      if (strip) {
        if (b[0] === SPACE) b = b.subarray(1);
        strip = false;
      }
      parts.push(b);
      total += b.length;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return utf8Decode(all);
  }

  createDecoder(options: DecodeOptions = {}): TokenStreamDecoder {
    const special = options.special ?? false;
    let strip = options.stripLeadingSpace ?? false;
    let utf8 = new Utf8StreamDecoder();
    return {
      push: (ids) => {
        const list = typeof ids === 'number' ? [ids] : ids;
        let text = '';
        for (let i = 0; i < list.length; i++) {
          let b = this.tokenToBytes(list[i]!, { special });
          if (b.length === 0) continue;
          if (strip) {
            if (b[0] === SPACE) b = b.subarray(1);
            strip = false;
          }
          text += utf8.push(b);
        }
        return text;
      },
      flush: () => {
        const rest = utf8.flush();
        utf8 = new Utf8StreamDecoder();
        strip = options.stripLeadingSpace ?? false;
        return rest;
      },
    };
  }

  // -------------------------------------------------------------------------------------------------------

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.tokens.length) {
      throw new TokenizerError('TOKENIZER_BAD_TOKEN', `token id ${id} is outside the vocabulary (0..${this.vocab.tokens.length - 1})`);
    }
  }

  private plainBytes(id: number, attr: number): Uint8Array {
    const text = this.vocab.tokens[id]!;
    if (attr & TokenAttr.USER_DEFINED) return utf8Encode(text);
    if (this.kind === 'spm') {
      if (attr & TokenAttr.NORMAL) return utf8Encode(text.replaceAll(SPM_SPACE, ' '));
      if (attr & TokenAttr.BYTE) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
        if (m) return Uint8Array.of(parseInt(m[1]!, 16));
        return utf8Encode(text);
      }
      return EMPTY; // unused / undefined types render as nothing
    }
    if (attr & TokenAttr.NORMAL) {
      // Byte-alphabet characters back to bytes; a character outside the alphabet stays as its UTF-8.
      const out: number[] = [];
      for (const ch of text) {
        const b = CHAR_TO_BYTE.get(ch);
        if (b !== undefined) out.push(b);
        else out.push(...utf8Encode(ch));
      }
      return Uint8Array.from(out);
    }
    return EMPTY;
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function toWellFormed(text: string): string {
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

/** Reads a GGUF file's header and builds the tokenizer of its vocabulary. */
export function loadGgufTokenizer(source: string | GgufFile): GgufTokenizer {
  return typeof source === 'string' ? GgufTokenizer.fromFile(source) : new GgufTokenizer(source);
}
