/**
 * GGUF header reader (versions 2 and 3, little-endian).
 *
 * Reads the metadata key/values and tensor infos with positioned reads on a growing window, never the
 * whole file: a multi-GB model costs a few reads of its header. Tensor data is located (absolute offset,
 * byte size) and checked against the file size, but not read.
 *
 * Layout (all little-endian):
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv     x { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
 * string = u64 length + UTF-8 bytes; array value = u32 element type + u64 count + elements.
 */

import * as fs from 'node:fs';
import { ModelFormatError } from './errors.ts';

// ---------------------------------------------------------------------------------------------------------
// Value types

export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** An array value. Numeric arrays come back as typed arrays (64-bit integers as BigInt64 arrays). */
export type GgufArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | boolean[]
  | string[]
  | GgufArray[];

/** A metadata value. 64-bit integers are numbers when they fit in 2^53, else bigints. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

// ---------------------------------------------------------------------------------------------------------
// ggml tensor types

/** ggml tensor types by id (ids 4, 5, 31-33, 36-38 were removed from ggml and are rejected). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
} as const;
export type GgmlTypeName = keyof typeof GgmlType;

export interface GgmlTypeTraits {
  name: GgmlTypeName;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

// Block layouts as in ggml-common.h (QK_K = 256): e.g. block_q4_K = 2 halves + 12 scale bytes + 128 nibble bytes.
const TYPE_TRAITS: ReadonlyMap<number, GgmlTypeTraits> = new Map(
  (
    [
      ['F32', 1, 4],
      ['F16', 1, 2],
      ['Q4_0', 32, 18],
      ['Q4_1', 32, 20],
      ['Q5_0', 32, 22],
      ['Q5_1', 32, 24],
      ['Q8_0', 32, 34],
      ['Q8_1', 32, 36],
      ['Q2_K', 256, 84],
      ['Q3_K', 256, 110],
      ['Q4_K', 256, 144],
      ['Q5_K', 256, 176],
      ['Q6_K', 256, 210],
      ['Q8_K', 256, 292],
      ['IQ2_XXS', 256, 66],
      ['IQ2_XS', 256, 74],
      ['IQ3_XXS', 256, 98],
      ['IQ1_S', 256, 50],
      ['IQ4_NL', 32, 18],
      ['IQ3_S', 256, 110],
      ['IQ2_S', 256, 82],
      ['IQ4_XS', 256, 136],
      ['I8', 1, 1],
      ['I16', 1, 2],
      ['I32', 1, 4],
      ['I64', 1, 8],
      ['F64', 1, 8],
      ['IQ1_M', 256, 56],
      ['BF16', 1, 2],
      ['TQ1_0', 256, 54],
      ['TQ2_0', 256, 66],
      ['MXFP4', 32, 17],
    ] as const
  ).map(([name, blockSize, typeSize]) => [GgmlType[name], { name, blockSize, typeSize }]),
);

/** Block size and bytes per block of a ggml type id, or undefined for an unknown id. */
export function ggmlTypeTraits(type: number): GgmlTypeTraits | undefined {
  return TYPE_TRAITS.get(type);
}

/** Bytes of a tensor of `type` with `nElements` elements (a whole number of blocks). */
export function ggmlTensorBytes(type: number, nElements: number): number {
  const t = TYPE_TRAITS.get(type);
  if (!t) throw new RangeError(`unknown ggml type ${type}`);
  if (nElements % t.blockSize !== 0) {
    throw new RangeError(`${nElements} elements is not a multiple of the ${t.name} block size ${t.blockSize}`);
  }
  return (nElements / t.blockSize) * t.typeSize;
}

// ---------------------------------------------------------------------------------------------------------
// Result types

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  /** ggml type id (see `GgmlType`). */
  type: number;
  typeName: GgmlTypeName;
  nElements: number;
  /** Offset relative to the start of the data section, as stored in the file. */
  relativeOffset: number;
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  /** Byte size of the tensor's data. */
  byteSize: number;
}

export interface GgufFile {
  path: string;
  version: 2 | 3;
  /** Metadata in file order. */
  metadata: Map<string, GgufValue>;
  /** The GGUF value type of each metadata key (element type for arrays in `metadataArrayTypes`). */
  metadataTypes: Map<string, GgufValueType>;
  /** Element type of each array-valued key. */
  metadataArrayTypes: Map<string, GgufValueType>;
  tensors: GgufTensorInfo[];
  /** Alignment of the data section and tensor offsets (general.alignment, default 32). */
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
  fileSize: number;
}

export interface ReadGgufOptions {
  /**
   * Upper bound on the bytes of metadata and tensor infos (the header). Defaults to 1 GiB; real headers
   * (vocabularies of 256k tokens with merges) take tens of MB.
   */
  maxHeaderBytes?: number;
}

// ---------------------------------------------------------------------------------------------------------
// Limits: sizes in a header are checked against what the remaining file can hold, and against these.

const GGUF_MAGIC = 0x46554747; // "GGUF" read as u32 LE
const GGML_MAX_DIMS = 4;
const MAX_STRING_BYTES = 256 * 1024 * 1024;
const MAX_ARRAY_COUNT = 1 << 30;
const MAX_TENSORS = 1 << 24;
const MAX_KV = 1 << 20;
const MAX_ARRAY_NESTING = 8;
const MAX_ALIGNMENT = 1 << 20;

/** Bytes each element of a GGUF scalar type takes (strings: at least their u64 length). */
const SCALAR_SIZE: Record<number, number> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.STRING]: 8,
  [GgufValueType.ARRAY]: 12,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

// ---------------------------------------------------------------------------------------------------------
// Positioned reader over a growing window

class WindowReader {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  private chunk = 64 * 1024;
  /** Absolute position of the next read. */
  pos = 0;

  constructor(
    private readonly fd: number,
    readonly path: string,
    readonly fileSize: number,
    private readonly maxHeaderBytes: number,
  ) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Makes bytes [pos, pos+n) available in the window; returns their offset in `buf`. */
  private need(n: number, what: string): number {
    if (this.pos + n > this.fileSize) {
      throw new ModelFormatError(
        'FORMAT_TRUNCATED',
        this.path,
        `GGUF header truncated: reading ${what} needs ${n} bytes at offset ${this.pos}, file is ${this.fileSize} bytes`,
      );
    }
    if (this.pos + n > this.maxHeaderBytes) {
      throw new ModelFormatError(
        'FORMAT_LIMIT_EXCEEDED',
        this.path,
        `GGUF header larger than the ${this.maxHeaderBytes}-byte limit (at ${what}, offset ${this.pos})`,
      );
    }
    const end = this.bufStart + this.buf.length;
    if (this.pos >= this.bufStart && this.pos + n <= end) return this.pos - this.bufStart;
    // Refill from pos with a chunk that doubles each time (up to 16 MiB), and at least n bytes.
    const size = Math.min(Math.max(n, this.chunk), this.fileSize - this.pos);
    this.chunk = Math.min(this.chunk * 2, 16 * 1024 * 1024);
    const next = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const r = fs.readSync(this.fd, next, got, size - got, this.pos + got);
      if (r === 0) {
        throw new ModelFormatError('FORMAT_TRUNCATED', this.path, `unexpected end of file at offset ${this.pos + got}`);
      }
      got += r;
    }
    this.buf = next;
    this.bufStart = this.pos;
    return 0;
  }

  u8(what: string): number {
    const o = this.need(1, what);
    this.pos += 1;
    return this.buf[o]!;
  }
  i8(what: string): number {
    const o = this.need(1, what);
    this.pos += 1;
    return this.buf.readInt8(o);
  }
  u16(what: string): number {
    const o = this.need(2, what);
    this.pos += 2;
    return this.buf.readUInt16LE(o);
  }
  i16(what: string): number {
    const o = this.need(2, what);
    this.pos += 2;
    return this.buf.readInt16LE(o);
  }
  u32(what: string): number {
    const o = this.need(4, what);
    this.pos += 4;
    return this.buf.readUInt32LE(o);
  }
  i32(what: string): number {
    const o = this.need(4, what);
    this.pos += 4;
    return this.buf.readInt32LE(o);
  }
  f32(what: string): number {
    const o = this.need(4, what);
    this.pos += 4;
    return this.buf.readFloatLE(o);
  }
  f64(what: string): number {
    const o = this.need(8, what);
    this.pos += 8;
    return this.buf.readDoubleLE(o);
  }
  u64big(what: string): bigint {
    const o = this.need(8, what);
    this.pos += 8;
    return this.buf.readBigUInt64LE(o);
  }
  i64big(what: string): bigint {
    const o = this.need(8, what);
    this.pos += 8;
    return this.buf.readBigInt64LE(o);
  }

  /**
   * A u64 used as a size or count. Above `limit` (a sane bound) it is LIMIT_EXCEEDED; above `fits` (what
   * the rest of the file can hold) it is TRUNCATED.
   */
  size(what: string, fits: number, limit: number): number {
    const o = this.need(8, what);
    this.pos += 8;
    const hi = this.buf.readUInt32LE(o + 4);
    // Values of 2^53 and above are beyond every limit; below, the number is exact.
    const v = hi >= 0x200000 ? Infinity : hi * 0x100000000 + this.buf.readUInt32LE(o);
    if (v > limit) {
      const shown = hi >= 0x200000 ? this.buf.readBigUInt64LE(o) : v;
      throw new ModelFormatError('FORMAT_LIMIT_EXCEEDED', this.path, `${what} is ${shown}, beyond the limit of ${limit}`);
    }
    if (v > Math.max(0, fits)) {
      throw new ModelFormatError(
        'FORMAT_TRUNCATED',
        this.path,
        `GGUF header truncated: ${what} is ${v}, more than the rest of the file (${this.remaining} bytes at offset ${this.pos}) can hold`,
      );
    }
    return v;
  }

  bytes(n: number, what: string): Buffer {
    const o = this.need(n, what);
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }

  string(what: string): string {
    // Hot path (vocabularies hold 100k+ strings): no message strings are built unless something is wrong.
    const o = this.need(8, what);
    const hi = this.buf.readUInt32LE(o + 4);
    const n = this.buf.readUInt32LE(o);
    if (hi !== 0 || n > MAX_STRING_BYTES || n > this.remaining - 8) {
      return this.failString(what);
    }
    this.pos += 8;
    if (n === 0) return '';
    const start = this.need(n, what);
    this.pos += n;
    return this.buf.toString('utf8', start, start + n);
  }

  private failString(what: string): never {
    this.size(`length of ${what}`, this.remaining - 8, MAX_STRING_BYTES);
    throw new Error('unreachable');
  }

  /** Copies `count` elements of `bytesEach` into a fresh, aligned buffer (for typed-array views). */
  rawArray(count: number, bytesEach: number, what: string): ArrayBuffer {
    const n = count * bytesEach;
    const out = new ArrayBuffer(n);
    const dst = new Uint8Array(out);
    // Read in window-sized pieces so a huge array does not force a single huge window.
    let done = 0;
    while (done < n) {
      const piece = Math.min(n - done, 16 * 1024 * 1024);
      dst.set(this.bytes(piece, what), done);
      done += piece;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Parsing

function readArray(r: WindowReader, key: string, depth: number, onType?: (t: GgufValueType) => void): GgufArray {
  if (depth > MAX_ARRAY_NESTING) {
    throw new ModelFormatError('FORMAT_LIMIT_EXCEEDED', r.path, `metadata ${key}: arrays nested deeper than ${MAX_ARRAY_NESTING}`);
  }
  const type = r.u32(`element type of ${key}`);
  const each = SCALAR_SIZE[type];
  if (each === undefined) {
    throw new ModelFormatError('FORMAT_UNKNOWN_TYPE', r.path, `metadata ${key}: unknown array element type ${type}`);
  }
  onType?.(type as GgufValueType);
  const count = r.size(`element count of ${key}`, Math.floor((r.remaining - 8) / each), MAX_ARRAY_COUNT);
  const what = `elements of ${key}`;
  const isLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const typed = <T>(make: (b: ArrayBuffer) => T, bytes: number, readOne: () => number | bigint): T => {
    if (isLE) return make(r.rawArray(count, bytes, what));
    const a = make(new ArrayBuffer(count * bytes)) as unknown as { [i: number]: number | bigint };
    for (let i = 0; i < count; i++) a[i] = readOne();
    return a as unknown as T;
  };
  switch (type) {
    case GgufValueType.UINT8:
      return new Uint8Array(r.rawArray(count, 1, what));
    case GgufValueType.INT8:
      return new Int8Array(r.rawArray(count, 1, what));
    case GgufValueType.UINT16:
      return typed((b) => new Uint16Array(b), 2, () => r.u16(what));
    case GgufValueType.INT16:
      return typed((b) => new Int16Array(b), 2, () => r.i16(what));
    case GgufValueType.UINT32:
      return typed((b) => new Uint32Array(b), 4, () => r.u32(what));
    case GgufValueType.INT32:
      return typed((b) => new Int32Array(b), 4, () => r.i32(what));
    case GgufValueType.FLOAT32:
      return typed((b) => new Float32Array(b), 4, () => r.f32(what));
    case GgufValueType.FLOAT64:
      return typed((b) => new Float64Array(b), 8, () => r.f64(what));
    case GgufValueType.UINT64:
      return typed((b) => new BigUint64Array(b), 8, () => r.u64big(what));
    case GgufValueType.INT64:
      return typed((b) => new BigInt64Array(b), 8, () => r.i64big(what));
    case GgufValueType.BOOL: {
      const raw = r.bytes(count, what);
      return Array.from(raw, (b) => b !== 0);
    }
    case GgufValueType.STRING: {
      const out = new Array<string>(count);
      for (let i = 0; i < count; i++) out[i] = r.string(key);
      return out;
    }
    case GgufValueType.ARRAY: {
      const out = new Array<GgufArray>(count);
      for (let i = 0; i < count; i++) out[i] = readArray(r, `${key}[${i}]`, depth + 1);
      return out;
    }
  }
  throw new ModelFormatError('FORMAT_UNKNOWN_TYPE', r.path, `metadata ${key}: unknown array element type ${type}`);
}

function int64ToValue(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function readValue(r: WindowReader, key: string, type: number, onArrayType: (t: GgufValueType) => void): GgufValue {
  switch (type) {
    case GgufValueType.UINT8:
      return r.u8(key);
    case GgufValueType.INT8:
      return r.i8(key);
    case GgufValueType.UINT16:
      return r.u16(key);
    case GgufValueType.INT16:
      return r.i16(key);
    case GgufValueType.UINT32:
      return r.u32(key);
    case GgufValueType.INT32:
      return r.i32(key);
    case GgufValueType.FLOAT32:
      return r.f32(key);
    case GgufValueType.FLOAT64:
      return r.f64(key);
    case GgufValueType.UINT64:
      return int64ToValue(r.u64big(key));
    case GgufValueType.INT64:
      return int64ToValue(r.i64big(key));
    case GgufValueType.BOOL: {
      const b = r.u8(key);
      if (b > 1) throw new ModelFormatError('FORMAT_INVALID', r.path, `metadata ${key}: bool value ${b}`);
      return b === 1;
    }
    case GgufValueType.STRING:
      return r.string(key);
    case GgufValueType.ARRAY:
      return readArray(r, key, 0, onArrayType);
  }
  throw new ModelFormatError('FORMAT_UNKNOWN_TYPE', r.path, `metadata ${key}: unknown value type ${type}`);
}

function parse(r: WindowReader): Omit<GgufFile, 'path' | 'fileSize'> {
  if (r.fileSize < 4) {
    throw new ModelFormatError('FORMAT_TRUNCATED', r.path, `file is ${r.fileSize} bytes, too short for a GGUF magic`);
  }
  const magic = r.u32('magic');
  if (magic !== GGUF_MAGIC) {
    const shown = Buffer.alloc(4);
    shown.writeUInt32LE(magic);
    throw new ModelFormatError(
      'FORMAT_BAD_MAGIC',
      r.path,
      `not a GGUF file (magic ${JSON.stringify(shown.toString('latin1'))}, expected "GGUF")`,
    );
  }
  const version = r.u32('version');
  if (version === 1) {
    throw new ModelFormatError(
      'FORMAT_UNSUPPORTED_VERSION',
      r.path,
      'GGUF v1 is not supported (32-bit counts, pre-August-2023); re-convert the model with a current llama.cpp',
    );
  }
  if (version !== 2 && version !== 3) {
    // A big-endian GGUF stores the version byte-swapped (0x02000000 / 0x03000000).
    const swapped = ((version & 0xff) << 24) | ((version >>> 8) & 0xff) << 16 | ((version >>> 16) & 0xff) << 8 | (version >>> 24);
    const hint = swapped === 2 || swapped === 3 ? ' (a big-endian GGUF; only little-endian files are supported)' : '';
    throw new ModelFormatError('FORMAT_UNSUPPORTED_VERSION', r.path, `unsupported GGUF version ${version}${hint}`);
  }

  // Each tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; each kv 8 + 4 + 1.
  const nTensors = r.size('tensor count', Math.floor((r.remaining - 16) / 24), MAX_TENSORS);
  const nKv = r.size('metadata key/value count', Math.floor((r.remaining - 8) / 13), MAX_KV);

  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, GgufValueType>();
  const metadataArrayTypes = new Map<string, GgufValueType>();
  for (let i = 0; i < nKv; i++) {
    const key = r.string(`metadata key #${i}`);
    const type = r.u32(`value type of ${key}`);
    if (SCALAR_SIZE[type] === undefined) {
      throw new ModelFormatError('FORMAT_UNKNOWN_TYPE', r.path, `metadata ${key}: unknown value type ${type}`);
    }
    if (metadata.has(key)) {
      throw new ModelFormatError('FORMAT_INVALID', r.path, `duplicate metadata key ${JSON.stringify(key)}`);
    }
    const value = readValue(r, key, type, (t) => metadataArrayTypes.set(key, t));
    metadata.set(key, value);
    metadataTypes.set(key, type as GgufValueType);
  }

  let alignment = 32;
  const alignValue = metadata.get('general.alignment');
  if (alignValue !== undefined) {
    if (
      metadataTypes.get('general.alignment') !== GgufValueType.UINT32 ||
      typeof alignValue !== 'number' ||
      alignValue === 0 ||
      (alignValue & (alignValue - 1)) !== 0 ||
      alignValue > MAX_ALIGNMENT
    ) {
      throw new ModelFormatError(
        'FORMAT_INVALID',
        r.path,
        `general.alignment must be a u32 power of two up to ${MAX_ALIGNMENT}, got ${String(alignValue)}`,
      );
    }
    alignment = alignValue;
  }

  type Pending = Omit<GgufTensorInfo, 'offset'>;
  const pending: Pending[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = r.string(`name of tensor #${i}`);
    if (names.has(name)) {
      throw new ModelFormatError('FORMAT_INVALID', r.path, `duplicate tensor name ${JSON.stringify(name)}`);
    }
    names.add(name);
    const nDims = r.u32(`dimension count of tensor ${name}`);
    if (nDims > GGML_MAX_DIMS) {
      throw new ModelFormatError('FORMAT_LIMIT_EXCEEDED', r.path, `tensor ${name} has ${nDims} dimensions (at most ${GGML_MAX_DIMS})`);
    }
    const dims: number[] = [];
    let nElements = 1;
    for (let d = 0; d < nDims; d++) {
      const ne = r.size(`dimension ${d} of tensor ${name}`, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      dims.push(ne);
      nElements *= ne;
      if (!Number.isSafeInteger(nElements)) {
        throw new ModelFormatError('FORMAT_LIMIT_EXCEEDED', r.path, `tensor ${name}: element count overflows (dims ${dims.join('x')}...)`);
      }
    }
    const type = r.u32(`type of tensor ${name}`);
    const traits = TYPE_TRAITS.get(type);
    if (!traits) {
      throw new ModelFormatError('FORMAT_UNKNOWN_TYPE', r.path, `tensor ${name} has unknown ggml type ${type}`);
    }
    if (nDims > 0 && dims[0]! % traits.blockSize !== 0) {
      throw new ModelFormatError(
        'FORMAT_INVALID',
        r.path,
        `tensor ${name}: row size ${dims[0]} is not a multiple of the ${traits.name} block size ${traits.blockSize}`,
      );
    }
    const relativeOffset = r.size(`data offset of tensor ${name}`, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    if (relativeOffset % alignment !== 0) {
      throw new ModelFormatError('FORMAT_INVALID', r.path, `tensor ${name}: data offset ${relativeOffset} is not aligned to ${alignment}`);
    }
    const byteSize = (nElements / traits.blockSize) * traits.typeSize;
    pending.push({ name, dims, type, typeName: traits.name, nElements, relativeOffset, byteSize });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = pending.map((t) => ({ ...t, offset: dataOffset + t.relativeOffset }));
  for (const t of tensors) {
    if (t.offset + t.byteSize > r.fileSize) {
      throw new ModelFormatError(
        'FORMAT_TRUNCATED',
        r.path,
        `data of tensor ${t.name} (${t.typeName} ${t.dims.join('x')}, ${t.byteSize} bytes at offset ${t.offset}) runs past the end of the file (${r.fileSize} bytes)`,
      );
    }
  }
  // Tensors must not overlap (writers lay them out in order, but offsets are free-form).
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (a.offset + a.byteSize > b.offset && a.byteSize > 0 && b.byteSize > 0) {
      throw new ModelFormatError('FORMAT_INVALID', r.path, `data of tensors ${a.name} and ${b.name} overlap`);
    }
  }

  return { version: version as 2 | 3, metadata, metadataTypes, metadataArrayTypes, tensors, alignment, dataOffset };
}

/**
 * Reads the header of a GGUF file (v2 or v3, little-endian): metadata, tensor infos, the absolute data
 * offset and byte size of every tensor. Throws `ModelFormatError` (see its `code`) on a bad magic, an
 * unsupported version, a truncated header or tensor, absurd sizes, or an unknown type.
 */
export function readGguf(path: string, options: ReadGgufOptions = {}): GgufFile {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new ModelFormatError('FORMAT_IO', path, `cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    const r = new WindowReader(fd, path, fileSize, options.maxHeaderBytes ?? 1024 * 1024 * 1024);
    return { path, fileSize, ...parse(r) };
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Typed metadata access

function describe(v: GgufValue | undefined): string {
  if (v === undefined) return 'missing';
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return 'an array';
  return `${typeof v} ${String(v)}`;
}

/** metadata[key] as a string; `fallback` when absent, TypeError when of another type. */
export function ggufString(file: Pick<GgufFile, 'metadata'>, key: string): string | undefined;
export function ggufString(file: Pick<GgufFile, 'metadata'>, key: string, fallback: string): string;
export function ggufString(file: Pick<GgufFile, 'metadata'>, key: string, fallback?: string): string | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw new TypeError(`GGUF metadata ${key} is ${describe(v)}, expected a string`);
  return v;
}

/** metadata[key] as a number (any integer or float scalar). */
export function ggufNumber(file: Pick<GgufFile, 'metadata'>, key: string): number | undefined;
export function ggufNumber(file: Pick<GgufFile, 'metadata'>, key: string, fallback: number): number;
export function ggufNumber(file: Pick<GgufFile, 'metadata'>, key: string, fallback?: number): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return fallback;
  if (typeof v === 'bigint') throw new TypeError(`GGUF metadata ${key} is ${v}, beyond 2^53`);
  if (typeof v !== 'number') throw new TypeError(`GGUF metadata ${key} is ${describe(v)}, expected a number`);
  return v;
}

/** metadata[key] as a boolean. */
export function ggufBool(file: Pick<GgufFile, 'metadata'>, key: string): boolean | undefined;
export function ggufBool(file: Pick<GgufFile, 'metadata'>, key: string, fallback: boolean): boolean;
export function ggufBool(file: Pick<GgufFile, 'metadata'>, key: string, fallback?: boolean): boolean | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new TypeError(`GGUF metadata ${key} is ${describe(v)}, expected a boolean`);
  return v;
}
