/**
 * Weight rounding for tests, written from the format definitions (IEEE binary16, bfloat16, GGML Q8_0) in
 * float64 arithmetic, independent of the core's conversions:
 *   f16:  round-to-nearest-even to 11 significant bits, subnormals below 2^-14, overflow to +-Inf
 *   bf16: the upper 16 bits of the binary32, rounded to nearest even
 *   Q8_0: blocks of 32 along a row; d = max|x| / 127 stored as f16; q = round(x / d) in int8
 * and the matching dequantisation, plus the HF fixture -> GGUF converter used by the weight-type tests.
 */
import { readSafetensorsHeader, readSafetensorsTensorData } from '../../ts/formats/safetensors.ts';
import { writeGguf, gguf, type GgufWriteTensor, type GgufWriteValue } from '../../ts/formats/gguf-writer.ts';

/** Round half to even. */
export function roundEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** float -> IEEE binary16 bits, round to nearest even. */
export function f32ToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  if (a < 2 ** -14) {
    // subnormal: units of 2^-24 (rounding up to 1024 gives the smallest normal, which has the same bits)
    return sign | roundEven(a / 2 ** -24);
  }
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  let mant = roundEven((a / 2 ** e - 1) * 1024);
  if (mant === 1024) {
    mant = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | mant;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float32 -> bfloat16 bits, round to nearest even. */
export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff; // quiet NaN
  const upper = u >>> 16;
  const lower = u & 0xffff;
  let r = upper;
  if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) r = upper + 1;
  return r & 0xffff;
}

export function bf16ToF32(b: number): number {
  u32buf[0] = (b << 16) >>> 0;
  return f32buf[0]!;
}

export type WeightType = 'F32' | 'F16' | 'BF16' | 'Q8_0';
export const GGML_TYPE: Record<WeightType, number> = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 };

/** Encode float values (row-major, rows of `rowLen`) in `type`; returns the bytes and the dequantised values. */
export function encodeWeights(x: Float32Array, rowLen: number, type: WeightType): { bytes: Uint8Array; values: Float32Array } {
  const n = x.length;
  const values = new Float32Array(n);
  switch (type) {
    case 'F32': {
      values.set(x);
      return { bytes: new Uint8Array(values.buffer.slice(0)), values };
    }
    case 'F16':
    case 'BF16': {
      const h = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        h[i] = type === 'F16' ? f32ToF16(x[i]!) : f32ToBf16(x[i]!);
        values[i] = type === 'F16' ? f16ToF32(h[i]!) : bf16ToF32(h[i]!);
      }
      return { bytes: new Uint8Array(h.buffer), values };
    }
    case 'Q8_0': {
      if (rowLen % 32 !== 0) throw new Error(`Q8_0 needs rows of a multiple of 32, got ${rowLen}`);
      const nb = n / 32;
      const bytes = new Uint8Array(nb * 34);
      const dv = new DataView(bytes.buffer);
      for (let b = 0; b < nb; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
        const d = amax / 127;
        const dh = f32ToF16(d);
        const dq = f16ToF32(dh);
        dv.setUint16(b * 34, dh, true);
        for (let j = 0; j < 32; j++) {
          const q = d === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(x[b * 32 + j]! / d)));
          dv.setInt8(b * 34 + 2 + j, q);
          values[b * 32 + j] = dq * q;
        }
      }
      return { bytes, values };
    }
  }
}

export interface FixtureWeights {
  /** HF tensor name -> float32 values and shape (outermost first). */
  tensors: Map<string, { data: Float32Array; shape: number[] }>;
  config: Record<string, unknown>;
}

export function readFixtureWeights(dir: string, readJson: (f: string) => Record<string, unknown>): FixtureWeights {
  const h = readSafetensorsHeader(`${dir}/model.safetensors`);
  const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, info] of h.tensorsByName) {
    if (info.dtype !== 'F32') throw new Error(`${dir}: fixture tensor ${name} is ${info.dtype}, expected F32`);
    const b = readSafetensorsTensorData(h, name);
    tensors.set(name, { data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), shape: info.shape.slice() });
  }
  return { tensors, config: readJson(`${dir}/config.json`) };
}

const LAYER_NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.q_norm.weight': 'attn_q_norm.weight',
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

export function ggufTensorName(hf: string): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  const mapped = m ? LAYER_NAMES[m[2]!] : undefined;
  if (!m || !mapped) throw new Error(`no GGUF name for ${hf}`);
  return `blk.${m[1]}.${mapped}`;
}

/**
 * Rows of a q/k projection reordered the way llama.cpp's converter does for GGUF "llama" files: within each
 * head, row 2i+j of the result is row j*headDim/2+i of the input (j in {0,1}), so that GGML's NORMAL rope
 * (rotating adjacent pairs) computes what Hugging Face's rotate-half rope computes on the original rows.
 * Works on encoded bytes (whole rows move; the per-row rounding is unaffected).
 */
export function permuteRowsForNormalRope(bytes: Uint8Array, nRows: number, nHeads: number): Uint8Array {
  const hd = nRows / nHeads;
  const rowBytes = bytes.length / nRows;
  const out = new Uint8Array(bytes.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + j * (hd / 2) + i;
        const dst = h * hd + 2 * i + j;
        out.set(bytes.subarray(src * rowBytes, (src + 1) * rowBytes), dst * rowBytes);
      }
    }
  }
  return out;
}

export interface ConvertResult {
  /** HF name -> the values the GGUF holds after rounding (dequantised, HF row order). */
  rounded: Map<string, { data: Float32Array; shape: number[] }>;
  /** HF names stored as Q8_0. */
  q8: Set<string>;
}

/**
 * Write `fx` as a GGUF v3 file: matrices in `type`; vectors in F16/BF16 when `type` is one of them, else F32.
 * `roundedAsF32`: store the rounded values of another conversion instead (every tensor F32) — the same
 * numbers, but read by the F32 kernels.
 */
export function writeFixtureGguf(
  fx: FixtureWeights,
  file: string,
  type: WeightType,
  options: { values?: Map<string, { data: Float32Array; shape: number[] }>; typeOf?: (hfName: string) => WeightType | undefined } = {},
): ConvertResult {
  const c = fx.config;
  const arch = String(c.model_type);
  if (arch !== 'llama' && arch !== 'qwen2') throw new Error(`converter handles llama and qwen2, not ${arch}`);
  const nEmbd = c.hidden_size as number;
  const nHead = c.num_attention_heads as number;
  const nKv = (c.num_key_value_heads as number) ?? nHead;
  const headDim = (c.head_dim as number | undefined) ?? nEmbd / nHead;
  const metadata = new Map<string, GgufWriteValue>();
  const m = (k: string, v: GgufWriteValue) => metadata.set(k, v);
  m('general.architecture', arch);
  m('general.name', `fixture-${arch}-${type}`);
  m('general.file_type', gguf.u32(type === 'F32' ? 0 : type === 'F16' ? 1 : type === 'Q8_0' ? 7 : 32));
  m(`${arch}.block_count`, gguf.u32(c.num_hidden_layers as number));
  m(`${arch}.context_length`, gguf.u32(c.max_position_embeddings as number));
  m(`${arch}.embedding_length`, gguf.u32(nEmbd));
  m(`${arch}.feed_forward_length`, gguf.u32(c.intermediate_size as number));
  m(`${arch}.attention.head_count`, gguf.u32(nHead));
  m(`${arch}.attention.head_count_kv`, gguf.u32(nKv));
  m(`${arch}.attention.key_length`, gguf.u32(headDim));
  m(`${arch}.attention.value_length`, gguf.u32(headDim));
  m(`${arch}.rope.dimension_count`, gguf.u32(headDim));
  m(`${arch}.rope.freq_base`, gguf.f32(c.rope_theta as number));
  m(`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(c.rms_norm_eps as number));
  m(`${arch}.vocab_size`, gguf.u32(c.vocab_size as number));
  const tensors: GgufWriteTensor[] = [];
  const rounded = new Map<string, { data: Float32Array; shape: number[] }>();
  const q8 = new Set<string>();
  for (const [name, t] of fx.tensors) {
    const src = options.values?.get(name)?.data ?? t.data;
    const isMatrix = t.shape.length === 2;
    const ttype: WeightType = options.values ? 'F32' : (options.typeOf?.(name) ?? (isMatrix || type === 'F16' || type === 'BF16' ? type : 'F32'));
    const rowLen = t.shape[t.shape.length - 1]!;
    const { bytes, values } = encodeWeights(src, rowLen, ttype);
    rounded.set(name, { data: values, shape: t.shape });
    if (ttype === 'Q8_0') q8.add(name);
    let data = bytes;
    if (arch === 'llama' && /\.self_attn\.[qk]_proj\.weight$/.test(name)) {
      data = permuteRowsForNormalRope(bytes, t.shape[0]!, name.includes('q_proj') ? nHead : nKv);
    }
    tensors.push({ name: ggufTensorName(name), type: GGML_TYPE[ttype], shape: t.shape, data });
  }
  writeGguf(file, { metadata, tensors });
  return { rounded, q8 };
}
