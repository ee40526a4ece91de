/**
 * A vocabulary as stored in GGUF metadata (`tokenizer.ggml.*`): token texts, scores, types, special ids
 * and flags, with the per-token attributes and special-token matching the tokenizers share.
 */

import type { GgufFile, GgufValue } from '../formats/gguf.ts';
import { TokenizerError } from '../formats/errors.ts';

/** Token attributes (bit flags), derived from `tokenizer.ggml.token_type` and adjusted per model. */
export const TokenAttr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
  /** Swallow whitespace to the left of the token when matching it in text. */
  LSTRIP: 1 << 7,
  /** Swallow whitespace to the right of the token when matching it in text. */
  RSTRIP: 1 << 8,
} as const;

/** GGUF `tokenizer.ggml.token_type` values. */
const TOKEN_TYPE_ATTR: Record<number, number> = {
  1: TokenAttr.NORMAL,
  2: TokenAttr.UNKNOWN,
  3: TokenAttr.CONTROL,
  4: TokenAttr.USER_DEFINED,
  5: TokenAttr.UNUSED,
  6: TokenAttr.BYTE,
};

// Texts of tokens that end generation or mark fill-in-the-middle, in common vocabularies. Converted GGUFs
// often type them as user-defined; they are treated as control tokens (so plain text never produces them).
const EOG_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|eom_id|>', '<EOT>'];
const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<EOT>', '<｜end▁of▁sentence｜>'];
const FIM_TEXTS: Record<string, string[]> = {
  fimPre: ['<|fim_prefix|>', '<fim-prefix>', '<｜fim▁begin｜>', '<PRE>'],
  fimSuf: ['<|fim_suffix|>', '<fim-suffix>', '<｜fim▁hole｜>', '<SUF>'],
  fimMid: ['<|fim_middle|>', '<fim-middle>', '<｜fim▁end｜>', '<MID>'],
  fimPad: ['<|fim_pad|>', '<fim-pad>', '<PAD>'],
  fimRep: ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>'],
  fimSep: ['<|file_sep|>'],
};

export type VocabModel = 'llama' | 'gpt2';

export interface SpecialIds {
  bos: number | null;
  eos: number | null;
  unk: number | null;
  pad: number | null;
  sep: number | null;
  eot: number | null;
  eom: number | null;
  mask: number | null;
  fimPre: number | null;
  fimSuf: number | null;
  fimMid: number | null;
  fimPad: number | null;
  fimRep: number | null;
  fimSep: number | null;
}

export interface GgufVocab {
  model: VocabModel;
  /** `tokenizer.ggml.pre` (byte-level BPE pre-tokenizer name); `default` when absent. */
  pre: string;
  /** Lowercased `general.name` (some per-model token attributes key on it). */
  modelName: string;
  tokens: string[];
  /** SentencePiece merge scores (zeros when absent). */
  scores: Float32Array;
  /** `TokenAttr` bits per token. */
  attrs: Uint16Array;
  /** Vocabulary entry to id (a later duplicate wins, as in llama.cpp). */
  ids: Map<string, number>;
  /** BPE merges `"left right"` in rank order (gpt2 model only). */
  merges: string[];
  special: SpecialIds;
  eogIds: Set<number>;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
  /** Tokens matched in raw text before tokenizing (control, user-defined, unknown), longest text first. */
  specialTokens: number[];
}

function stringArray(file: GgufFile, key: string): string[] | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || (v.length > 0 && typeof v[0] !== 'string')) {
    throw new TokenizerError('TOKENIZER_INVALID', `${file.path}: ${key} is not an array of strings`);
  }
  return v as string[];
}

function numericArray(file: GgufFile, key: string, n: number): ArrayLike<number> | undefined {
  const v: GgufValue | undefined = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (!ArrayBuffer.isView(v) || v instanceof BigInt64Array || v instanceof BigUint64Array) {
    throw new TokenizerError('TOKENIZER_INVALID', `${file.path}: ${key} is not a numeric array`);
  }
  const a = v as unknown as ArrayLike<number>;
  if (a.length !== n) {
    throw new TokenizerError('TOKENIZER_INVALID', `${file.path}: ${key} has ${a.length} entries for ${n} tokens`);
  }
  return a;
}

function scalar<T extends 'number' | 'boolean' | 'string'>(
  file: GgufFile,
  key: string,
  type: T,
): (T extends 'number' ? number : T extends 'boolean' ? boolean : string) | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== type) {
    throw new TokenizerError('TOKENIZER_INVALID', `${file.path}: ${key} is ${typeof v}, expected ${type}`);
  }
  return v as never;
}

/** Reads the `tokenizer.ggml.*` vocabulary of a GGUF header. */
export function readGgufVocab(file: GgufFile): GgufVocab {
  const model = scalar(file, 'tokenizer.ggml.model', 'string');
  if (model === undefined) {
    throw new TokenizerError('TOKENIZER_INVALID', `${file.path}: no tokenizer.ggml.model (the file holds no vocabulary)`);
  }
  if (model !== 'llama' && model !== 'gpt2') {
    throw new TokenizerError(
      'TOKENIZER_UNSUPPORTED',
      `${file.path}: tokenizer model "${model}" is not supported (supported: "llama" SentencePiece-style, "gpt2" byte-level BPE)`,
    );
  }
  const rawTokens = stringArray(file, 'tokenizer.ggml.tokens');
  if (!rawTokens || rawTokens.length === 0) {
    throw new TokenizerError('TOKENIZER_INVALID', `${file.path}: tokenizer.ggml.tokens is missing or empty`);
  }
  const n = rawTokens.length;
  const tokens = rawTokens.map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));
  const scores = new Float32Array(n);
  const rawScores = numericArray(file, 'tokenizer.ggml.scores', n);
  if (rawScores) scores.set(rawScores);
  const attrs = new Uint16Array(n).fill(TokenAttr.NORMAL);
  const types = numericArray(file, 'tokenizer.ggml.token_type', n);
  if (types) for (let i = 0; i < n; i++) attrs[i] = TOKEN_TYPE_ATTR[types[i]!] ?? TokenAttr.UNDEFINED;

  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) ids.set(tokens[i]!, i);

  let merges: string[] = [];
  if (model === 'gpt2') {
    const m = stringArray(file, 'tokenizer.ggml.merges');
    if (!m) throw new TokenizerError('TOKENIZER_INVALID', `${file.path}: byte-level BPE vocabulary without tokenizer.ggml.merges`);
    merges = m;
  }

  const pre = scalar(file, 'tokenizer.ggml.pre', 'string') ?? 'default';
  const modelName = (scalar(file, 'general.name', 'string') ?? '').toLowerCase();

  // Defaults as SentencePiece Llama vocabularies have them; byte-level BPE has none by default.
  const special: SpecialIds = {
    bos: model === 'llama' ? 1 : null,
    eos: model === 'llama' ? 2 : null,
    unk: model === 'llama' ? 0 : null,
    pad: null,
    sep: null,
    eot: null,
    eom: null,
    mask: null,
    fimPre: null,
    fimSuf: null,
    fimMid: null,
    fimPad: null,
    fimRep: null,
    fimSep: null,
  };
  const idKeys: [keyof SpecialIds, string][] = [
    ['bos', 'bos_token_id'],
    ['eos', 'eos_token_id'],
    ['unk', 'unknown_token_id'],
    ['pad', 'padding_token_id'],
    ['sep', 'seperator_token_id'], // sic: the GGUF key is spelled this way
    ['eot', 'eot_token_id'],
    ['eom', 'eom_token_id'],
    ['mask', 'mask_token_id'],
    ['fimPre', 'fim_pre_token_id'],
    ['fimSuf', 'fim_suf_token_id'],
    ['fimMid', 'fim_mid_token_id'],
    ['fimPad', 'fim_pad_token_id'],
    ['fimRep', 'fim_rep_token_id'],
    ['fimSep', 'fim_sep_token_id'],
    ['fimPre', 'prefix_token_id'],
    ['fimSuf', 'suffix_token_id'],
    ['fimMid', 'middle_token_id'],
  ];
  for (const [field, key] of idKeys) {
    const v = scalar(file, `tokenizer.ggml.${key}`, 'number');
    // Out-of-range ids (e.g. 0xFFFFFFFF for "none") keep the default.
    if (v !== undefined && Number.isInteger(v) && v >= 0 && v < n) special[field] = v;
  }

  // Well-known control texts become control tokens; unset EOT / FIM ids are found by text.
  const byText = (texts: string[]): number | null => {
    for (const t of texts) {
      const id = ids.get(t);
      if (id !== undefined) return id;
    }
    return null;
  };
  const markControl = (id: number | null): void => {
    if (id !== null) attrs[id] = (attrs[id]! & ~(TokenAttr.NORMAL | TokenAttr.USER_DEFINED)) | TokenAttr.CONTROL;
  };
  if (special.eot === null) special.eot = byText(EOT_TEXTS);
  markControl(special.eot);
  if (special.eom === null) special.eom = byText(['<|eom_id|>']);
  markControl(special.eom);
  for (const [field, texts] of Object.entries(FIM_TEXTS)) {
    const f = field as keyof SpecialIds;
    if (special[f] === null) special[f] = byText(texts);
    markControl(special[f]);
  }
  const eogIds = new Set<number>();
  for (const id of [special.fimPad, special.fimRep, special.fimSep, special.eos, special.eot, special.eom]) {
    if (id !== null) eogIds.add(id);
  }
  for (const t of EOG_TEXTS) {
    const id = ids.get(t);
    if (id !== undefined) {
      eogIds.add(id);
      markControl(id);
    }
  }

  const pre_ = pre;
  let addBos = model === 'llama' || ['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'tekken', 'chameleon'].includes(pre_);
  let addEos = false;
  let addSpacePrefix = model === 'llama';
  addBos = scalar(file, 'tokenizer.ggml.add_bos_token', 'boolean') ?? addBos;
  addEos = scalar(file, 'tokenizer.ggml.add_eos_token', 'boolean') ?? addEos;
  addSpacePrefix = scalar(file, 'tokenizer.ggml.add_space_prefix', 'boolean') ?? addSpacePrefix;

  const specialTokens: number[] = [];
  for (let i = 0; i < n; i++) {
    if (attrs[i]! & (TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)) specialTokens.push(i);
  }
  // Longest first, so "<|end|>" never splits "<|endoftext|>"; ties by id for determinism.
  specialTokens.sort((a, b) => tokens[b]!.length - tokens[a]!.length || a - b);

  // Phi-3 vocabularies: special tokens swallow the whitespace after them (as its HF tokenizer.json says).
  if (modelName.includes('phi-3') || modelName.includes('phi3')) {
    for (const id of specialTokens) attrs[id]! |= TokenAttr.RSTRIP;
    const eos = ids.get('</s>');
    if (eos !== undefined) attrs[eos]! |= TokenAttr.RSTRIP;
    for (const t of ['<unk>', '<s>', '<|endoftext|>']) {
      const id = ids.get(t);
      if (id !== undefined) attrs[id]! &= ~TokenAttr.RSTRIP;
    }
  }

  return {
    model,
    pre,
    modelName,
    tokens,
    scores,
    attrs,
    ids,
    merges,
    special,
    eogIds,
    addBos,
    addEos,
    addSpacePrefix,
    specialTokens,
  };
}

/** A piece of text to tokenize, or an id matched as a special token. */
export type Fragment = string | number;

// Whitespace as C isspace() sees it (what llama.cpp strips around LSTRIP/RSTRIP tokens).
const isAsciiSpace = (c: string): boolean => c === ' ' || (c >= '\t' && c <= '\r');

/**
 * Splits text around special tokens: control and unknown tokens only when `parseSpecial`, user-defined
 * tokens always. Longer tokens are matched first; LSTRIP / RSTRIP tokens swallow adjacent whitespace.
 */
export function partitionSpecial(vocab: GgufVocab, text: string, parseSpecial: boolean): Fragment[] {
  let frags: Fragment[] = text.length ? [text] : [];
  for (const id of vocab.specialTokens) {
    const attr = vocab.attrs[id]!;
    if (!parseSpecial && attr & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) continue;
    const needle = vocab.tokens[id]!;
    if (!frags.some((f) => typeof f === 'string' && f.includes(needle))) continue;
    const next: Fragment[] = [];
    for (const frag of frags) {
      if (typeof frag !== 'string') {
        next.push(frag);
        continue;
      }
      let pos = 0;
      for (;;) {
        const at = frag.indexOf(needle, pos);
        if (at < 0) break;
        let leftEnd = at;
        if (attr & TokenAttr.LSTRIP) while (leftEnd > pos && isAsciiSpace(frag[leftEnd - 1]!)) leftEnd--;
        if (leftEnd > pos) next.push(frag.slice(pos, leftEnd));
        next.push(id);
        pos = at + needle.length;
        if (attr & TokenAttr.RSTRIP) while (pos < frag.length && isAsciiSpace(frag[pos]!)) pos++;
      }
      if (pos < frag.length) next.push(pos === 0 ? frag : frag.slice(pos));
    }
    frags = next;
  }
  return frags;
}
