/**
 * llama2.c checkpoints (Karpathy's `run.c` format) and their `tokenizer.bin` vocabularies.
 *
 * Model file, two layouts (all little-endian):
 *  - legacy ("version 0"): 7 int32 — dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
 *    vocab_size < 0 means a separate classifier follows. Then float32 tensors: token embedding [vocab, dim],
 *    attention norms [L, dim], wq [L, H*hd, dim], wk [L, KV*hd, dim], wv [L, KV*hd, dim], wo [L, dim, H*hd],
 *    ffn norms [L, dim], w1 (gate) [L, hidden, dim], w2 (down) [L, dim, hidden], w3 (up) [L, hidden, dim],
 *    final norm [dim], two RoPE tables [seq_len, hd/2] (skipped), then the classifier [vocab, dim] if separate.
 *  - version 1: a 256-byte header — magic 0x616b3432 ("ak42"), int32 version = 1, the 7 int32 above (vocab
 *    positive), uint8 shared_classifier, zero padding. Then float32: attention norms [L, dim], ffn norms
 *    [L, dim], final norm [dim], token embedding, wq, wk, wv, wo, w1, w2, w3 (stacked over layers), and the
 *    classifier if not shared. (Version 2, int8 groups, is not supported.)
 * RoPE pairs adjacent dimensions (run.c rotates (v[i], v[i+1])), theta 10000; RMSNorm eps 1e-5.
 *
 * Tokenizer file: int32 max_token_length, then per token: float32 score, int32 byte length, the bytes. Ids 0,
 * 1 and 2 are <unk>, BOS and EOS; pieces use plain spaces (SentencePiece's U+2581 replaced), byte tokens are
 * written `<0xXX>`. run.c encodes with a leading space and score-ordered pair merges: the SentencePiece-style
 * encoder of the GGUF vocabularies does the same, so the vocabulary is turned into GGUF tokenizer metadata.
 */
import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import path from 'node:path';
import { ModelFormatError } from '../errors.js';
import type { GgufFile, GgufValue } from './gguf.js';
import { GgufValueType } from './gguf.js';

export const LLAMA2C_MAGIC = 0x616b3432;

export interface Llama2cHeader {
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** Byte offset of the first tensor. */
  dataOffset: number;
  fileSize: number;
}

export interface Llama2cTensor {
  /** Canonical name (core/include/hwkv_model.h). */
  name: string;
  /** Descriptive name used in messages (e.g. `layers.3.wq`). */
  source: string;
  shape: number[];
  offset: number;
  nbytes: number;
}

function readAt(fd: number, file: string, offset: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  const got = readSync(fd, b, 0, n, offset);
  if (got !== n) throw new ModelFormatError('FORMAT_TRUNCATED', file, `file ends at byte ${offset + got}, expected ${n} bytes at ${offset}`);
  return b;
}

/** True when the first bytes look like a llama2.c checkpoint (either layout) rather than GGUF. */
export function looksLikeLlama2c(head: Buffer): boolean {
  if (head.length < 28) return false;
  if (head.toString('latin1', 0, 4) === 'GGUF') return false;
  if (head.readUInt32LE(0) === LLAMA2C_MAGIC) return true;
  const v = [0, 1, 2, 3, 4, 5, 6].map((i) => head.readInt32LE(4 * i));
  const [dim, hidden, layers, heads, kv, vocab, seq] = v as [number, number, number, number, number, number, number];
  return dim > 0 && dim <= 1 << 16 && hidden > 0 && hidden <= 1 << 18 && layers > 0 && layers <= 1024 && heads > 0 &&
    kv > 0 && kv <= heads && dim % heads === 0 && vocab !== 0 && Math.abs(vocab) <= 1 << 22 && seq > 0 && seq <= 1 << 22;
}

/** Reads and validates the header; checks that the file holds every tensor the header implies. */
export function readLlama2cHeader(file: string): { header: Llama2cHeader; tensors: Llama2cTensor[] } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new ModelFormatError('FORMAT_IO', file, `cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 28) throw new ModelFormatError('FORMAT_TRUNCATED', file, `${fileSize} bytes is too short for a llama2.c header (28)`);
    const head = readAt(fd, file, 0, Math.min(256, fileSize));
    let version: 0 | 1;
    let p: number[];
    let shared: boolean;
    let dataOffset: number;
    if (head.readUInt32LE(0) === LLAMA2C_MAGIC) {
      if (head.length < 256) throw new ModelFormatError('FORMAT_TRUNCATED', file, 'llama2.c version-1 header needs 256 bytes');
      const ver = head.readInt32LE(4);
      if (ver !== 1) {
        throw new ModelFormatError('FORMAT_UNSUPPORTED_VERSION', file, `llama2.c checkpoint version ${ver} is not supported (only the float32 layouts: legacy and version 1)`);
      }
      version = 1;
      p = [0, 1, 2, 3, 4, 5, 6].map((i) => head.readInt32LE(8 + 4 * i));
      shared = head.readUInt8(36) !== 0;
      dataOffset = 256;
    } else {
      if (!looksLikeLlama2c(head)) throw new ModelFormatError('FORMAT_BAD_MAGIC', file, 'not a GGUF file and not a llama2.c checkpoint (implausible header)');
      version = 0;
      p = [0, 1, 2, 3, 4, 5, 6].map((i) => head.readInt32LE(4 * i));
      shared = p[5]! > 0;
      p[5] = Math.abs(p[5]!);
      dataOffset = 28;
    }
    const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen] = p as [number, number, number, number, number, number, number];
    const bad = (what: string) => new ModelFormatError('FORMAT_INVALID', file, `llama2.c header: ${what}`);
    if ([dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen].some((x) => !(x > 0))) throw bad(`non-positive size in [${p.join(', ')}]`);
    if (dim % nHeads !== 0) throw bad(`dim ${dim} is not a multiple of n_heads ${nHeads}`);
    if (nHeads % nKvHeads !== 0) throw bad(`n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
    const hd = dim / nHeads;
    if (hd % 2 !== 0) throw bad(`head size ${hd} is odd (RoPE needs pairs)`);
    const header: Llama2cHeader = { version, dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier: shared, dataOffset, fileSize };

    const tensors: Llama2cTensor[] = [];
    let off = dataOffset;
    const kvDim = nKvHeads * hd;
    const take = (name: string, source: string, shape: number[]) => {
      const nbytes = shape.reduce((a, b) => a * b, 1) * 4;
      tensors.push({ name, source, shape, offset: off, nbytes });
      off += nbytes;
    };
    const stacked = (canon: string, src: string, shape: number[]) => {
      for (let l = 0; l < nLayers; l++) take(`blk.${l}.${canon}`, `layers.${l}.${src}`, shape);
    };
    if (version === 0) {
      take('tok_embd', 'token_embedding_table', [vocabSize, dim]);
      stacked('attn_norm', 'rms_att_weight', [dim]);
      stacked('attn_q', 'wq', [dim, dim]);
      stacked('attn_k', 'wk', [kvDim, dim]);
      stacked('attn_v', 'wv', [kvDim, dim]);
      stacked('attn_output', 'wo', [dim, dim]);
      stacked('ffn_norm', 'rms_ffn_weight', [dim]);
      stacked('ffn_gate', 'w1', [hiddenDim, dim]);
      stacked('ffn_down', 'w2', [dim, hiddenDim]);
      stacked('ffn_up', 'w3', [hiddenDim, dim]);
      take('output_norm', 'rms_final_weight', [dim]);
      off += 2 * seqLen * (hd / 2) * 4; // freq_cis_real, freq_cis_imag (unused: RoPE is computed)
    } else {
      stacked('attn_norm', 'attention_norm', [dim]);
      stacked('ffn_norm', 'ffn_norm', [dim]);
      take('output_norm', 'norm', [dim]);
      take('tok_embd', 'tok_embeddings', [vocabSize, dim]);
      stacked('attn_q', 'wq', [dim, dim]);
      stacked('attn_k', 'wk', [kvDim, dim]);
      stacked('attn_v', 'wv', [kvDim, dim]);
      stacked('attn_output', 'wo', [dim, dim]);
      stacked('ffn_gate', 'w1', [hiddenDim, dim]);
      stacked('ffn_down', 'w2', [dim, hiddenDim]);
      stacked('ffn_up', 'w3', [hiddenDim, dim]);
    }
    if (!shared) take('output', 'wcls', [vocabSize, dim]);
    if (off > fileSize) {
      const missing = tensors.find((t) => t.offset + t.nbytes > fileSize)!;
      throw new ModelFormatError('FORMAT_TRUNCATED', file, `file has ${fileSize} bytes but tensor '${missing.source}' ends at byte ${missing.offset + missing.nbytes} (${off} needed)`);
    }
    return { header, tensors };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a llama2.c `tokenizer.bin` and returns it as GGUF tokenizer metadata (model 'llama', tokens with U+2581
 * for spaces, scores, token types), ready for the GGUF SentencePiece-style tokenizer.
 */
export function readLlama2cTokenizer(file: string, vocabSize: number, modelFile: string): GgufFile {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new ModelFormatError('FORMAT_IO', file, `cannot open tokenizer: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let buf: Buffer;
  try {
    const size = fstatSync(fd).size;
    if (size > 64 << 20) throw new ModelFormatError('FORMAT_LIMIT_EXCEEDED', file, `${size} bytes is too large for a llama2.c tokenizer`);
    buf = readAt(fd, file, 0, size);
  } finally {
    closeSync(fd);
  }
  if (buf.length < 4) throw new ModelFormatError('FORMAT_TRUNCATED', file, 'llama2.c tokenizer: no header');
  const maxLen = buf.readInt32LE(0);
  if (!(maxLen > 0 && maxLen < 1 << 16)) throw new ModelFormatError('FORMAT_INVALID', file, `llama2.c tokenizer: implausible max_token_length ${maxLen}`);
  const tokens: string[] = [];
  const scores = new Float32Array(vocabSize);
  const types = new Int32Array(vocabSize);
  let o = 4;
  const dec = new TextDecoder('utf-8', { fatal: false });
  for (let i = 0; i < vocabSize; i++) {
    if (o + 8 > buf.length) throw new ModelFormatError('FORMAT_TRUNCATED', file, `llama2.c tokenizer: ends after ${i} of ${vocabSize} tokens (the model ${path.basename(modelFile)} has ${vocabSize})`);
    scores[i] = buf.readFloatLE(o);
    const len = buf.readInt32LE(o + 4);
    o += 8;
    if (len < 0 || len > maxLen || o + len > buf.length) throw new ModelFormatError('FORMAT_INVALID', file, `llama2.c tokenizer: token ${i} has length ${len} (max_token_length ${maxLen})`);
    const text = dec.decode(buf.subarray(o, o + len));
    o += len;
    if (i === 0) types[i] = 2; // unknown
    else if (i === 1 || i === 2) types[i] = 3; // BOS, EOS (control)
    else if (/^<0x[0-9A-Fa-f]{2}>$/.test(text)) types[i] = 6; // byte
    else types[i] = 1;
    tokens.push(types[i] === 1 ? text.replaceAll(' ', '\u2581') : text);
  }
  if (o !== buf.length) {
    throw new ModelFormatError('FORMAT_INVALID', file, `llama2.c tokenizer: ${buf.length - o} bytes left after ${vocabSize} tokens (made for another vocabulary size?)`);
  }
  const metadata = new Map<string, GgufValue>([
    ['general.name', path.basename(modelFile)],
    ['tokenizer.ggml.model', 'llama'],
    ['tokenizer.ggml.tokens', tokens],
    ['tokenizer.ggml.scores', scores],
    ['tokenizer.ggml.token_type', types],
    ['tokenizer.ggml.unknown_token_id', 0],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
    ['tokenizer.ggml.add_bos_token', true],
    ['tokenizer.ggml.add_eos_token', false],
    ['tokenizer.ggml.add_space_prefix', true],
  ] as [string, GgufValue][]);
  const types2 = new Map<string, GgufValueType>();
  return { path: file, version: 3, metadata, metadataTypes: types2, metadataArrayTypes: new Map(), tensors: [], alignment: 32, dataOffset: 0, fileSize: buf.length };
}

/**
 * The tokenizer file of a llama2.c checkpoint: `explicit` when given; otherwise, in the model's folder,
 * `tokenizer.bin` or the only `tok*.bin` file. Returns null when none is found.
 */
export function findLlama2cTokenizer(modelFile: string, explicit?: string): string | null {
  if (explicit) return explicit;
  const dir = path.dirname(modelFile);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  if (names.includes('tokenizer.bin')) return path.join(dir, 'tokenizer.bin');
  const toks = names.filter((n) => /^tok.*\.bin$/.test(n) && path.join(dir, n) !== modelFile);
  return toks.length === 1 ? path.join(dir, toks[0]!) : null;
}
