/**
 * Tokenizer for Hugging Face folders (tokenizer.json + tokenizer_config.json), through the maintained
 * `@huggingface/tokenizers` library (pure JS, no network), adapted to the project's Tokenizer interface.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors.js';
import type { DecodeOptions, EncodeOptions, Tokenizer, TokenStreamDecoder } from './types.js';

type Json = Record<string, unknown>;

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

export class HfTokenizer implements Tokenizer {
  readonly kind = 'tokenizer.json';
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly padId: number | null;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly eogIds: ReadonlySet<number>;
  /** Text of the special tokens, for chat templates. */
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  private readonly impl: HfTokenizerImpl;
  private readonly specialIds: Set<number>;

  constructor(tokenizerJson: Json, tokenizerConfig: Json, extraEos: number[] = []) {
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError('TOKENIZER_INVALID', `tokenizer.json could not be loaded: ${(e as Error).message}`);
    }
    const model = (tokenizerJson.model ?? {}) as Json;
    const vocab = model.vocab;
    let n = 0;
    if (vocab && typeof vocab === 'object') n = Array.isArray(vocab) ? vocab.length : Object.keys(vocab).length;
    const added = (tokenizerJson.added_tokens ?? []) as { id: number; special?: boolean }[];
    for (const a of added) n = Math.max(n, a.id + 1);
    this.vocabSize = n;
    this.specialIds = new Set(added.filter((a) => a.special).map((a) => a.id));
    const id = (t: string | undefined) => (t === undefined ? null : (this.impl.token_to_id(t) ?? null));
    this.bosToken = tokenContent(tokenizerConfig.bos_token) ?? null;
    this.eosToken = tokenContent(tokenizerConfig.eos_token) ?? null;
    this.bosId = id(this.bosToken ?? undefined);
    this.eosId = id(this.eosToken ?? undefined);
    this.unkId = id(tokenContent(tokenizerConfig.unk_token));
    this.padId = id(tokenContent(tokenizerConfig.pad_token));
    this.addBos = tokenizerConfig.add_bos_token === true;
    this.addEos = tokenizerConfig.add_eos_token === true;
    const eog = new Set<number>(extraEos);
    if (this.eosId !== null) eog.add(this.eosId);
    for (const t of ['<|im_end|>', '<|eot_id|>', '<|end_of_text|>', '<|endoftext|>', '<end_of_turn>']) {
      const i = this.impl.token_to_id(t);
      if (i !== undefined) eog.add(i);
    }
    this.eogIds = eog;
  }

  static fromFolder(folder: string, extraEos: number[] = []): HfTokenizer | null {
    const tj = path.join(folder, 'tokenizer.json');
    if (!existsSync(tj)) return null;
    const read = (f: string): Json => {
      try {
        return JSON.parse(readFileSync(f, 'utf8')) as Json;
      } catch (e) {
        throw new TokenizerError('TOKENIZER_INVALID', `${f}: ${(e as Error).message}`);
      }
    };
    const tc = path.join(folder, 'tokenizer_config.json');
    return new HfTokenizer(read(tj), existsSync(tc) ? read(tc) : {}, extraEos);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.impl.encode(text, { add_special_tokens: options.addSpecial ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    for (let i = 0; i < ids.length; i++) this.checkId(ids[i]!);
    if (ids.length === 0) return ''; // the library rejects an empty list
    return this.impl.decode(Array.from(ids), { skip_special_tokens: !(options.special ?? false) });
  }

  createDecoder(options: DecodeOptions = {}): TokenStreamDecoder {
    // Decode the running sequence and emit what is new; hold back a trailing replacement character
    // (an incomplete UTF-8 sequence split across tokens).
    const ids: number[] = [];
    let emitted = 0;
    const take = (final: boolean): string => {
      const text = this.decode(ids, options);
      let end = text.length;
      if (!final) while (end > emitted && text.charCodeAt(end - 1) === 0xfffd) end--;
      if (end <= emitted) return '';
      const out = text.slice(emitted, end);
      emitted = end;
      return out;
    };
    return {
      push: (x) => {
        if (typeof x === 'number') ids.push(x);
        else for (let i = 0; i < x.length; i++) ids.push(x[i]!);
        return take(false);
      },
      flush: () => take(true),
    };
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError('TOKENIZER_BAD_TOKEN', `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  tokenToBytes(id: number, options: { special?: boolean } = {}): Uint8Array {
    return new TextEncoder().encode(this.tokenToPiece(id, options));
  }

  tokenToPiece(id: number, options: { special?: boolean } = {}): string {
    this.checkId(id);
    if (this.specialIds.has(id) && !options.special) return '';
    return this.impl.decode([id], { skip_special_tokens: false });
  }

  tokenText(id: number): string {
    this.checkId(id);
    return this.impl.id_to_token(id) ?? '';
  }

  tokenId(text: string): number | undefined {
    return this.impl.token_to_id(text);
  }

  isEog(id: number): boolean {
    return this.eogIds.has(id);
  }
}
