/**
 * Model configuration: one normalised description of a decoder-only transformer, read from a Hugging Face
 * config.json (classic `rope_theta`/`rope_scaling`/`torch_dtype` keys and the newer `rope_parameters`/`dtype`
 * keys) or from GGUF metadata (`<arch>.*` keys).
 */
import { ModelFormatError } from '../errors.js';
import type { RopeParams, RopeScaling } from '../backend/types.js';

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3';
export const ARCHITECTURES: readonly Architecture[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

export interface ModelConfig {
  architecture: Architecture;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nKvHead: number;
  headDim: number;
  nFf: number;
  nVocab: number;
  rmsNormEps: number;
  /** Qwen2: bias on the q/k/v projections. */
  qkvBias: boolean;
  /** Qwen3: RMSNorm over head_dim on q and k before RoPE. */
  qkNorm: boolean;
  tiedEmbeddings: boolean;
  rope: RopeParams;
  /** YaRN attention factor (mscale) applied to q and k; 1 otherwise. */
  ropeAttentionFactor: number;
  contextLength: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Weight dtype as declared by the checkpoint (informational). */
  dtype: string;
}

type Json = Record<string, unknown>;

function num(cfg: Json, key: string, file: string, fallback?: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelFormatError('FORMAT_INVALID', file, `missing required key '${key}'`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelFormatError('FORMAT_INVALID', file, `key '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function posInt(cfg: Json, key: string, file: string, fallback?: number): number {
  const v = num(cfg, key, file, fallback);
  if (!Number.isInteger(v) || v < 1) throw new ModelFormatError('FORMAT_INVALID', file, `key '${key}' must be a positive integer, got ${v}`);
  return v;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** Map HF rope settings (either key style) to our RopeScaling; returns [theta, scaling, rotary fraction]. */
function hfRope(cfg: Json, file: string): { theta: number; scaling: RopeScaling } {
  const params = (cfg.rope_parameters ?? null) as Json | null;
  const legacy = (cfg.rope_scaling ?? null) as Json | null;
  const theta = params && typeof params.rope_theta === 'number' ? params.rope_theta : num(cfg, 'rope_theta', file, 10000);
  const s = params ?? legacy;
  if (!s) return { theta, scaling: { type: 'none' } };
  const type = String(s.rope_type ?? s.type ?? 'default');
  const f = (k: string, d?: number): number => {
    const v = s[k];
    if (typeof v === 'number') return v;
    if (d !== undefined) return d;
    throw new ModelFormatError('FORMAT_INVALID', file, `rope scaling '${type}' needs '${k}'`);
  };
  const origFromCfg = typeof cfg.max_position_embeddings === 'number' ? cfg.max_position_embeddings : undefined;
  switch (type) {
    case 'default':
      return { theta, scaling: { type: 'none' } };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: f('factor') } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: f('factor'),
          lowFreqFactor: f('low_freq_factor'),
          highFreqFactor: f('high_freq_factor'),
          originalMaxPosition: f('original_max_position_embeddings'),
        },
      };
    case 'yarn':
      return {
        theta,
        scaling: {
          type: 'yarn',
          factor: f('factor'),
          originalMaxPosition: f('original_max_position_embeddings', origFromCfg),
          betaFast: f('beta_fast', 32),
          betaSlow: f('beta_slow', 1),
          truncate: s.truncate === false ? false : true,
        },
      };
    default:
      throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', file, `unsupported rope scaling type '${type}' (supported: default, linear, llama3, yarn)`);
  }
}

/** YaRN attention factor as transformers computes it (0.1·ln(factor) + 1, or the explicit value). */
export function yarnAttentionFactor(s: RopeScaling, explicit?: number): number {
  if (s.type !== 'yarn') return 1;
  if (explicit !== undefined) return explicit;
  return s.factor <= 1 ? 1 : 0.1 * Math.log(s.factor) + 1;
}

export function configFromHf(cfg: Json, file = 'config.json'): ModelConfig {
  const modelType = String(cfg.model_type ?? '');
  if (!(ARCHITECTURES as readonly string[]).includes(modelType)) {
    throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', file, `unknown architecture '${modelType}' (model_type); supported: ${ARCHITECTURES.join(', ')}`);
  }
  const architecture = modelType as Architecture;
  const nEmbd = posInt(cfg, 'hidden_size', file);
  const nHead = posInt(cfg, 'num_attention_heads', file);
  const nKvHead = posInt(cfg, 'num_key_value_heads', file, nHead);
  const headDim = posInt(cfg, 'head_dim', file, Math.floor(nEmbd / nHead));
  if (nHead % nKvHead !== 0) throw new ModelFormatError('FORMAT_INVALID', file, `num_attention_heads (${nHead}) must be a multiple of num_key_value_heads (${nKvHead})`);
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', file, `unsupported hidden_act '${String(act)}' (only silu)`);
  const { theta, scaling } = hfRope(cfg, file);
  const partial = typeof cfg.partial_rotary_factor === 'number' ? cfg.partial_rotary_factor : 1;
  let rotaryDim = Math.floor(headDim * partial);
  rotaryDim -= rotaryDim % 2;
  const params = (cfg.rope_parameters ?? cfg.rope_scaling ?? {}) as Json;
  const explicitAf = typeof params.attention_factor === 'number' ? params.attention_factor : undefined;
  const gen = (cfg._generation ?? {}) as Json;
  const eos = idList(gen.eos_token_id ?? cfg.eos_token_id);
  const bos = gen.bos_token_id ?? cfg.bos_token_id;
  return {
    architecture,
    nLayer: posInt(cfg, 'num_hidden_layers', file),
    nEmbd,
    nHead,
    nKvHead,
    headDim,
    nFf: posInt(cfg, 'intermediate_size', file),
    nVocab: posInt(cfg, 'vocab_size', file),
    rmsNormEps: num(cfg, 'rms_norm_eps', file, 1e-6),
    qkvBias: architecture === 'qwen2' || cfg.attention_bias === true,
    qkNorm: architecture === 'qwen3',
    tiedEmbeddings: cfg.tie_word_embeddings === true,
    rope: { headDim, rotaryDim, style: 'neox', theta, scaling },
    ropeAttentionFactor: yarnAttentionFactor(scaling, explicitAf),
    contextLength: num(cfg, 'max_position_embeddings', file, 4096),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: eos,
    dtype: String(cfg.dtype ?? cfg.torch_dtype ?? 'float32'),
  };
}

/** GGUF `general.architecture` values we run, and the family they map to. */
const GGUF_ARCH: Record<string, Architecture> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2', qwen3: 'qwen3' };

export function configFromGguf(meta: Record<string, unknown>, nVocabFromTensor: number | undefined, file: string): ModelConfig {
  const archName = String(meta['general.architecture'] ?? '');
  const architecture = GGUF_ARCH[archName];
  if (!architecture) {
    throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', file, `unknown architecture '${archName}' (general.architecture); supported: ${Object.keys(GGUF_ARCH).join(', ')}`);
  }
  const key = (k: string) => `${archName}.${k}`;
  const get = (k: string, d?: number): number => {
    const v = meta[key(k)];
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    if (d !== undefined) return d;
    throw new ModelFormatError('FORMAT_INVALID', file, `missing metadata '${key(k)}'`);
  };
  const nEmbd = get('embedding_length');
  const nHead = get('attention.head_count');
  const nKvHead = get('attention.head_count_kv', nHead);
  const headDim = get('attention.key_length', Math.floor(nEmbd / nHead));
  const rotaryDim = get('rope.dimension_count', headDim);
  const theta = get('rope.freq_base', 10000);
  let scaling: RopeScaling = { type: 'none' };
  const st = meta[key('rope.scaling.type')];
  if (st === 'linear') scaling = { type: 'linear', factor: get('rope.scaling.factor') };
  else if (st === 'yarn') {
    scaling = {
      type: 'yarn',
      factor: get('rope.scaling.factor'),
      originalMaxPosition: get('rope.scaling.original_context_length'),
      betaFast: get('rope.scaling.yarn_beta_fast', 32),
      betaSlow: get('rope.scaling.yarn_beta_slow', 1),
    };
  } else if (st !== undefined && st !== 'none') {
    throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', file, `unsupported rope scaling type '${String(st)}'`);
  }
  const tokens = meta['tokenizer.ggml.tokens'];
  const nVocab = get('vocab_size', nVocabFromTensor ?? (Array.isArray(tokens) ? tokens.length : undefined));
  const eos = meta['tokenizer.ggml.eos_token_id'];
  const bos = meta['tokenizer.ggml.bos_token_id'];
  return {
    architecture,
    nLayer: get('block_count'),
    nEmbd,
    nHead,
    nKvHead,
    headDim,
    nFf: get('feed_forward_length'),
    nVocab,
    rmsNormEps: get('attention.layer_norm_rms_epsilon', 1e-5),
    qkvBias: architecture === 'qwen2',
    qkNorm: architecture === 'qwen3',
    tiedEmbeddings: false,
    // GGUF llama files pair adjacent dimensions (GGML "normal"); qwen2/qwen3 GGUFs keep rotate-half (NEOX).
    rope: { headDim, rotaryDim, style: architecture === 'llama' || architecture === 'mistral' ? 'normal' : 'neox', theta, scaling },
    ropeAttentionFactor: yarnAttentionFactor(scaling),
    contextLength: get('context_length', 4096),
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenIds: typeof eos === 'number' ? [eos] : [],
    dtype: 'gguf',
  };
}
