/**
 * A small GGUF v3 writer (little-endian) and a random-weight llama model built with it, for benchmarks.
 *
 *   magic "GGUF" | u32 3 | u64 n_tensors | u64 n_kv
 *   n_kv      x { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] (innermost first) | u32 ggml_type | u64 offset }
 *   zero padding to the alignment | tensor data (each tensor's offset, relative to the data start, aligned)
 *
 * Tensor data is produced tensor by tensor by a callback and streamed to disk, so a 500 MB model never sits
 * in memory whole. The random llama model (`writeRandomLlama`) is deterministic: each tensor's values come
 * from a PRNG seeded by (seed, tensor name), so the f16 file holds exactly the f32 file's values rounded.
 */
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GgmlType, GgufValueType } from '../ts/formats/gguf.ts';
import { hashString, Xoshiro128 } from '../ts/util/random.ts';

// ---------------------------------------------------------------------------------------------------------
// Metadata values

/** A typed metadata value (GGUF stores the type with each value). */
export type GgufMeta =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: number | bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'f32[]'; value: ArrayLike<number> }
  | { type: 'i32[]'; value: ArrayLike<number> }
  | { type: 'u32[]'; value: ArrayLike<number> };

export const meta = {
  u32: (value: number): GgufMeta => ({ type: 'u32', value }),
  i32: (value: number): GgufMeta => ({ type: 'i32', value }),
  u64: (value: number | bigint): GgufMeta => ({ type: 'u64', value }),
  f32: (value: number): GgufMeta => ({ type: 'f32', value }),
  bool: (value: boolean): GgufMeta => ({ type: 'bool', value }),
  str: (value: string): GgufMeta => ({ type: 'string', value }),
  strs: (value: readonly string[]): GgufMeta => ({ type: 'string[]', value }),
  f32s: (value: ArrayLike<number>): GgufMeta => ({ type: 'f32[]', value }),
  i32s: (value: ArrayLike<number>): GgufMeta => ({ type: 'i32[]', value }),
};

const SCALAR: Record<string, { id: number; size: number; put: (v: DataView, o: number, x: number | bigint) => void }> = {
  u8: { id: GgufValueType.UINT8, size: 1, put: (v, o, x) => v.setUint8(o, Number(x)) },
  i8: { id: GgufValueType.INT8, size: 1, put: (v, o, x) => v.setInt8(o, Number(x)) },
  u16: { id: GgufValueType.UINT16, size: 2, put: (v, o, x) => v.setUint16(o, Number(x), true) },
  i16: { id: GgufValueType.INT16, size: 2, put: (v, o, x) => v.setInt16(o, Number(x), true) },
  u32: { id: GgufValueType.UINT32, size: 4, put: (v, o, x) => v.setUint32(o, Number(x), true) },
  i32: { id: GgufValueType.INT32, size: 4, put: (v, o, x) => v.setInt32(o, Number(x), true) },
  f32: { id: GgufValueType.FLOAT32, size: 4, put: (v, o, x) => v.setFloat32(o, Number(x), true) },
  f64: { id: GgufValueType.FLOAT64, size: 8, put: (v, o, x) => v.setFloat64(o, Number(x), true) },
  u64: { id: GgufValueType.UINT64, size: 8, put: (v, o, x) => v.setBigUint64(o, BigInt(x), true) },
  i64: { id: GgufValueType.INT64, size: 8, put: (v, o, x) => v.setBigInt64(o, BigInt(x), true) },
};

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.length + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  scalar(kind: keyof typeof SCALAR, x: number | bigint): void {
    const s = SCALAR[kind]!;
    const at = this.reserve(s.size); // may reallocate this.view
    s.put(this.view, at, x);
  }
  u32(x: number): void {
    this.scalar('u32', x);
  }
  u64(x: number | bigint): void {
    this.scalar('u64', x);
  }
  bytes(b: Uint8Array): void {
    const at = this.reserve(b.length); // may reallocate this.buf
    this.buf.set(b, at);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.reserve(n); // fresh bytes are zero (the buffer only grows by copy into zeroed memory)
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(out: ByteSink, m: GgufMeta): void {
  switch (m.type) {
    case 'bool':
      out.u32(GgufValueType.BOOL);
      out.scalar('u8', m.value ? 1 : 0);
      return;
    case 'string':
      out.u32(GgufValueType.STRING);
      out.string(m.value);
      return;
    case 'string[]':
      out.u32(GgufValueType.ARRAY);
      out.u32(GgufValueType.STRING);
      out.u64(m.value.length);
      for (const s of m.value) out.string(s);
      return;
    case 'f32[]':
    case 'i32[]':
    case 'u32[]': {
      const kind = m.type.slice(0, 3) as 'f32' | 'i32' | 'u32';
      out.u32(GgufValueType.ARRAY);
      out.u32(SCALAR[kind]!.id);
      out.u64(m.value.length);
      for (let i = 0; i < m.value.length; i++) out.scalar(kind, m.value[i]!);
      return;
    }
    default:
      out.u32(SCALAR[m.type]!.id);
      out.scalar(m.type, m.value);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Tensors and the file

export interface GgufTensorSpec {
  name: string;
  /** GGUF dims, innermost first (a [n_out x n_in] matrix is [n_in, n_out]). */
  dims: number[];
  /** ggml type id: F32, F16, BF16 or Q8_0 (the writer only sizes these element types). */
  type: number;
  /**
   * Writes the tensor's bytes by calling `emit` with consecutive chunks (any sizes) that add up to the
   * tensor's byte size.
   */
  fill(emit: (chunk: Uint8Array) => void): void;
}

function elementBytes(type: number): number {
  if (type === GgmlType.F32) return 4;
  if (type === GgmlType.F16 || type === GgmlType.BF16) return 2;
  throw new Error(`gguf-writer: unsupported tensor type ${type} (F32, F16, BF16 and Q8_0 only)`);
}

export function tensorBytes(t: Pick<GgufTensorSpec, 'dims' | 'type'>): number {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.type === GgmlType.Q8_0) {
    if (t.dims[0]! % 32 !== 0) throw new Error(`gguf-writer: Q8_0 rows of ${t.dims[0]} (not a multiple of 32)`);
    return (n / 32) * 34;
  }
  return n * elementBytes(t.type);
}

/** Writes a GGUF v3 file. Metadata keys keep insertion order; general.alignment is written when not 32. */
export function writeGguf(file: string, metadata: ReadonlyArray<[string, GgufMeta]>, tensors: ReadonlyArray<GgufTensorSpec>, alignment = 32): void {
  const head = new ByteSink();
  head.bytes(Buffer.from('GGUF', 'latin1'));
  head.u32(3);
  head.u64(tensors.length);
  const kvs = alignment === 32 ? metadata : [...metadata, ['general.alignment', meta.u32(alignment)] as [string, GgufMeta]];
  head.u64(kvs.length);
  for (const [k, v] of kvs) {
    head.string(k);
    writeValue(head, v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    head.string(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    offsets.push(offset);
    offset += tensorBytes(t);
    offset = Math.ceil(offset / alignment) * alignment;
  }
  head.pad(alignment);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, head.result());
    let written = 0;
    const zeros = new Uint8Array(alignment);
    tensors.forEach((t, i) => {
      if (written < offsets[i]!) {
        fs.writeSync(fd, zeros, 0, offsets[i]! - written);
        written = offsets[i]!;
      }
      const want = tensorBytes(t);
      let got = 0;
      t.fill((chunk) => {
        let at = 0;
        while (at < chunk.length) at += fs.writeSync(fd, chunk, at, chunk.length - at);
        got += chunk.length;
      });
      if (got !== want) throw new Error(`gguf-writer: tensor ${t.name} wrote ${got} bytes, expected ${want}`);
      written += got;
    });
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Random numbers and f16

/** Seeded by a string (deterministic across runs); `uniform()` is in (0, 1), `normal()` standard normal. */
export class Rng extends Xoshiro128 {
  constructor(seed: string) {
    super(hashString(seed));
  }
  uniform(): number {
    return this.open();
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits of a float, rounding to nearest even (overflow to inf, subnormals kept). */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

// ---------------------------------------------------------------------------------------------------------
// Random llama model

export interface RandomLlamaParams {
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nKvHead: number;
  nFf: number;
  nVocab: number;
  contextLength: number;
  /** Type of the matrices (and of the token embedding). q8_0: random int8 codes with per-block f16 scales. */
  type: 'f32' | 'f16' | 'q8_0';
  seed: string;
  /** Standard deviation of the matrix weights. */
  std: number;
}

export const DEFAULT_LLAMA: RandomLlamaParams = {
  nEmbd: 768,
  nLayer: 12,
  nHead: 12,
  nKvHead: 4,
  nFf: 2048,
  nVocab: 32000,
  contextLength: 2048,
  type: 'f16',
  seed: 'hogwild-bench-1',
  std: 0.02,
};

/**
 * SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF> (type 6), then
 * unique synthetic pieces ("▁" + letters, and some without the prefix) with decreasing scores.
 */
export function syntheticSpmVocab(n: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [2, 3, 3]; // UNKNOWN, CONTROL, CONTROL
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6); // BYTE
  }
  const letters = 'etaoinshrdlucmfwypvbgkjqxz';
  const seen = new Set(tokens);
  // enumerate letter strings in order of length (base-26 counting), alternately with and without "▁"
  let k = 0;
  while (tokens.length < n) {
    let s = '';
    let x = k++;
    do {
      s += letters[x % 26];
      x = Math.floor(x / 26) - 1;
    } while (x >= 0);
    for (const piece of ['\u2581' + s, s]) {
      if (tokens.length >= n) break;
      if (seen.has(piece)) continue;
      seen.add(piece);
      tokens.push(piece);
      types.push(1); // NORMAL
    }
  }
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) scores[i] = types[i] === 1 ? -(i - 259) / 100 : 0;
  return { tokens, scores, types: Int32Array.from(types) };
}

function fileTag(p: RandomLlamaParams): string {
  return `llama-d${p.nEmbd}-l${p.nLayer}-h${p.nHead}-kv${p.nKvHead}-ff${p.nFf}-v${p.nVocab}-c${p.contextLength}-${p.type}-s${p.std}-${p.seed}-w1`;
}

/** The cache folder of generated models (os.tmpdir()/hogwild-bench). */
export function benchCacheDir(): string {
  return path.join(os.tmpdir(), 'hogwild-bench');
}

/** GGUF metadata and tensor specs of a random llama model (data is generated when written). */
export function randomLlamaSpec(p: RandomLlamaParams): { metadata: [string, GgufMeta][]; tensors: GgufTensorSpec[] } {
  const headDim = p.nEmbd / p.nHead;
  if (!Number.isInteger(headDim)) throw new Error('nEmbd must be a multiple of nHead');
  const vocab = syntheticSpmVocab(p.nVocab);
  const metadata: [string, GgufMeta][] = [
    ['general.architecture', meta.str('llama')],
    ['general.name', meta.str(`random-llama-${p.type}`)],
    ['general.file_type', meta.u32(p.type === 'f32' ? 0 : p.type === 'f16' ? 1 : 7)],
    ['llama.context_length', meta.u32(p.contextLength)],
    ['llama.embedding_length', meta.u32(p.nEmbd)],
    ['llama.block_count', meta.u32(p.nLayer)],
    ['llama.feed_forward_length', meta.u32(p.nFf)],
    ['llama.attention.head_count', meta.u32(p.nHead)],
    ['llama.attention.head_count_kv', meta.u32(p.nKvHead)],
    ['llama.rope.dimension_count', meta.u32(headDim)],
    ['llama.attention.layer_norm_rms_epsilon', meta.f32(1e-5)],
    ['llama.rope.freq_base', meta.f32(10000)],
    ['llama.vocab_size', meta.u32(p.nVocab)],
    ['tokenizer.ggml.model', meta.str('llama')],
    ['tokenizer.ggml.tokens', meta.strs(vocab.tokens)],
    ['tokenizer.ggml.scores', meta.f32s(vocab.scores)],
    ['tokenizer.ggml.token_type', meta.i32s(vocab.types)],
    ['tokenizer.ggml.bos_token_id', meta.u32(1)],
    ['tokenizer.ggml.eos_token_id', meta.u32(2)],
    ['tokenizer.ggml.unknown_token_id', meta.u32(0)],
    ['tokenizer.ggml.add_bos_token', meta.bool(true)],
    ['tokenizer.ggml.add_eos_token', meta.bool(false)],
  ];
  const wtype = p.type === 'f32' ? GgmlType.F32 : p.type === 'f16' ? GgmlType.F16 : GgmlType.Q8_0;
  const nKv = p.nKvHead * headDim;
  const norm = (name: string, n: number): GgufTensorSpec => ({
    name,
    dims: [n],
    type: GgmlType.F32,
    fill: (emit) => emit(randomValues(`${p.seed}/${name}`, n, 1, 0.05, GgmlType.F32)),
  });
  const mat = (name: string, nIn: number, nOut: number): GgufTensorSpec => ({
    name,
    dims: [nIn, nOut],
    type: wtype,
    fill: (emit) => {
      const rng = `${p.seed}/${name}`;
      // rows in chunks of ~1M elements, one PRNG stream for the whole tensor
      const gen = new Rng(rng);
      const total = nIn * nOut;
      const CH = 1 << 20;
      for (let at = 0; at < total; at += CH) emit(randomValues(gen, Math.min(CH, total - at), 0, p.std, wtype));
    },
  });
  const tensors: GgufTensorSpec[] = [mat('token_embd.weight', p.nEmbd, p.nVocab)];
  for (let l = 0; l < p.nLayer; l++) {
    const b = `blk.${l}`;
    tensors.push(
      norm(`${b}.attn_norm.weight`, p.nEmbd),
      mat(`${b}.attn_q.weight`, p.nEmbd, p.nEmbd),
      mat(`${b}.attn_k.weight`, p.nEmbd, nKv),
      mat(`${b}.attn_v.weight`, p.nEmbd, nKv),
      mat(`${b}.attn_output.weight`, p.nEmbd, p.nEmbd),
      norm(`${b}.ffn_norm.weight`, p.nEmbd),
      mat(`${b}.ffn_gate.weight`, p.nEmbd, p.nFf),
      mat(`${b}.ffn_up.weight`, p.nEmbd, p.nFf),
      mat(`${b}.ffn_down.weight`, p.nFf, p.nEmbd),
    );
  }
  tensors.push(norm('output_norm.weight', p.nEmbd), mat('output.weight', p.nEmbd, p.nVocab));
  return { metadata, tensors };
}

/** n values ~ N(mean, std) as F32, F16 or Q8_0 (n a multiple of 32: blocks scaled to max |x| = 127) little-endian bytes. */
function randomValues(rng: Rng | string, n: number, mean: number, std: number, type: number): Uint8Array {
  const g = typeof rng === 'string' ? new Rng(rng) : rng;
  if (type === GgmlType.Q8_0) {
    const out = new Uint8Array((n / 32) * 34);
    const x = new Float64Array(32);
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) {
        x[j] = mean + std * g.normal();
        amax = Math.max(amax, Math.abs(x[j]!));
      }
      const d = amax / 127;
      const h = f32ToF16Bits(d);
      out[b * 34] = h & 0xff;
      out[b * 34 + 1] = h >>> 8;
      for (let j = 0; j < 32; j++) out[b * 34 + 2 + j] = (d === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(x[j]! / d)))) & 0xff;
    }
    return out;
  }
  if (type === GgmlType.F32) {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = mean + std * g.normal();
    return new Uint8Array(a.buffer);
  }
  const h = new Uint16Array(n);
  for (let i = 0; i < n; i++) h[i] = f32ToF16Bits(mean + std * g.normal());
  return new Uint8Array(h.buffer);
}

/**
 * The path of a random llama GGUF with these parameters in the cache folder, writing it first when it is
 * not there yet (written to a temporary name, then renamed, so a killed run leaves no half file).
 */
export function ensureRandomLlama(params: Partial<RandomLlamaParams> = {}, log: (s: string) => void = () => {}): string {
  const p = { ...DEFAULT_LLAMA, ...params };
  const dir = benchCacheDir();
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${fileTag(p)}.gguf`);
  if (fs.existsSync(file)) return file;
  const { metadata, tensors } = randomLlamaSpec(p);
  const bytes = tensors.reduce((s, t) => s + tensorBytes(t), 0);
  log(`writing ${file} (${(bytes / 2 ** 20).toFixed(0)} MiB of random ${p.type} weights)…`);
  const t0 = performance.now();
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeGguf(tmp, metadata, tensors);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return file;
}
