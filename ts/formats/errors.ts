/**
 * Typed errors for model files and tokenizers.
 *
 * Interim home: the lead will re-home these under ts/errors.ts (base class `HogwildError` with a `code`).
 * Until then they extend Error directly and carry the same `code` field.
 */

/** What was wrong with a model file. */
export type ModelFormatErrorCode =
  /** The file does not start with the expected magic bytes / header. */
  | 'FORMAT_BAD_MAGIC'
  /** A version this reader does not support (GGUF v1, a big-endian file, a future version). */
  | 'FORMAT_UNSUPPORTED_VERSION'
  /** The file ends before the header, or before a tensor's data, is complete. */
  | 'FORMAT_TRUNCATED'
  /** A count, length or size is beyond what the file can hold or a sane limit (guards against malicious sizes). */
  | 'FORMAT_LIMIT_EXCEEDED'
  /** An unknown ggml tensor type, GGUF value type or safetensors dtype. */
  | 'FORMAT_UNKNOWN_TYPE'
  /** Anything else structurally invalid: bad JSON, overlapping tensors, misaligned offsets, duplicate names. */
  | 'FORMAT_INVALID'
  /** The file could not be opened or read. */
  | 'FORMAT_IO';

/** A model file (GGUF, safetensors, sharded index) that cannot be read. The message names the file and the problem. */
export class ModelFormatError extends Error {
  override readonly name = 'ModelFormatError';
  readonly code: ModelFormatErrorCode;
  /** The file (or folder) the problem is in. */
  readonly path: string;

  /** @internal */
  constructor(code: ModelFormatErrorCode, path: string, problem: string, options?: { cause?: unknown }) {
    super(`${path}: ${problem}`, options);
    this.code = code;
    this.path = path;
  }
}

export type TokenizerErrorCode =
  /** The vocabulary is of a kind this tokenizer does not implement (model or pre-tokenizer). */
  | 'TOKENIZER_UNSUPPORTED'
  /** The vocabulary metadata is missing or inconsistent. */
  | 'TOKENIZER_INVALID'
  /** A token id outside the vocabulary. */
  | 'TOKENIZER_BAD_TOKEN';

export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
  readonly code: TokenizerErrorCode;

  /** @internal */
  constructor(code: TokenizerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
