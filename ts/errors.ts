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
  | 'MODEL_FORMAT'
  | 'TOKENIZER'
  | 'ABORTED';

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

/** A model, tokenizer or predictor file is malformed, truncated or not what was expected. */
export class ModelFormatError extends HogwildError {
  readonly file: string | undefined;
  constructor(message: string, file?: string) {
    super('MODEL_FORMAT', file ? `${file}: ${message}` : message);
    this.file = file;
  }
}

/** Tokenizer data is missing or malformed, or text cannot be tokenized. */
export class TokenizerError extends HogwildError {
  constructor(message: string) {
    super('TOKENIZER', message);
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
