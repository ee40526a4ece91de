/** Model-file and tokenizer errors live with the other typed errors in ts/errors.ts. */
export { ModelFormatError, TokenizerError } from '../errors.js';
export type { ModelFormatErrorCode, TokenizerErrorCode } from '../errors.js';
