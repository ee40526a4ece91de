/**
 * Float64 reference forward pass of a Llama/Qwen2 decoder (Hugging Face semantics: rotate-half rope on the
 * checkpoint's own rows), for one sequence, from float weights keyed by Hugging Face tensor names.
 * Written from the model definitions, independent of the core.
 *
 * `q8Acts`: names of matrices whose matmul quantizes its input per block of 32 to int8 first (what a Q8_0
 * weight matmul does: d = max|x|/127 in float32, q = round-half-even(x * (1/d)), then
 * y = sum_b d_w[b] d_x[b] sum_j q_w q_x); the activations are rounded to float32 before quantizing, as the
 * engine holds them. The weights of those matrices must be the dequantised values d_w * q_w; their block
 * scales are recovered as max|w|/127 (exact: the block maximum is stored as q = +-127).
 */
import { roundEven } from '../helpers/quant.ts';

export interface RefWeights {
  get(name: string): { data: Float32Array; shape: number[] } | undefined;
}

export interface RefConfig {
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nKvHead: number;
  headDim: number;
  nFf: number;
  nVocab: number;
  eps: number;
  theta: number;
  qkvBias: boolean;
  tied: boolean;
}

export function refConfigFromHf(c: Record<string, unknown>): RefConfig {
  const nEmbd = c.hidden_size as number;
  const nHead = c.num_attention_heads as number;
  return {
    nLayer: c.num_hidden_layers as number,
    nEmbd,
    nHead,
    nKvHead: (c.num_key_value_heads as number) ?? nHead,
    headDim: (c.head_dim as number | undefined) ?? nEmbd / nHead,
    nFf: c.intermediate_size as number,
    nVocab: c.vocab_size as number,
    eps: c.rms_norm_eps as number,
    theta: (c.rope_theta as number) ?? 10000,
    qkvBias: c.model_type === 'qwen2',
    tied: c.tie_word_embeddings === true,
  };
}

/** y[r] = sum_i W[r, i] x[i] (+ b[r]), optionally with Q8 activation quantization. */
function matvec(w: Float32Array, nOut: number, nIn: number, x: Float64Array, q8: boolean, bias?: Float32Array): Float64Array {
  const y = new Float64Array(nOut);
  if (!q8) {
    for (let r = 0; r < nOut; r++) {
      let s = 0;
      const o = r * nIn;
      for (let i = 0; i < nIn; i++) s += w[o + i]! * x[i]!;
      y[r] = s + (bias ? bias[r]! : 0);
    }
    return y;
  }
  const nb = nIn / 32;
  const qx = new Float64Array(nIn);
  const dx = new Float64Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(Math.fround(x[b * 32 + j]!)));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    dx[b] = d;
    for (let j = 0; j < 32; j++) qx[b * 32 + j] = roundEven(Math.fround(Math.fround(x[b * 32 + j]!) * id));
  }
  for (let r = 0; r < nOut; r++) {
    let s = 0;
    const o = r * nIn;
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(w[o + b * 32 + j]!));
      const dw = amax / 127;
      if (dw === 0) continue;
      let isum = 0;
      for (let j = 0; j < 32; j++) isum += Math.round(w[o + b * 32 + j]! / dw) * qx[b * 32 + j]!;
      s += dw * dx[b]! * isum;
    }
    y[r] = s + (bias ? bias[r]! : 0);
  }
  return y;
}

function rmsNorm(x: Float64Array, g: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i]! * inv * g[i]!;
  return y;
}

/** Rotate-half rope of every head of v (length nHeads * hd) at position pos. */
function rope(v: Float64Array, nHeads: number, hd: number, pos: number, theta: number): void {
  const half = hd / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const ang = pos * Math.pow(theta, (-2 * i) / hd);
      const c = Math.cos(ang);
      const s = Math.sin(ang);
      const a = v[h * hd + i]!;
      const b = v[h * hd + i + half]!;
      v[h * hd + i] = a * c - b * s;
      v[h * hd + i + half] = b * c + a * s;
    }
  }
}

/** Logits [tokens x vocab] (float64) at every position of `ids`. */
export function refForward(cfg: RefConfig, W: RefWeights, ids: ArrayLike<number>, q8Acts: ReadonlySet<string> = new Set()): Float64Array {
  const { nEmbd: E, nHead, nKvHead, headDim: hd, nFf, nVocab: V } = cfg;
  const T = ids.length;
  const get = (n: string) => {
    const t = W.get(n);
    if (!t) throw new Error(`reference: missing weight ${n}`);
    return t.data;
  };
  const mm = (name: string, nOut: number, nIn: number, x: Float64Array, bias?: string) =>
    matvec(get(name), nOut, nIn, x, q8Acts.has(name), bias ? get(bias) : undefined);
  const emb = get('model.embed_tokens.weight');
  const xs: Float64Array[] = [];
  for (let t = 0; t < T; t++) xs.push(Float64Array.from(emb.subarray(ids[t]! * E, (ids[t]! + 1) * E)));
  const group = nHead / nKvHead;
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `model.layers.${l}.`;
    const K: Float64Array[] = [];
    const Vv: Float64Array[] = [];
    const Q: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const h = rmsNorm(xs[t]!, get(`${p}input_layernorm.weight`), cfg.eps);
      const b = (n: string) => (cfg.qkvBias ? `${p}self_attn.${n}_proj.bias` : undefined);
      const q = mm(`${p}self_attn.q_proj.weight`, nHead * hd, E, h, b('q'));
      const k = mm(`${p}self_attn.k_proj.weight`, nKvHead * hd, E, h, b('k'));
      const v = mm(`${p}self_attn.v_proj.weight`, nKvHead * hd, E, h, b('v'));
      rope(q, nHead, hd, t, cfg.theta);
      rope(k, nKvHead, hd, t, cfg.theta);
      Q.push(q);
      K.push(k);
      Vv.push(v);
    }
    const scale = 1 / Math.sqrt(hd);
    for (let t = 0; t < T; t++) {
      const a = new Float64Array(nHead * hd);
      for (let h = 0; h < nHead; h++) {
        const kh = Math.floor(h / group);
        const sc = new Float64Array(t + 1);
        let m = -Infinity;
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < hd; i++) d += Q[t]![h * hd + i]! * K[s]![kh * hd + i]!;
          sc[s] = d * scale;
          m = Math.max(m, sc[s]!);
        }
        let z = 0;
        for (let s = 0; s <= t; s++) z += (sc[s] = Math.exp(sc[s]! - m));
        for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) a[h * hd + i]! += (sc[s]! / z) * Vv[s]![kh * hd + i]!;
      }
      const o = mm(`${p}self_attn.o_proj.weight`, E, nHead * hd, a);
      for (let i = 0; i < E; i++) xs[t]![i]! += o[i]!;
    }
    for (let t = 0; t < T; t++) {
      const h = rmsNorm(xs[t]!, get(`${p}post_attention_layernorm.weight`), cfg.eps);
      const g = mm(`${p}mlp.gate_proj.weight`, nFf, E, h);
      const u = mm(`${p}mlp.up_proj.weight`, nFf, E, h);
      const act = new Float64Array(nFf);
      for (let i = 0; i < nFf; i++) act[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
      const d = mm(`${p}mlp.down_proj.weight`, E, nFf, act);
      for (let i = 0; i < E; i++) xs[t]![i]! += d[i]!;
    }
  }
  const out = new Float64Array(T * V);
  const head = cfg.tied ? 'model.embed_tokens.weight' : 'lm_head.weight';
  for (let t = 0; t < T; t++) {
    const h = rmsNorm(xs[t]!, get('model.norm.weight'), cfg.eps);
    out.set(mm(head, V, E, h), t * V);
  }
  return out;
}
