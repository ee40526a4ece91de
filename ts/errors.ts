/**
 * Typed errors. Every error the library throws on purpose is a HogwildError with a stable `code`, so
 * callers can branch on `instanceof` or on `err.code` without parsing messages.
 */

export type HogwildErrorCode =
  | 'INVALID_ARGUMENT'
  | 'OUT_OF_RANGE'
  | 'OUT_OF_MEMORY'
  | 'UNSUPPORTED'
  | 'DEVICE'
  | 'INTERNAL'
  | 'BACKEND_UNAVAILABLE'
  | 'DISPOSED'
  | ModelFormatErrorCode
  | TokenizerErrorCode
  | 'ABORTED';

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
  /** An architecture, tensor layout or setting this library does not run. */
  | 'FORMAT_UNSUPPORTED_MODEL'
  /** A tensor the architecture needs is absent, or has the wrong shape or dtype. */
  | 'FORMAT_MISSING_TENSOR'
  /** Anything else structurally invalid: bad JSON, overlapping tensors, misaligned offsets, duplicate names, bad config values. */
  | 'FORMAT_INVALID'
  /** The file could not be opened or read. */
  | 'FORMAT_IO';

export type TokenizerErrorCode =
  /** The vocabulary is of a kind this tokenizer does not implement (model or pre-tokenizer). */
  | 'TOKENIZER_UNSUPPORTED'
  /** The vocabulary metadata is missing or inconsistent. */
  | 'TOKENIZER_INVALID'
  /** A token id outside the vocabulary. */
  | 'TOKENIZER_BAD_TOKEN';

export class HogwildError extends Error {
  readonly code: HogwildErrorCode;
  constructor(code: HogwildErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A parameter is malformed: wrong length, wrong type, bad enum value, inconsistent shapes. */
export class InvalidArgumentError extends HogwildError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** An index, handle, position or bit width lies outside its allowed range. */
export class OutOfRangeError extends HogwildError {
  constructor(message: string) {
    super('OUT_OF_RANGE', message);
  }
}

/** Host, WASM-heap or device memory ran out, or a configured cap (maxBytes) would be exceeded. */
export class OutOfMemoryError extends HogwildError {
  constructor(message: string) {
    super('OUT_OF_MEMORY', message);
  }
}

/** A valid request that this backend does not implement. */
export class UnsupportedError extends HogwildError {
  constructor(message: string) {
    super('UNSUPPORTED', message);
  }
}

/** The GPU runtime or driver failed; the message carries its text. */
export class DeviceError extends HogwildError {
  constructor(message: string) {
    super('DEVICE', message);
  }
}

/** A bug in hogwild-kv: please report it. */
export class InternalError extends HogwildError {
  constructor(message: string) {
    super('INTERNAL', message);
  }
}

/** The requested backend cannot be used here; the message names the cause and the fix. */
export class BackendUnavailableError extends HogwildError {
  readonly backend: string;
  constructor(backend: string, message: string) {
    super('BACKEND_UNAVAILABLE', message);
    this.backend = backend;
  }
}

/** The object was disposed and can no longer be used. */
export class DisposedError extends HogwildError {
  constructor(what: string) {
    super('DISPOSED', `${what} has been disposed`);
  }
}

/** A model file (GGUF, safetensors, config, sharded index) that cannot be used. The message names the file and the problem. */
export class ModelFormatError extends HogwildError {
  declare readonly code: ModelFormatErrorCode;
  /** The file (or folder) the problem is in. */
  readonly path: string;
  constructor(code: ModelFormatErrorCode, path: string, problem: string, options?: { cause?: unknown }) {
    super(code, `${path}: ${problem}`, options);
    this.path = path;
  }
}

/** Tokenizer data is missing or malformed, or a token id is outside the vocabulary. */
export class TokenizerError extends HogwildError {
  declare readonly code: TokenizerErrorCode;
  constructor(code: TokenizerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** An operation was stopped through its AbortSignal. */
export class AbortError extends HogwildError {
  constructor(message = 'The operation was aborted') {
    super('ABORTED', message);
  }
}

/** Map a core hwkv_status code (see core/include/hwkv.h) and its message to the typed error. */
export function errorFromStatus(status: number, message: string): HogwildError {
  switch (status) {
    case 1:
      return new InvalidArgumentError(message);
    case 2:
      return new OutOfRangeError(message);
    case 3:
      return new OutOfMemoryError(message);
    case 4:
      return new UnsupportedError(message);
    case 5:
      return new DeviceError(message);
    default:
      return new InternalError(`status ${status}: ${message}`);
  }
}
