export type { DecodeOptions, EncodeOptions, Tokenizer, TokenStreamDecoder } from './types.ts';
export { GgufTokenizer, loadGgufTokenizer } from './gguf-tokenizer.ts';
export { readGgufVocab, partitionSpecial, TokenAttr, type GgufVocab, type SpecialIds, type Fragment } from './vocab.ts';
export { preTokenizerFor, type PreTokenizer } from './pretokenize.ts';
export { Utf8StreamDecoder, incompleteUtf8Tail } from './utf8.ts';
