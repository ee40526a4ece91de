/**
 * GGUF v3 writer (little-endian): metadata of every GGUF value type (arrays included, nested arrays too)
 * and tensors laid out at `general.alignment`. The counterpart of ./gguf.ts (readGguf reads back what this
 * writes).
 *
 *   writeGguf(path, { metadata, tensors })     atomic: written to a temporary file next to `path`, then renamed
 *   encodeGguf({ metadata, tensors })          the whole file as one Uint8Array (small files, tests)
 *
 * Metadata values: a plain JS value gets an inferred type (string -> STRING, boolean -> BOOL, bigint -> INT64,
 * integer number -> UINT32 when in [0, 2^32) else INT64, other number -> FLOAT32, typed arrays -> ARRAY of
 * the matching element type, string[] / boolean[] / number[] -> ARRAY of STRING / BOOL / inferred numbers).
 * Give a type explicitly with `gguf.u8(v)`, `gguf.f64(v)`, `gguf.array(GgufValueType.INT16, [...])`, ... .
 * `general.alignment` is written (as UINT32) when `alignment` differs from the default 32 and the metadata
 * does not already carry it.
 *
 * Tensors: `dims` in ggml order (dims[0] is the innermost, contiguous dimension) — as GgufTensorInfo.dims —
 * or `shape` outermost first (as safetensors / PyTorch); `data` holds exactly the bytes ggml expects for the
 * type (e.g. 34 bytes per 32-element block for Q8_0).
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { GgufValueType, ggmlTypeTraits } from './gguf.js';

/** A metadata value with an explicit GGUF type. */
export interface GgufTypedValue {
  readonly type: GgufValueType;
  readonly value: unknown;
  /** For ARRAY: the element type. */
  readonly elementType?: GgufValueType;
}

export type GgufWriteValue =
  | GgufTypedValue
  | string
  | boolean
  | number
  | bigint
  | ArrayBufferView
  | ReadonlyArray<string>
  | ReadonlyArray<boolean>
  | ReadonlyArray<number>
  | ReadonlyArray<bigint>;

export interface GgufWriteTensor {
  name: string;
  /** ggml type id (GgmlType). */
  type: number;
  /** ggml order, innermost first. Give either dims or shape. */
  dims?: ReadonlyArray<number>;
  /** Outermost first. */
  shape?: ReadonlyArray<number>;
  data: ArrayBufferView;
}

export interface GgufWriteInput {
  /** Key/value pairs, written in iteration order. */
  metadata?: Map<string, GgufWriteValue> | Record<string, GgufWriteValue> | ReadonlyArray<readonly [string, GgufWriteValue]>;
  tensors?: ReadonlyArray<GgufWriteTensor>;
  /** Alignment of the data section and of every tensor; a power of two. Defaults to general.alignment or 32. */
  alignment?: number;
}

const T = GgufValueType;
const typed = (type: GgufValueType, value: unknown, elementType?: GgufValueType): GgufTypedValue => ({ type, value, elementType });

/** Explicitly typed metadata values. */
export const gguf = {
  u8: (v: number) => typed(T.UINT8, v),
  i8: (v: number) => typed(T.INT8, v),
  u16: (v: number) => typed(T.UINT16, v),
  i16: (v: number) => typed(T.INT16, v),
  u32: (v: number) => typed(T.UINT32, v),
  i32: (v: number) => typed(T.INT32, v),
  f32: (v: number) => typed(T.FLOAT32, v),
  bool: (v: boolean) => typed(T.BOOL, v),
  str: (v: string) => typed(T.STRING, v),
  u64: (v: number | bigint) => typed(T.UINT64, v),
  i64: (v: number | bigint) => typed(T.INT64, v),
  f64: (v: number) => typed(T.FLOAT64, v),
  /** An array of `elementType` (ARRAY elements are arrays themselves: pass GgufTypedValue array values). */
  array: (elementType: GgufValueType, values: ArrayLike<unknown> | Iterable<unknown>) => typed(T.ARRAY, Array.from(values as Iterable<unknown>), elementType),
};

// ---------------------------------------------------------------------------------------------------------
// Type inference

function isTyped(v: unknown): v is GgufTypedValue {
  return typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !Array.isArray(v) && 'type' in v && 'value' in v;
}

function inferNumberType(v: number): GgufValueType {
  if (Number.isInteger(v)) return v >= 0 && v <= 0xffffffff ? T.UINT32 : T.INT64;
  return T.FLOAT32;
}

function typedArrayElementType(v: ArrayBufferView): GgufValueType {
  if (v instanceof Uint8Array) return T.UINT8;
  if (v instanceof Int8Array) return T.INT8;
  if (v instanceof Uint16Array) return T.UINT16;
  if (v instanceof Int16Array) return T.INT16;
  if (v instanceof Uint32Array) return T.UINT32;
  if (v instanceof Int32Array) return T.INT32;
  if (v instanceof Float32Array) return T.FLOAT32;
  if (v instanceof Float64Array) return T.FLOAT64;
  if (v instanceof BigUint64Array) return T.UINT64;
  if (v instanceof BigInt64Array) return T.INT64;
  throw new TypeError(`GGUF metadata: unsupported array view ${v.constructor.name}`);
}

function normalise(key: string, v: GgufWriteValue): GgufTypedValue {
  if (isTyped(v)) return v;
  switch (typeof v) {
    case 'string':
      return typed(T.STRING, v);
    case 'boolean':
      return typed(T.BOOL, v);
    case 'bigint':
      return typed(T.INT64, v);
    case 'number':
      return typed(inferNumberType(v), v);
  }
  if (ArrayBuffer.isView(v)) return typed(T.ARRAY, Array.from(v as unknown as ArrayLike<unknown>), typedArrayElementType(v));
  if (Array.isArray(v)) {
    if (v.length === 0) throw new TypeError(`GGUF metadata ${key}: an empty array needs an explicit element type (gguf.array)`);
    const kinds = new Set(v.map((x) => typeof x));
    if (kinds.size !== 1) throw new TypeError(`GGUF metadata ${key}: array elements of mixed types`);
    const k = [...kinds][0];
    if (k === 'string') return typed(T.ARRAY, v, T.STRING);
    if (k === 'boolean') return typed(T.ARRAY, v, T.BOOL);
    if (k === 'bigint') return typed(T.ARRAY, v, T.INT64);
    if (k === 'number') {
      const nums = v as number[];
      if (nums.every(Number.isInteger)) {
        const fitsU32 = nums.every((x) => x >= 0 && x <= 0xffffffff);
        const fitsI32 = nums.every((x) => x >= -0x80000000 && x <= 0x7fffffff);
        return typed(T.ARRAY, v, fitsU32 ? T.UINT32 : fitsI32 ? T.INT32 : T.INT64);
      }
      return typed(T.ARRAY, v, T.FLOAT32);
    }
  }
  throw new TypeError(`GGUF metadata ${key}: cannot infer a GGUF type for ${Object.prototype.toString.call(v)}`);
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

/** Growable little-endian byte sink. */
class Sink {
  buf = new Uint8Array(4096);
  dv = new DataView(this.buf.buffer);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.dv.setUint8(this.len, v);
    this.len += 1;
  }
  i8(v: number): void {
    this.ensure(1);
    this.dv.setInt8(this.len, v);
    this.len += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.dv.setUint16(this.len, v, true);
    this.len += 2;
  }
  i16(v: number): void {
    this.ensure(2);
    this.dv.setInt16(this.len, v, true);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.len, v, true);
    this.len += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.dv.setInt32(this.len, v, true);
    this.len += 4;
  }
  f32(v: number): void {
    this.ensure(4);
    this.dv.setFloat32(this.len, v, true);
    this.len += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.dv.setFloat64(this.len, v, true);
    this.len += 8;
  }
  u64(v: bigint): void {
    this.ensure(8);
    this.dv.setBigUint64(this.len, v, true);
    this.len += 8;
  }
  i64(v: bigint): void {
    this.ensure(8);
    this.dv.setBigInt64(this.len, v, true);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(BigInt(b.length));
    this.bytes(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.len % alignment)) % alignment;
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

function checkInt(key: string, v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new TypeError(`GGUF metadata ${key}: ${String(v)} is not a valid ${what}`);
  return v;
}

function checkBig(key: string, v: unknown, signed: boolean): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else throw new TypeError(`GGUF metadata ${key}: ${String(v)} is not a valid ${signed ? 'i64' : 'u64'}`);
  const ok = signed ? b >= -(1n << 63n) && b < 1n << 63n : b >= 0n && b < 1n << 64n;
  if (!ok) throw new TypeError(`GGUF metadata ${key}: ${b} is out of range for ${signed ? 'i64' : 'u64'}`);
  return b;
}

function writeValue(s: Sink, key: string, type: GgufValueType, v: unknown, elementType: GgufValueType | undefined, depth: number): void {
  switch (type) {
    case T.UINT8:
      return s.u8(checkInt(key, v, 0, 0xff, 'u8'));
    case T.INT8:
      return s.i8(checkInt(key, v, -0x80, 0x7f, 'i8'));
    case T.UINT16:
      return s.u16(checkInt(key, v, 0, 0xffff, 'u16'));
    case T.INT16:
      return s.i16(checkInt(key, v, -0x8000, 0x7fff, 'i16'));
    case T.UINT32:
      return s.u32(checkInt(key, v, 0, 0xffffffff, 'u32'));
    case T.INT32:
      return s.i32(checkInt(key, v, -0x80000000, 0x7fffffff, 'i32'));
    case T.FLOAT32:
    case T.FLOAT64:
      if (typeof v !== 'number') throw new TypeError(`GGUF metadata ${key}: ${String(v)} is not a number`);
      return type === T.FLOAT32 ? s.f32(v) : s.f64(v);
    case T.BOOL:
      if (typeof v !== 'boolean') throw new TypeError(`GGUF metadata ${key}: ${String(v)} is not a boolean`);
      return s.u8(v ? 1 : 0);
    case T.STRING:
      if (typeof v !== 'string') throw new TypeError(`GGUF metadata ${key}: ${String(v)} is not a string`);
      return s.str(v);
    case T.UINT64:
      return s.u64(checkBig(key, v, false));
    case T.INT64:
      return s.i64(checkBig(key, v, true));
    case T.ARRAY: {
      if (depth > 8) throw new TypeError(`GGUF metadata ${key}: arrays nested deeper than 8`);
      if (elementType === undefined) throw new TypeError(`GGUF metadata ${key}: an array needs an element type`);
      const items = ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<unknown>) : (v as unknown[]);
      if (!Array.isArray(items)) throw new TypeError(`GGUF metadata ${key}: array value is not an array`);
      s.u32(elementType);
      s.u64(BigInt(items.length));
      for (const item of items) {
        if (elementType === T.ARRAY) {
          const inner = isTyped(item) ? item : normalise(key, item as GgufWriteValue);
          if (inner.type !== T.ARRAY) throw new TypeError(`GGUF metadata ${key}: element of an array of arrays is not an array`);
          writeValue(s, key, T.ARRAY, inner.value, inner.elementType, depth + 1);
        } else {
          writeValue(s, key, elementType, item, undefined, depth + 1);
        }
      }
      return;
    }
    default:
      throw new TypeError(`GGUF metadata ${key}: unknown value type ${String(type)}`);
  }
}

interface Plan {
  header: Uint8Array;
  alignment: number;
  tensors: { data: Uint8Array; offset: number }[];
  /** Bytes of the data section (the last tensor's end, unpadded). */
  dataBytes: number;
}

function entries(m: GgufWriteInput['metadata']): [string, GgufWriteValue][] {
  if (!m) return [];
  if (m instanceof Map) return [...m.entries()];
  if (Array.isArray(m)) return m.map(([k, v]) => [k, v]);
  return Object.entries(m as Record<string, GgufWriteValue>);
}

function plan(input: GgufWriteInput): Plan {
  const meta = entries(input.metadata).map(([k, v]) => [k, normalise(k, v)] as const);
  const keys = new Set<string>();
  for (const [k] of meta) {
    if (typeof k !== 'string' || k.length === 0) throw new TypeError('GGUF metadata keys must be non-empty strings');
    if (keys.has(k)) throw new TypeError(`duplicate GGUF metadata key ${JSON.stringify(k)}`);
    keys.add(k);
  }
  let alignment = input.alignment ?? 32;
  const given = meta.find(([k]) => k === 'general.alignment');
  if (given) {
    if (given[1].type !== T.UINT32) throw new TypeError('general.alignment must be a UINT32');
    if (input.alignment !== undefined && input.alignment !== given[1].value) {
      throw new TypeError(`alignment ${input.alignment} disagrees with general.alignment ${String(given[1].value)}`);
    }
    alignment = given[1].value as number;
  } else if (alignment !== 32) {
    meta.push(['general.alignment', typed(T.UINT32, alignment)]);
  }
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0 || alignment > 1 << 20) {
    throw new TypeError(`alignment must be a power of two up to 2^20, got ${alignment}`);
  }

  const s = new Sink();
  s.u32(0x46554747); // "GGUF"
  s.u32(3);
  const tensors = input.tensors ?? [];
  s.u64(BigInt(tensors.length));
  s.u64(BigInt(meta.length));
  for (const [k, v] of meta) {
    s.str(k);
    s.u32(v.type);
    writeValue(s, k, v.type, v.value, v.elementType, 0);
  }
  const names = new Set<string>();
  const laid: Plan['tensors'] = [];
  let offset = 0;
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name.length === 0 || names.has(t.name)) throw new TypeError(`invalid or duplicate tensor name ${JSON.stringify(t.name)}`);
    names.add(t.name);
    const dims = t.dims ? [...t.dims] : t.shape ? [...t.shape].reverse() : null;
    if (!dims) throw new TypeError(`tensor ${t.name}: give dims (ggml order) or shape`);
    if (t.dims && t.shape && [...t.shape].reverse().join() !== dims.join()) throw new TypeError(`tensor ${t.name}: dims and shape disagree`);
    if (dims.length > 4) throw new TypeError(`tensor ${t.name}: ${dims.length} dimensions (at most 4)`);
    let n = 1;
    for (const d of dims) {
      if (!Number.isSafeInteger(d) || d < 0) throw new TypeError(`tensor ${t.name}: invalid dimension ${d}`);
      n *= d;
    }
    const traits = ggmlTypeTraits(t.type);
    if (!traits) throw new TypeError(`tensor ${t.name}: unknown ggml type ${t.type}`);
    if (dims.length > 0 && dims[0]! % traits.blockSize !== 0) {
      throw new TypeError(`tensor ${t.name}: row size ${dims[0]} is not a multiple of the ${traits.name} block size ${traits.blockSize}`);
    }
    const bytes = (n / traits.blockSize) * traits.typeSize;
    const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (data.byteLength !== bytes) throw new TypeError(`tensor ${t.name}: ${traits.name} ${dims.join('x')} needs ${bytes} bytes, data has ${data.byteLength}`);
    s.str(t.name);
    s.u32(dims.length);
    for (const d of dims) s.u64(BigInt(d));
    s.u32(t.type);
    s.u64(BigInt(offset));
    laid.push({ data, offset });
    offset += bytes;
    offset = Math.ceil(offset / alignment) * alignment;
  }
  s.pad(alignment);
  const last = laid[laid.length - 1];
  return { header: s.view(), alignment, tensors: laid, dataBytes: last ? last.offset + last.data.byteLength : 0 };
}

/** The GGUF file as bytes. */
export function encodeGguf(input: GgufWriteInput): Uint8Array {
  const p = plan(input);
  const out = new Uint8Array(p.header.length + p.dataBytes);
  out.set(p.header, 0);
  for (const t of p.tensors) out.set(t.data, p.header.length + t.offset);
  return out;
}

/**
 * Write a GGUF v3 file. The bytes go to a temporary file in the same folder, which is renamed over `path`
 * once complete: readers never see a partial file, and a failure leaves `path` untouched. Returns the size.
 */
export function writeGguf(path: string, input: GgufWriteInput): number {
  const p = plan(input);
  const dir = nodePath.dirname(nodePath.resolve(path));
  const tmp = nodePath.join(dir, `.${nodePath.basename(path)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  const fd = fs.openSync(tmp, 'wx');
  let ok = false;
  try {
    const writeAll = (b: Uint8Array, pos: number) => {
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done, pos + done);
    };
    writeAll(p.header, 0);
    const zeros = new Uint8Array(p.alignment);
    let end = p.header.length;
    for (const t of p.tensors) {
      const at = p.header.length + t.offset;
      if (at > end) writeAll(zeros.subarray(0, at - end), end); // padding between tensors
      writeAll(t.data, at);
      end = at + t.data.length;
    }
    fs.fsyncSync(fd);
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (!ok) fs.rmSync(tmp, { force: true });
  }
  try {
    fs.renameSync(tmp, path);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return p.header.length + p.dataBytes;
}
