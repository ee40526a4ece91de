/**
 * safetensors: header reader (single files and sharded `model.safetensors.index.json` folders) and an
 * atomic writer.
 *
 * Layout: u64 LE header length N | N bytes of JSON | data. The JSON maps tensor names to
 * `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the data section) plus an optional
 * `__metadata__` object of string values. Only the header is read; tensor data is located and bounds-checked.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError } from './errors.ts';

/** Bytes per element of each safetensors dtype. */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  /** Row-major shape, outermost first. */
  shape: number[];
  nElements: number;
  /** `data_offsets` as stored: relative to the data section. */
  dataOffsets: [number, number];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteSize: number;
}

export interface SafetensorsHeader {
  path: string;
  /** Length of the JSON header (N). */
  headerSize: number;
  /** Absolute offset of the data section (8 + N). */
  dataOffset: number;
  fileSize: number;
  /** `__metadata__`, or an empty object. */
  metadata: Record<string, string>;
  /** Tensors in header order. */
  tensors: SafetensorsTensorInfo[];
  /** The same tensors by name. */
  tensorsByName: Map<string, SafetensorsTensorInfo>;
}

/** Largest JSON header accepted (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, s);
}

function openForRead(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    throw new ModelFormatError('FORMAT_IO', file, `cannot open: ${(e as Error).message}`, { cause: e });
  }
}

function readExactly(fd: number, file: string, length: number, position: number, what: string): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, position + got);
    if (n === 0) {
      throw new ModelFormatError('FORMAT_TRUNCATED', file, `file ends at ${position + got} while reading ${what}`);
    }
    got += n;
  }
  return buf;
}

/** Parses the header JSON of a safetensors file (tensor data is not read). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForRead(file);
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) {
      throw new ModelFormatError('FORMAT_TRUNCATED', file, `file is ${fileSize} bytes, too short for a safetensors header length`);
    }
    const lenBig = readExactly(fd, file, 8, 0, 'header length').readBigUInt64LE(0);
    if (lenBig > BigInt(MAX_HEADER_BYTES)) {
      throw new ModelFormatError(
        'FORMAT_LIMIT_EXCEEDED',
        file,
        `safetensors header length ${lenBig} is beyond the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
      );
    }
    const headerSize = Number(lenBig);
    if (8 + headerSize > fileSize) {
      throw new ModelFormatError(
        'FORMAT_TRUNCATED',
        file,
        `safetensors header claims ${headerSize} bytes, but the file has only ${fileSize - 8} after the length`,
      );
    }
    const raw = readExactly(fd, file, headerSize, 8, 'header');
    if (headerSize < 2 || raw[0] !== 0x7b /* { */) {
      throw new ModelFormatError('FORMAT_BAD_MAGIC', file, 'not a safetensors file (header does not start with "{")');
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
    } catch (e) {
      throw new ModelFormatError('FORMAT_INVALID', file, `safetensors header is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    return parseHeader(file, json, headerSize, fileSize);
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(file: string, json: unknown, headerSize: number, fileSize: number): SafetensorsHeader {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelFormatError('FORMAT_INVALID', file, 'safetensors header is not a JSON object');
  }
  const dataOffset = 8 + headerSize;
  const dataSize = fileSize - dataOffset;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  const bad = (name: string, problem: string): never => {
    throw new ModelFormatError('FORMAT_INVALID', file, `tensor ${JSON.stringify(name)}: ${problem}`);
  };

  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new ModelFormatError('FORMAT_INVALID', file, '__metadata__ is not an object');
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') {
          throw new ModelFormatError('FORMAT_INVALID', file, `__metadata__.${k} is ${typeof v}, expected a string`);
        }
        metadata[k] = v;
      }
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) bad(name, 'entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDtype(dtype)) {
      throw new ModelFormatError('FORMAT_UNKNOWN_TYPE', file, `tensor ${JSON.stringify(name)}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape)) return bad(name, 'shape is not an array');
    let nElements = 1;
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) bad(name, `shape ${JSON.stringify(shape)} has an invalid dimension`);
      nElements *= d as number;
      if (!Number.isSafeInteger(nElements)) {
        throw new ModelFormatError('FORMAT_LIMIT_EXCEEDED', file, `tensor ${JSON.stringify(name)}: shape ${JSON.stringify(shape)} overflows`);
      }
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      return bad(name, `data_offsets ${JSON.stringify(offsets)} are not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    const byteSize = nElements * SAFETENSORS_DTYPE_BYTES[dtype];
    if (end - begin !== byteSize) {
      bad(name, `data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${byteSize}`);
    }
    if (end > dataSize) {
      throw new ModelFormatError(
        'FORMAT_TRUNCATED',
        file,
        `tensor ${JSON.stringify(name)}: data [${begin}, ${end}) runs past the end of the data section (${dataSize} bytes)`,
      );
    }
    tensors.push({
      name,
      dtype,
      shape: shape as number[],
      nElements,
      dataOffsets: [begin, end],
      offset: dataOffset + begin,
      byteSize,
    });
  }

  const sorted = [...tensors].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (a.byteSize > 0 && b.byteSize > 0 && a.dataOffsets[1] > b.dataOffsets[0]) {
      throw new ModelFormatError('FORMAT_INVALID', file, `data of tensors ${JSON.stringify(a.name)} and ${JSON.stringify(b.name)} overlap`);
    }
  }
  return { path: file, headerSize, dataOffset, fileSize, metadata, tensors, tensorsByName: new Map(tensors.map((t) => [t.name, t])) };
}

/** Reads one tensor's raw bytes (little-endian, row-major) with a positioned read. */
export function readSafetensorsTensorData(header: SafetensorsHeader, name: string): Uint8Array {
  const t = header.tensorsByName.get(name);
  if (!t) throw new ModelFormatError('FORMAT_INVALID', header.path, `no tensor named ${JSON.stringify(name)}`);
  const fd = openForRead(header.path);
  try {
    return new Uint8Array(readExactly(fd, header.path, t.byteSize, t.offset, `tensor ${name}`));
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sharded checkpoints

export interface SafetensorsIndex {
  folder: string;
  /** The index file, or null for a folder with a single `model.safetensors`. */
  indexPath: string | null;
  /** The index's `metadata` (e.g. `total_size`), or an empty object. */
  metadata: Record<string, unknown>;
  /** Shard file name (relative to `folder`) to its header. */
  shards: Map<string, SafetensorsHeader>;
  /** Tensor name to its shard's header and the tensor's info. */
  tensors: Map<string, { shard: SafetensorsHeader; info: SafetensorsTensorInfo }>;
}

export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

/**
 * Reads a checkpoint folder: `model.safetensors.index.json` and the header of every shard it names,
 * checking that each tensor is where the index says. A folder with only `model.safetensors` reads as
 * one shard.
 */
export function readSafetensorsIndex(folder: string): SafetensorsIndex {
  const indexPath = path.join(folder, SAFETENSORS_INDEX_FILE);
  if (!fs.existsSync(indexPath)) {
    const single = path.join(folder, 'model.safetensors');
    if (!fs.existsSync(single)) {
      throw new ModelFormatError('FORMAT_IO', folder, `neither ${SAFETENSORS_INDEX_FILE} nor model.safetensors found`);
    }
    const header = readSafetensorsHeader(single);
    return {
      folder,
      indexPath: null,
      metadata: {},
      shards: new Map([['model.safetensors', header]]),
      tensors: new Map(header.tensors.map((info) => [info.name, { shard: header, info }])),
    };
  }

  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new ModelFormatError('FORMAT_INVALID', indexPath, `not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new ModelFormatError('FORMAT_INVALID', indexPath, 'no weight_map object');
  }
  const metaRaw = (json as { metadata?: unknown }).metadata;
  const metadata = typeof metaRaw === 'object' && metaRaw !== null && !Array.isArray(metaRaw) ? (metaRaw as Record<string, unknown>) : {};

  const shards = new Map<string, SafetensorsHeader>();
  const tensors = new Map<string, { shard: SafetensorsHeader; info: SafetensorsTensorInfo }>();
  for (const [name, shardName] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shardName !== 'string' || shardName === '' || shardName !== path.basename(shardName) || shardName === '..') {
      throw new ModelFormatError('FORMAT_INVALID', indexPath, `weight_map[${JSON.stringify(name)}] is not a file name in the folder: ${JSON.stringify(shardName)}`);
    }
    let shard = shards.get(shardName);
    if (!shard) {
      shard = readSafetensorsHeader(path.join(folder, shardName));
      shards.set(shardName, shard);
    }
    const info = shard.tensorsByName.get(name);
    if (!info) {
      throw new ModelFormatError('FORMAT_INVALID', indexPath, `tensor ${JSON.stringify(name)} is mapped to ${shardName}, which does not contain it`);
    }
    tensors.set(name, { shard, info });
  }
  const total = metadata['total_size'];
  if (typeof total === 'number') {
    let sum = 0;
    for (const { info } of tensors.values()) sum += info.byteSize;
    // Some exporters count only part of the data (tied weights); a total below the sum is an error, above is not.
    if (sum > total && tensors.size > 0 && total > 0) {
      throw new ModelFormatError('FORMAT_INVALID', indexPath, `metadata.total_size ${total} is less than the ${sum} bytes of the mapped tensors`);
    }
  }
  return { folder, indexPath, metadata, shards, tensors };
}

// ---------------------------------------------------------------------------------------------------------
// Writing

export interface SafetensorsTensorInput {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Row-major little-endian data: a typed array or bytes of exactly nElements x dtype size. */
  data: ArrayBufferView;
}

/**
 * Writes a safetensors file atomically: the file is written under a temporary name in the same folder,
 * flushed, then renamed over `file`, so readers never see a partial file. Tensors are laid out in the
 * given order; the header is padded with spaces so the data section starts 8-byte aligned.
 */
export function writeSafetensors(
  file: string,
  tensors: Record<string, SafetensorsTensorInput> | Iterable<[string, SafetensorsTensorInput]>,
  metadata: Record<string, string> = {},
): void {
  const entries: [string, SafetensorsTensorInput][] =
    Symbol.iterator in Object(tensors) ? [...(tensors as Iterable<[string, SafetensorsTensorInput]>)] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`safetensors metadata ${k} must be a string, got ${typeof v}`);
    }
    header['__metadata__'] = metadata;
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const [name, t] of entries) {
    if (name === '__metadata__' || seen.has(name)) throw new TypeError(`invalid or duplicate tensor name ${JSON.stringify(name)}`);
    seen.add(name);
    if (!isDtype(t.dtype)) throw new TypeError(`tensor ${name}: unknown dtype ${String(t.dtype)}`);
    let n = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new TypeError(`tensor ${name}: invalid shape ${JSON.stringify(t.shape)}`);
      n *= d;
    }
    const bytes = n * SAFETENSORS_DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) {
      throw new TypeError(`tensor ${name}: ${t.dtype} ${JSON.stringify(t.shape)} needs ${bytes} bytes, data has ${t.data.byteLength}`);
    }
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = fs.openSync(tmp, 'wx');
  try {
    try {
      writeAll(fd, prefix);
      writeAll(fd, json);
      for (const [, t] of entries) writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}
