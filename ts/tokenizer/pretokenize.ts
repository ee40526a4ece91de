/**
 * Pre-tokenizers of byte-level BPE vocabularies, chosen by GGUF `tokenizer.ggml.pre`.
 *
 * A pre-tokenizer is a list of regexes applied in turn: each one splits every piece from the previous
 * step into its matches and the text between them (kept as pieces of its own). BPE then runs inside
 * each final piece. Patterns follow the ones in the models' tokenizer.json files, with the forms
 * llama.cpp settled on for `tokenizer.ggml.pre` names, written here as JavaScript `u`-flag regexes.
 */

import { TokenizerError } from '../formats/errors.ts';

/**
 * Unicode White_Space, the `\s` of these patterns. JavaScript's `\s` differs: it adds U+FEFF and lacks
 * U+0085, so patterns use this class instead.
 */
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const s = `[${WS}]`;
const S = `[^${WS}]`;

// Contractions, letters, numbers, other symbols, whitespace: the GPT-2 pattern.
const GPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${s}+(?!${S})|${s}+`;
// Llama 3 / Qwen 2 family: case-insensitive contractions, a leading non-letter glued to words, digits in 1-3 or 1.
const CONTRACTIONS_I = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;
const llama3Like = (digits: string): string =>
  `${CONTRACTIONS_I}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${digits}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${s}*[\\r\\n]+|${s}+(?!${S})|${s}+`;
const CJK = '[\\u4E00-\\u9FA5\\u0800-\\u4E00\\uAC00-\\uD7FF]+';

/** Pattern lists by pre-tokenizer family. */
const FAMILIES: Record<string, string[]> = {
  gpt2: [GPT2],
  default: ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
  falcon: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2, '[0-9][0-9][0-9]'],
  'deepseek-coder': ['[\\r\\n]', `${s}?\\p{L}+`, `${s}?\\p{P}+`, CJK, '\\p{N}'],
  starcoder: ['\\p{N}', GPT2],
  llama3: [llama3Like('\\p{N}{1,3}')],
  qwen2: [llama3Like('\\p{N}')],
  bloom: [` ?[^(${WS}|.,!?…。，、।۔،)]+`],
  viking: [` ?[^(${WS}|.,!?…。，、।۔،)]+`, '\\p{N}'],
};

/** `tokenizer.ggml.pre` names to families. */
const PRE_NAMES: Record<string, string> = {
  default: 'default',
  'gpt-2': 'gpt2',
  'phi-2': 'gpt2',
  mpt: 'gpt2',
  olmo: 'gpt2',
  jais: 'gpt2',
  'roberta-bpe': 'gpt2',
  gigachat: 'gpt2',
  falcon: 'falcon',
  'deepseek-coder': 'deepseek-coder',
  starcoder: 'starcoder',
  refact: 'starcoder',
  'command-r': 'starcoder',
  smollm: 'starcoder',
  codeshell: 'starcoder',
  exaone: 'starcoder',
  'minerva-7b': 'starcoder',
  llama3: 'llama3',
  'llama-v3': 'llama3',
  'llama-bpe': 'llama3',
  falcon3: 'llama3',
  dbrx: 'llama3',
  'smaug-bpe': 'llama3',
  'chatglm-bpe': 'llama3',
  qwen2: 'qwen2',
  'qwen2.5': 'qwen2',
  'deepseek-r1-qwen': 'qwen2',
  stablelm2: 'qwen2',
  megrez: 'qwen2',
  bloom: 'bloom',
  'gpt3-finnish': 'bloom',
  'poro-chat': 'bloom',
  viking: 'viking',
};

/** Vocabularies that take a pre-token that is itself a vocabulary entry whole, skipping merges. */
const IGNORE_MERGES = new Set(['llama3', 'llama-v3', 'llama-bpe', 'falcon3']);

export interface PreTokenizer {
  /** The family the `tokenizer.ggml.pre` name maps to. */
  family: string;
  ignoreMerges: boolean;
  split(text: string): string[];
}

/** The pre-tokenizer for a `tokenizer.ggml.pre` name; TokenizerError for an unknown one. */
export function preTokenizerFor(pre: string): PreTokenizer {
  const family = PRE_NAMES[pre];
  if (family === undefined) {
    throw new TokenizerError(
      'TOKENIZER_UNSUPPORTED',
      `byte-level BPE pre-tokenizer "${pre}" is not supported (known: ${Object.keys(PRE_NAMES).join(', ')})`,
    );
  }
  const regexes = FAMILIES[family]!.map((p) => new RegExp(p, 'gu'));
  return {
    family,
    ignoreMerges: IGNORE_MERGES.has(pre),
    split: (text) => splitAll(text, regexes),
  };
}

function splitAll(text: string, regexes: RegExp[]): string[] {
  let pieces = text.length ? [text] : [];
  for (const re of regexes) {
    const next: string[] = [];
    for (const piece of pieces) {
      let last = 0;
      for (const m of piece.matchAll(re)) {
        if (m[0].length === 0) continue;
        const at = m.index!;
        if (at > last) next.push(piece.slice(last, at));
        next.push(m[0]);
        last = at + m[0].length;
      }
      if (last < piece.length) next.push(last === 0 ? piece : piece.slice(last));
    }
    pieces = next;
  }
  return pieces;
}
