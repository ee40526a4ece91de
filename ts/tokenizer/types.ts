/**
 * The one Tokenizer interface of the library. Implemented by the GGUF-vocabulary tokenizers
 * (SentencePiece-style and byte-level BPE, in this folder) and, later, by a tokenizer.json one.
 */

export interface EncodeOptions {
  /** Add BOS / EOS as the vocabulary asks (`add_bos_token` / `add_eos_token`). Defaults to `true`. */
  addSpecial?: boolean;
  /**
   * Recognise control tokens written in the text (`"<|im_start|>"`, `"</s>"`) as those tokens. Defaults to
   * `false`: they are tokenized as plain text. User-defined (added, non-control) tokens are always recognised.
   */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Render control and unknown tokens (BOS, EOS, `<unk>`, `<|im_end|>`) as their text. Defaults to `false`: they decode to nothing. */
  special?: boolean;
  /**
   * Drop one leading space from the first token that renders as something (BOS renders as nothing unless
   * `special`), the inverse of SentencePiece's add-space-prefix.
   * Defaults to the vocabulary's `add_space_prefix` for `decode()`, and to `false` for `createDecoder()`
   * (a stream usually continues a prompt, whose first space belongs to the text).
   */
  stripLeadingSpace?: boolean;
}

/** Incremental detokenizer: feed ids as they are generated, get back text that is safe to print. */
export interface TokenStreamDecoder {
  /** Adds tokens; returns the newly complete text. An incomplete UTF-8 sequence at the end is held back. */
  push(ids: number | ArrayLike<number>): string;
  /** Returns what is held back (U+FFFD for an incomplete sequence) and resets the decoder. */
  flush(): string;
}

export interface Tokenizer {
  /** `spm` (SentencePiece-style, GGUF `llama`), `bpe` (byte-level BPE, GGUF `gpt2`), or another implementation's name. */
  readonly kind: string;
  /** Number of token ids (the embedding rows the vocabulary expects). */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly padId: number | null;
  /** Whether `encode` with `addSpecial` prepends BOS / appends EOS. */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** Tokens that end generation (EOS, EOT, `<|im_end|>`, ...). */
  readonly eogIds: ReadonlySet<number>;

  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  createDecoder(options?: DecodeOptions): TokenStreamDecoder;

  /** The bytes a token stands for (empty for control tokens unless `special`). */
  tokenToBytes(id: number, options?: { special?: boolean }): Uint8Array;
  /** `tokenToBytes` as text; a token holding part of a UTF-8 sequence gives U+FFFD (use a stream decoder instead). */
  tokenToPiece(id: number, options?: { special?: boolean }): string;
  /** The vocabulary entry as stored (`"▁Hello"`, `"Ġworld"`, `"<0x0A>"`). */
  tokenText(id: number): string;
  /** The id of a vocabulary entry, if any. */
  tokenId(text: string): number | undefined;
  isEog(id: number): boolean;
}
