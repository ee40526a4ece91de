/**
 * Model sources -> one normalised description the core can load: the config, the canonical tensor list
 * (names and shapes of core/include/hwkv_model.h, with the file and byte range of each tensor's data),
 * the tokenizer and the chat template. Only headers are read here; the core reads the weights.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { ModelFormatError } from '../errors.js';
import { readGguf, type GgufFile } from '../formats/gguf.js';
import { readSafetensorsIndex } from '../formats/safetensors.js';
import { findLlama2cTokenizer, readLlama2cHeader, readLlama2cTokenizer } from '../formats/llama2c.js';
import { configFromGguf, configFromHf, type ModelConfig } from './config.js';

/** hwkv_wtype values (GGML type ids). */
export const WTYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
const WTYPE_NAMES: Record<number, string> = { 0: 'F32', 1: 'F16', 8: 'Q8_0', 30: 'BF16' };

export interface TensorDesc {
  /** Canonical name (hwkv_model.h). */
  name: string;
  /** Name in the checkpoint. */
  source: string;
  type: number;
  /** Shape, outermost first. */
  shape: number[];
  file: string;
  offset: number;
  nbytes: number;
}

export interface ModelSource {
  format: 'gguf' | 'safetensors' | 'llama2c';
  /** The file (GGUF, llama2.c) or folder (Hugging Face) given. */
  path: string;
  config: ModelConfig;
  tensors: TensorDesc[];
  /** Whether the LM head is the embedding matrix. */
  tied: boolean;
  gguf?: GgufFile;
  /** llama2.c checkpoints: the tokenizer.bin vocabulary as GGUF tokenizer metadata (absent when none was found). */
  llama2cVocab?: GgufFile;
  /** Folder of a Hugging Face checkpoint. */
  folder?: string;
  chatTemplate?: string;
  /** generation_config.json, when present. */
  generationConfig?: Record<string, unknown>;
  /** Total bytes of tensor data. */
  weightBytes: number;
}

const HF_LAYER_MAP: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm',
  'self_attn.q_proj.weight': 'attn_q',
  'self_attn.k_proj.weight': 'attn_k',
  'self_attn.v_proj.weight': 'attn_v',
  'self_attn.o_proj.weight': 'attn_output',
  'self_attn.q_proj.bias': 'attn_q_bias',
  'self_attn.k_proj.bias': 'attn_k_bias',
  'self_attn.v_proj.bias': 'attn_v_bias',
  'self_attn.q_norm.weight': 'attn_q_norm',
  'self_attn.k_norm.weight': 'attn_k_norm',
  'post_attention_layernorm.weight': 'ffn_norm',
  'mlp.gate_proj.weight': 'ffn_gate',
  'mlp.up_proj.weight': 'ffn_up',
  'mlp.down_proj.weight': 'ffn_down',
};

/** Tensors that exist in some checkpoints but are not used by the forward pass. */
const HF_IGNORED = [/rotary_emb\.inv_freq$/, /\.o_proj\.bias$/];

function hfCanonical(name: string): string | null {
  if (name === 'model.embed_tokens.weight') return 'tok_embd';
  if (name === 'model.norm.weight') return 'output_norm';
  if (name === 'lm_head.weight') return 'output';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const c = HF_LAYER_MAP[m[2]!];
    if (c) return `blk.${m[1]}.${c}`;
  }
  return null;
}

/** Checkpoint name of a canonical tensor name (for messages). */
function hfName(canonical: string): string {
  if (canonical === 'tok_embd') return 'model.embed_tokens.weight';
  if (canonical === 'output_norm') return 'model.norm.weight';
  if (canonical === 'output') return 'lm_head.weight';
  const m = /^blk\.(\d+)\.(.+)$/.exec(canonical);
  const hf = m ? Object.keys(HF_LAYER_MAP).find((k) => HF_LAYER_MAP[k] === m[2]) : undefined;
  return m && hf ? `model.layers.${m[1]}.${hf}` : canonical;
}

function ggufName(canonical: string): string {
  if (canonical === 'tok_embd') return 'token_embd.weight';
  const b = /^(.+)_bias$/.exec(canonical);
  return b ? `${b[1]}.bias` : `${canonical}.weight`;
}

function ggufCanonical(name: string): string {
  let n = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
  if (n === 'token_embd') return 'tok_embd';
  const b = /^(blk\.\d+\.attn_[qkv])\.bias$/.exec(n);
  if (b) return `${b[1]}_bias`;
  n = n.replace(/\.bias$/, '_bias');
  return n;
}

const HF_DTYPES: Record<string, number> = { F32: WTYPE.F32, F16: WTYPE.F16, BF16: WTYPE.BF16 };

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ModelFormatError('FORMAT_INVALID', file, `cannot read JSON: ${(e as Error).message}`);
  }
}

function loadHf(folder: string): ModelSource {
  const cfgPath = path.join(folder, 'config.json');
  if (!existsSync(cfgPath)) throw new ModelFormatError('FORMAT_INVALID', folder, 'not a model folder: config.json is missing');
  const raw = readJson(cfgPath);
  const genPath = path.join(folder, 'generation_config.json');
  const generationConfig = existsSync(genPath) ? readJson(genPath) : undefined;
  const config = configFromHf({ ...raw, _generation: generationConfig ?? {} }, cfgPath);
  const index = readSafetensorsIndex(folder);
  const tensors: TensorDesc[] = [];
  let weightBytes = 0;
  for (const [name, { shard, info }] of index.tensors) {
    const canon = hfCanonical(name);
    if (!canon) {
      if (HF_IGNORED.some((r) => r.test(name))) continue;
      throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', shard.path, `unexpected tensor '${name}' for architecture ${config.architecture}`);
    }
    const type = HF_DTYPES[info.dtype];
    if (type === undefined) {
      throw new ModelFormatError('FORMAT_MISSING_TENSOR', shard.path, `tensor '${name}' has dtype ${info.dtype}; weights must be F32, F16 or BF16`);
    }
    tensors.push({ name: canon, source: name, type, shape: info.shape.slice(), file: shard.path, offset: info.offset, nbytes: info.byteSize });
    weightBytes += info.byteSize;
  }
  let tied = config.tiedEmbeddings;
  const hasOutput = tensors.some((t) => t.name === 'output');
  if (hasOutput) tied = false;
  else if (!tied) throw new ModelFormatError('FORMAT_MISSING_TENSOR', folder, "missing tensor 'lm_head.weight' (and tie_word_embeddings is false)");
  checkTensors(config, tensors, tied, folder, hfName);
  let chatTemplate: string | undefined;
  const tcPath = path.join(folder, 'tokenizer_config.json');
  if (existsSync(tcPath)) {
    const tc = readJson(tcPath);
    if (typeof tc.chat_template === 'string') chatTemplate = tc.chat_template;
  }
  const jinjaPath = path.join(folder, 'chat_template.jinja');
  if (!chatTemplate && existsSync(jinjaPath)) chatTemplate = readFileSync(jinjaPath, 'utf8');
  return { format: 'safetensors', path: folder, folder, config, tensors, tied, chatTemplate, generationConfig, weightBytes };
}

function loadGgufSource(file: string): ModelSource {
  const g = readGguf(file);
  const meta: Record<string, unknown> = {};
  for (const [k, v] of g.metadata) meta[k] = v;
  const tensors: TensorDesc[] = [];
  let weightBytes = 0;
  let vocabFromTensor: number | undefined;
  for (const t of g.tensors) {
    const canon = ggufCanonical(t.name);
    if (!WTYPE_NAMES[t.type]) {
      throw new ModelFormatError(
        'FORMAT_UNSUPPORTED_MODEL',
        file,
        `tensor '${t.name}' has type ${t.typeName}; supported: F32, F16, BF16, Q8_0`,
      );
    }
    if (canon === 'rope_freqs' || canon === 'rope_factors_long' || canon === 'rope_factors_short') continue;
    const shape = t.dims.map(Number).reverse();
    if (canon === 'tok_embd') vocabFromTensor = shape[0];
    tensors.push({ name: canon, source: t.name, type: t.type, shape, file, offset: t.offset, nbytes: t.byteSize });
    weightBytes += t.byteSize;
  }
  const config = configFromGguf(meta, vocabFromTensor, file);
  const tied = !tensors.some((t) => t.name === 'output');
  config.tiedEmbeddings = tied;
  checkTensors(config, tensors, tied, file, ggufName);
  const tpl = meta['tokenizer.chat_template'];
  return {
    format: 'gguf',
    path: file,
    config,
    tensors,
    tied,
    gguf: g,
    chatTemplate: typeof tpl === 'string' ? tpl : undefined,
    weightBytes,
  };
}

function loadLlama2cSource(file: string, tokenizerPath?: string): ModelSource {
  const { header: h, tensors: raw } = readLlama2cHeader(file);
  const headDim = h.dim / h.nHeads;
  const config: ModelConfig = {
    architecture: 'llama',
    nLayer: h.nLayers,
    nEmbd: h.dim,
    nHead: h.nHeads,
    nKvHead: h.nKvHeads,
    headDim,
    nFf: h.hiddenDim,
    nVocab: h.vocabSize,
    rmsNormEps: 1e-5,
    qkvBias: false,
    qkNorm: false,
    tiedEmbeddings: h.sharedClassifier,
    // run.c rotates adjacent pairs (v[i], v[i+1]) with theta 10000
    rope: { headDim, rotaryDim: headDim, style: 'normal', theta: 10000, scaling: { type: 'none' } },
    ropeAttentionFactor: 1,
    contextLength: h.seqLen,
    bosTokenId: 1,
    eosTokenIds: [2],
    dtype: 'float32',
  };
  const tensors: TensorDesc[] = raw.map((t) => ({ name: t.name, source: t.source, type: WTYPE.F32, shape: t.shape, file, offset: t.offset, nbytes: t.nbytes }));
  checkTensors(config, tensors, h.sharedClassifier, file, (c) => c);
  const tokPath = findLlama2cTokenizer(file, tokenizerPath);
  const llama2cVocab = tokPath ? readLlama2cTokenizer(tokPath, h.vocabSize, file) : undefined;
  const weightBytes = tensors.reduce((a, t) => a + t.nbytes, 0);
  return { format: 'llama2c', path: file, config, tensors, tied: h.sharedClassifier, llama2cVocab, weightBytes };
}

function isGgufFile(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === 'GGUF';
  } catch {
    return true; // let the GGUF reader report the I/O problem
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const VECTOR_TYPES = new Set<number>([WTYPE.F32, WTYPE.F16, WTYPE.BF16]);

/**
 * The tensors the architecture needs (hwkv_model.h), each exactly once with its shape and a usable type —
 * checked here so that a bad checkpoint is a ModelFormatError naming the file and the tensor, before any
 * backend memory is allocated.
 */
function checkTensors(c: ModelConfig, tensors: TensorDesc[], tied: boolean, file: string, sourceName: (canonical: string) => string): void {
  const want = new Map<string, { shape: number[]; vector: boolean }>();
  const mat = (name: string, rows: number, cols: number) => want.set(name, { shape: [rows, cols], vector: false });
  const vec = (name: string, n: number) => want.set(name, { shape: [n], vector: true });
  const qDim = c.nHead * c.headDim;
  const kvDim = c.nKvHead * c.headDim;
  mat('tok_embd', c.nVocab, c.nEmbd);
  vec('output_norm', c.nEmbd);
  if (!tied) mat('output', c.nVocab, c.nEmbd);
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}.`;
    vec(`${b}attn_norm`, c.nEmbd);
    mat(`${b}attn_q`, qDim, c.nEmbd);
    mat(`${b}attn_k`, kvDim, c.nEmbd);
    mat(`${b}attn_v`, kvDim, c.nEmbd);
    mat(`${b}attn_output`, c.nEmbd, qDim);
    if (c.qkvBias) {
      vec(`${b}attn_q_bias`, qDim);
      vec(`${b}attn_k_bias`, kvDim);
      vec(`${b}attn_v_bias`, kvDim);
    }
    if (c.qkNorm) {
      vec(`${b}attn_q_norm`, c.headDim);
      vec(`${b}attn_k_norm`, c.headDim);
    }
    vec(`${b}ffn_norm`, c.nEmbd);
    mat(`${b}ffn_gate`, c.nFf, c.nEmbd);
    mat(`${b}ffn_up`, c.nFf, c.nEmbd);
    mat(`${b}ffn_down`, c.nEmbd, c.nFf);
  }
  const seen = new Set<string>();
  for (const t of tensors) {
    const w = want.get(t.name);
    if (!w) throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', file, `unexpected tensor '${t.source}' for a ${c.nLayer}-layer ${c.architecture} model`);
    if (seen.has(t.name)) throw new ModelFormatError('FORMAT_INVALID', file, `tensor '${t.source}' appears twice`);
    seen.add(t.name);
    const shape = w.vector && t.shape.length === 2 && t.shape[0] === 1 ? t.shape.slice(1) : t.shape;
    if (shape.length !== w.shape.length || shape.some((d, j) => d !== w.shape[j])) {
      throw new ModelFormatError('FORMAT_MISSING_TENSOR', file, `tensor '${t.source}' has shape [${t.shape.join(', ')}], expected [${w.shape.join(', ')}] for this config`);
    }
    if (w.vector && !VECTOR_TYPES.has(t.type)) {
      throw new ModelFormatError('FORMAT_MISSING_TENSOR', file, `tensor '${t.source}' is ${WTYPE_NAMES[t.type] ?? t.type}; vectors must be F32, F16 or BF16`);
    }
    if (t.type === WTYPE.Q8_0 && shape[shape.length - 1]! % 32 !== 0) {
      throw new ModelFormatError('FORMAT_MISSING_TENSOR', file, `tensor '${t.source}' is Q8_0 with rows of ${shape[shape.length - 1]}, not a multiple of 32`);
    }
  }
  for (const name of want.keys()) {
    if (!seen.has(name)) throw new ModelFormatError('FORMAT_MISSING_TENSOR', file, `missing tensor '${sourceName(name)}' (needed by a ${c.nLayer}-layer ${c.architecture} model)`);
  }
}

export interface ModelSourceOptions {
  /** llama2.c checkpoints: the tokenizer.bin to use (default: tokenizer.bin or the only tok*.bin beside the model). */
  tokenizer?: string;
}

/** Read a GGUF file, a llama2.c checkpoint (.bin) or a Hugging Face folder (config.json + *.safetensors). */
export function loadModelSource(pathOrFolder: string, options: ModelSourceOptions = {}): ModelSource {
  if (typeof pathOrFolder !== 'string' || pathOrFolder.length === 0) {
    throw new ModelFormatError('FORMAT_IO', String(pathOrFolder), 'a model path (GGUF file or Hugging Face folder) is required');
  }
  let st;
  try {
    st = statSync(pathOrFolder);
  } catch (e) {
    throw new ModelFormatError('FORMAT_IO', pathOrFolder, `cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (st.isDirectory()) return loadHf(pathOrFolder);
  if (pathOrFolder.endsWith('.safetensors')) return loadHf(path.dirname(pathOrFolder));
  if (!isGgufFile(pathOrFolder) && pathOrFolder.endsWith('.bin')) return loadLlama2cSource(pathOrFolder, options.tokenizer);
  return loadGgufSource(pathOrFolder);
}
