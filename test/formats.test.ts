/**
 * Model file formats: GGUF header reading and safetensors reading / writing.
 *
 *  - Synthetic GGUF files written here (every value type, arrays, custom alignment, quantized tensor sizes)
 *    and their typed errors: bad magic, v1 / unknown / big-endian versions, truncation at every byte of a
 *    file, absurd counts and lengths, unknown types, misaligned offsets, duplicates.
 *  - A sparse 2 GiB GGUF: the header is read without reading the data.
 *  - Real GGUFs from ../shared (stories260K, the vocabulary files), skipped visibly when absent.
 *  - safetensors: write/read round trip (atomic writes, alignment, metadata), malformed headers, sharded
 *    index folders, and the Hugging Face fixtures (test/fixtures/hf, else ../shared/fixtures/hf).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ModelFormatError, type ModelFormatErrorCode } from '../ts/formats/errors.ts';
import { GgmlType, ggmlTensorBytes, ggmlTypeTraits, ggufNumber, ggufString, GgufValueType, readGguf } from '../ts/formats/gguf.ts';
import {
  readSafetensorsHeader,
  readSafetensorsIndex,
  readSafetensorsTensorData,
  SAFETENSORS_INDEX_FILE,
  writeSafetensors,
} from '../ts/formats/safetensors.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.HOGWILD_SHARED ?? path.resolve(repoRoot, '../shared');

function skip(what: string, reason: string): void {
  console.log(`\nSKIP ${what}: ${reason}`);
}

let tmpRoot = '';
function tmpFile(name: string): string {
  if (!tmpRoot) tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'hogwild-formats-'));
  return path.join(tmpRoot, name);
}

function expectFormatError(fn: () => unknown, code: ModelFormatErrorCode, what: string, pattern?: RegExp): ModelFormatError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (!(thrown instanceof ModelFormatError)) {
    throw new Error(`${what}: expected ModelFormatError ${code}, got ${thrown === undefined ? 'no error' : String(thrown)}`);
  }
  assert.is(thrown.code, code, `${what}: code (message: ${thrown.message})`);
  assert.is(thrown.name, 'ModelFormatError');
  if (pattern) assert.match(thrown.message, pattern, `${what}: message`);
  return thrown;
}

// -----------------------------------------------------------------------------------------------------------
// A small GGUF writer for synthetic files

type Kv = { key: string; type: number; value: unknown; elemType?: number };
type TensorSpec = { name: string; dims: number[]; type: number; offset?: number; bytes?: number };

class Bytes {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
  u8(v: number) {
    return this.push(Buffer.of(v));
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return this.push(b);
  }
  u64(v: number | bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    return this.push(b);
  }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    return this.u64(b.length).push(b);
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function writeScalar(out: Bytes, type: number, v: unknown): void {
  const b = Buffer.alloc(8);
  switch (type) {
    case GgufValueType.UINT8: return void out.u8(v as number);
    case GgufValueType.INT8: b.writeInt8(v as number); return void out.push(b.subarray(0, 1));
    case GgufValueType.UINT16: b.writeUInt16LE(v as number); return void out.push(b.subarray(0, 2));
    case GgufValueType.INT16: b.writeInt16LE(v as number); return void out.push(b.subarray(0, 2));
    case GgufValueType.UINT32: return void out.u32(v as number);
    case GgufValueType.INT32: b.writeInt32LE(v as number); return void out.push(b.subarray(0, 4));
    case GgufValueType.FLOAT32: b.writeFloatLE(v as number); return void out.push(b.subarray(0, 4));
    case GgufValueType.BOOL: return void out.u8(v ? 1 : 0);
    case GgufValueType.STRING: return void out.str(v as string);
    case GgufValueType.UINT64: return void out.u64(v as bigint | number);
    case GgufValueType.INT64: b.writeBigInt64LE(BigInt(v as number)); return void out.push(b);
    case GgufValueType.FLOAT64: b.writeDoubleLE(v as number); return void out.push(b);
  }
  out.push(b); // an invalid type id (for error tests): some bytes
}

function buildGguf(opts: {
  magic?: string;
  version?: number;
  kvs?: Kv[];
  tensors?: TensorSpec[];
  alignment?: number;
  /** Override counts (for absurd-count tests). */
  nTensors?: number | bigint;
  nKv?: number | bigint;
  /** Omit tensor data (and padding). */
  noData?: boolean;
}): Buffer {
  const kvs = opts.kvs ?? [];
  const tensors = opts.tensors ?? [];
  const alignment = opts.alignment ?? 32;
  const out = new Bytes();
  out.push(Buffer.from(opts.magic ?? 'GGUF', 'latin1'));
  out.u32(opts.version ?? 3);
  out.u64(opts.nTensors ?? tensors.length);
  out.u64(opts.nKv ?? kvs.length);
  for (const kv of kvs) {
    out.str(kv.key).u32(kv.type);
    if (kv.type === GgufValueType.ARRAY) {
      const arr = kv.value as unknown[];
      out.u32(kv.elemType!).u64(arr.length);
      for (const v of arr) writeScalar(out, kv.elemType!, v);
    } else {
      writeScalar(out, kv.type, kv.value);
    }
  }
  // Lay tensors out in order, each at an aligned offset, unless the spec gives one.
  let next = 0;
  const placed = tensors.map((t) => {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const bytes = t.bytes ?? (ggmlTypeTraits(t.type) ? ggmlTensorBytes(t.type, n) : 16);
    const offset = t.offset ?? next;
    next = Math.ceil((offset + bytes) / alignment) * alignment;
    return { ...t, offset, bytes };
  });
  for (const t of placed) {
    out.str(t.name).u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.type).u64(t.offset);
  }
  if (opts.noData || placed.length === 0) return out.build();
  const pad = Math.ceil(out.length / alignment) * alignment - out.length;
  out.push(Buffer.alloc(pad));
  const end = Math.max(...placed.map((t) => t.offset + t.bytes));
  const data = Buffer.alloc(end);
  // Fill each tensor with its index so reads can be checked.
  placed.forEach((t, i) => data.fill(i + 1, t.offset, t.offset + t.bytes));
  return Buffer.concat([out.build(), data]);
}

const S = suite('formats');

// -----------------------------------------------------------------------------------------------------------
// GGUF

S('ggml type sizes: bytes per block of the common types', () => {
  const expect: [keyof typeof GgmlType, number, number][] = [
    ['F32', 1, 4],
    ['F16', 1, 2],
    ['BF16', 1, 2],
    ['Q4_0', 32, 18],
    ['Q4_1', 32, 20],
    ['Q5_0', 32, 22],
    ['Q5_1', 32, 24],
    ['Q8_0', 32, 34],
    ['Q2_K', 256, 84],
    ['Q3_K', 256, 110],
    ['Q4_K', 256, 144],
    ['Q5_K', 256, 176],
    ['Q6_K', 256, 210],
    ['Q8_K', 256, 292],
  ];
  for (const [name, block, size] of expect) {
    const t = ggmlTypeTraits(GgmlType[name])!;
    assert.is(t.name, name);
    assert.is(t.blockSize, block, `${name} block`);
    assert.is(t.typeSize, size, `${name} bytes`);
  }
  assert.is(ggmlTensorBytes(GgmlType.Q4_K, 4096 * 4096), (4096 * 4096 / 256) * 144);
  assert.is(ggmlTypeTraits(4), undefined); // Q4_2, removed from ggml
  assert.throws(() => ggmlTensorBytes(GgmlType.Q8_0, 33), /multiple/);
});

const ALL_KVS: Kv[] = [
  { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
  { key: 'general.name', type: GgufValueType.STRING, value: 'tést ✓' },
  { key: 'u8', type: GgufValueType.UINT8, value: 200 },
  { key: 'i8', type: GgufValueType.INT8, value: -100 },
  { key: 'u16', type: GgufValueType.UINT16, value: 60000 },
  { key: 'i16', type: GgufValueType.INT16, value: -30000 },
  { key: 'u32', type: GgufValueType.UINT32, value: 4000000000 },
  { key: 'i32', type: GgufValueType.INT32, value: -2000000000 },
  { key: 'f32', type: GgufValueType.FLOAT32, value: 0.5 },
  { key: 'bool', type: GgufValueType.BOOL, value: true },
  { key: 'u64', type: GgufValueType.UINT64, value: 1234567890123n },
  { key: 'u64.big', type: GgufValueType.UINT64, value: 2n ** 63n },
  { key: 'i64', type: GgufValueType.INT64, value: -5 },
  { key: 'f64', type: GgufValueType.FLOAT64, value: Math.PI },
  { key: 'arr.str', type: GgufValueType.ARRAY, elemType: GgufValueType.STRING, value: ['a', '', '▁b', '<0x0A>'] },
  { key: 'arr.f32', type: GgufValueType.ARRAY, elemType: GgufValueType.FLOAT32, value: [1.5, -2, 0] },
  { key: 'arr.i32', type: GgufValueType.ARRAY, elemType: GgufValueType.INT32, value: [1, -1, 6] },
  { key: 'arr.u8', type: GgufValueType.ARRAY, elemType: GgufValueType.UINT8, value: [1, 2, 255] },
  { key: 'arr.bool', type: GgufValueType.ARRAY, elemType: GgufValueType.BOOL, value: [true, false] },
  { key: 'arr.u64', type: GgufValueType.ARRAY, elemType: GgufValueType.UINT64, value: [1n, 2n ** 60n] },
  { key: 'arr.empty', type: GgufValueType.ARRAY, elemType: GgufValueType.STRING, value: [] },
];

const TENSORS: TensorSpec[] = [
  { name: 'tok_embd.weight', dims: [8, 3], type: GgmlType.F32 },
  { name: 'f16', dims: [5], type: GgmlType.F16 },
  { name: 'bf16', dims: [2, 2], type: GgmlType.BF16 },
  { name: 'q8', dims: [64, 2], type: GgmlType.Q8_0 },
  { name: 'q4', dims: [32], type: GgmlType.Q4_0 },
  { name: 'q4k', dims: [256, 1, 1, 2], type: GgmlType.Q4_K },
  { name: 'q6k', dims: [512], type: GgmlType.Q6_K },
];

S('GGUF: metadata of every type, tensor infos, offsets and sizes (v2 and v3, alignment 32 and 64)', () => {
  for (const version of [2, 3]) {
    for (const alignment of [32, 64]) {
      const kvs = alignment === 32 ? ALL_KVS : [...ALL_KVS, { key: 'general.alignment', type: GgufValueType.UINT32, value: alignment }];
      const buf = buildGguf({ version, kvs, tensors: TENSORS, alignment });
      const file = tmpFile(`ok-v${version}-a${alignment}.gguf`);
      fs.writeFileSync(file, buf);
      const g = readGguf(file);
      assert.is(g.version, version);
      assert.is(g.alignment, alignment);
      assert.is(g.fileSize, buf.length);
      assert.is(g.dataOffset % alignment, 0);
      const m = g.metadata;
      assert.is(m.get('general.name'), 'tést ✓');
      assert.is(ggufString(g, 'general.architecture'), 'llama');
      assert.is(m.get('u8'), 200);
      assert.is(m.get('i8'), -100);
      assert.is(m.get('u16'), 60000);
      assert.is(m.get('i16'), -30000);
      assert.is(m.get('u32'), 4000000000);
      assert.is(m.get('i32'), -2000000000);
      assert.is(m.get('f32'), 0.5);
      assert.is(m.get('bool'), true);
      assert.is(m.get('u64'), 1234567890123);
      assert.is(m.get('u64.big'), 2n ** 63n);
      assert.is(ggufNumber(g, 'i64'), -5);
      assert.is(m.get('f64'), Math.PI);
      assert.equal(m.get('arr.str'), ['a', '', '▁b', '<0x0A>']);
      assert.equal(Array.from(m.get('arr.f32') as Float32Array), [1.5, -2, 0]);
      assert.ok(m.get('arr.i32') instanceof Int32Array);
      assert.equal(Array.from(m.get('arr.i32') as Int32Array), [1, -1, 6]);
      assert.equal(Array.from(m.get('arr.u8') as Uint8Array), [1, 2, 255]);
      assert.equal(m.get('arr.bool'), [true, false]);
      assert.equal(Array.from(m.get('arr.u64') as BigUint64Array), [1n, 2n ** 60n]);
      assert.equal(m.get('arr.empty'), []);
      assert.is(g.metadataTypes.get('arr.str'), GgufValueType.ARRAY);
      assert.is(g.metadataArrayTypes.get('arr.str'), GgufValueType.STRING);
      assert.equal([...m.keys()], (alignment === 32 ? ALL_KVS : [...ALL_KVS, { key: 'general.alignment' }]).map((k) => k.key));

      const expectBytes = [96, 10, 8, 136, 18, 288, 420];
      assert.equal(g.tensors.map((t) => t.name), TENSORS.map((t) => t.name));
      assert.equal(g.tensors.map((t) => t.byteSize), expectBytes);
      assert.equal(g.tensors.map((t) => t.typeName), ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K']);
      assert.equal(g.tensors[5]!.dims, [256, 1, 1, 2]);
      assert.is(g.tensors[5]!.nElements, 512);
      let expectOffset = 0;
      for (const [i, t] of g.tensors.entries()) {
        assert.is(t.relativeOffset, expectOffset, `${t.name} relative offset`);
        assert.is(t.offset, g.dataOffset + expectOffset, `${t.name} absolute offset`);
        // The bytes there are the ones the writer put for this tensor.
        assert.is(buf[t.offset], i + 1);
        assert.is(buf[t.offset + t.byteSize - 1], i + 1);
        expectOffset = Math.ceil((expectOffset + t.byteSize) / alignment) * alignment;
      }
    }
  }
});

S('GGUF: a header-only file (no tensors) and a file whose data lies beyond 2 GiB read without reading data', () => {
  const vocabOnly = tmpFile('vocab-only.gguf');
  fs.writeFileSync(vocabOnly, buildGguf({ kvs: ALL_KVS.slice(0, 3) }));
  const g = readGguf(vocabOnly);
  assert.is(g.tensors.length, 0);
  assert.is(g.metadata.size, 3);

  // A sparse file: 16 bytes of header-declared... a 2 GiB F32 tensor whose data is never read.
  const big = tmpFile('sparse.gguf');
  const header = buildGguf({ kvs: ALL_KVS, tensors: [{ name: 'huge', dims: [65536, 8192], type: GgmlType.F32 }], noData: true });
  fs.writeFileSync(big, header);
  const dataOffset = Math.ceil(header.length / 32) * 32;
  fs.truncateSync(big, dataOffset + 65536 * 8192 * 4);
  const t0 = performance.now();
  const h = readGguf(big);
  const ms = performance.now() - t0;
  assert.is(h.tensors[0]!.byteSize, 2 ** 31);
  assert.is(h.tensors[0]!.offset, dataOffset);
  assert.is(h.fileSize, dataOffset + 2 ** 31);
  assert.ok(ms < 1000, `header read took ${ms.toFixed(0)} ms`);
  fs.truncateSync(big, dataOffset + 2 ** 31 - 1);
  expectFormatError(() => readGguf(big), 'FORMAT_TRUNCATED', 'tensor data one byte short', /huge.*past the end/);
  fs.rmSync(big);
});

S('GGUF: truncation at every byte of a file is FORMAT_TRUNCATED', () => {
  const buf = buildGguf({ kvs: ALL_KVS, tensors: TENSORS });
  const file = tmpFile('cut.gguf');
  fs.writeFileSync(file, buf);
  assert.is(readGguf(file).tensors.length, TENSORS.length);
  // Shrink one byte at a time (ftruncate: much cheaper than rewriting the file each time).
  const fd = fs.openSync(file, 'r+');
  try {
    for (let cut = buf.length - 1; cut >= 0; cut--) {
      fs.ftruncateSync(fd, cut);
      expectFormatError(() => readGguf(file), 'FORMAT_TRUNCATED', `cut at ${cut} of ${buf.length}`, /cut\.gguf/);
    }
  } finally {
    fs.closeSync(fd);
  }
});

S('GGUF: bad magic, unsupported versions', () => {
  const file = tmpFile('bad.gguf');
  fs.writeFileSync(file, buildGguf({ magic: 'GGML' }));
  expectFormatError(() => readGguf(file), 'FORMAT_BAD_MAGIC', 'magic GGML', /not a GGUF file/);
  fs.writeFileSync(file, Buffer.from('{"a": 1}            '));
  expectFormatError(() => readGguf(file), 'FORMAT_BAD_MAGIC', 'json file');
  fs.writeFileSync(file, buildGguf({ version: 1 }));
  expectFormatError(() => readGguf(file), 'FORMAT_UNSUPPORTED_VERSION', 'v1', /v1/);
  fs.writeFileSync(file, buildGguf({ version: 4 }));
  expectFormatError(() => readGguf(file), 'FORMAT_UNSUPPORTED_VERSION', 'v4', /version 4/);
  fs.writeFileSync(file, buildGguf({ version: 0x03000000 }));
  expectFormatError(() => readGguf(file), 'FORMAT_UNSUPPORTED_VERSION', 'big-endian', /big-endian/);
  expectFormatError(() => readGguf(tmpFile('missing.gguf')), 'FORMAT_IO', 'missing file', /missing\.gguf/);
});

S('GGUF: absurd counts and lengths are rejected before allocating', () => {
  const file = tmpFile('absurd.gguf');
  const check = (buf: Buffer, code: ModelFormatErrorCode, what: string, pattern?: RegExp) => {
    fs.writeFileSync(file, buf);
    expectFormatError(() => readGguf(file), code, what, pattern);
  };
  check(buildGguf({ nTensors: 2n ** 62n }), 'FORMAT_LIMIT_EXCEEDED', 'tensor count 2^62', /tensor count/);
  check(buildGguf({ nKv: 2n ** 64n - 1n }), 'FORMAT_LIMIT_EXCEEDED', 'kv count 2^64-1', /key\/value count/);
  check(buildGguf({ nKv: 1000 }), 'FORMAT_TRUNCATED', 'kv count beyond the file', /key\/value count/);

  // A string claiming 2^40 bytes.
  const hugeString = new Bytes().push(Buffer.from('GGUF')).u32(3).u64(0).u64(1).u64(2n ** 40n).build();
  check(Buffer.concat([hugeString, Buffer.alloc(64)]), 'FORMAT_LIMIT_EXCEEDED', 'string length 2^40', /length of metadata key/);
  // An array claiming 2^50 elements, and one just past the end of the file.
  const arr = (count: bigint) =>
    Buffer.concat([
      new Bytes().push(Buffer.from('GGUF')).u32(3).u64(0).u64(1).str('tokens').u32(GgufValueType.ARRAY).u32(GgufValueType.INT32).u64(count).build(),
      Buffer.alloc(40),
    ]);
  check(arr(2n ** 50n), 'FORMAT_LIMIT_EXCEEDED', 'array count 2^50', /element count of tokens/);
  check(arr(11n), 'FORMAT_TRUNCATED', 'array count past the end', /element count of tokens/);
  check(arr(10n).subarray(0, -1), 'FORMAT_TRUNCATED', 'array one byte short');
  // Tensor with 5 dimensions; a dimension that overflows.
  check(buildGguf({ tensors: [{ name: 't', dims: [1, 1, 1, 1, 1], type: GgmlType.F32 }] }), 'FORMAT_LIMIT_EXCEEDED', '5 dims', /5 dimensions/);
  check(
    buildGguf({ tensors: [{ name: 't', dims: [2 ** 40, 2 ** 20], type: GgmlType.F32, bytes: 4 }], noData: true }),
    'FORMAT_LIMIT_EXCEEDED',
    'element count overflow',
    /overflows/,
  );
  // A tensor at an offset far beyond the file.
  check(
    buildGguf({ tensors: [{ name: 'far', dims: [4], type: GgmlType.F32, offset: 2 ** 40 }], noData: true }),
    'FORMAT_TRUNCATED',
    'offset beyond the file',
    /far/,
  );
});

S('GGUF: unknown types, misaligned or overlapping tensors, duplicates, bad alignment', () => {
  const file = tmpFile('invalid.gguf');
  const check = (buf: Buffer, code: ModelFormatErrorCode, what: string, pattern?: RegExp) => {
    fs.writeFileSync(file, buf);
    expectFormatError(() => readGguf(file), code, what, pattern);
  };
  check(buildGguf({ tensors: [{ name: 'q4_2', dims: [32], type: 4, bytes: 20 }] }), 'FORMAT_UNKNOWN_TYPE', 'removed ggml type 4', /unknown ggml type 4/);
  check(buildGguf({ tensors: [{ name: 'x', dims: [32], type: 1000, bytes: 20 }] }), 'FORMAT_UNKNOWN_TYPE', 'ggml type 1000');
  check(buildGguf({ kvs: [{ key: 'k', type: 13, value: 0 }] }), 'FORMAT_UNKNOWN_TYPE', 'value type 13', /unknown value type 13/);
  check(
    buildGguf({ kvs: [{ key: 'k', type: GgufValueType.ARRAY, elemType: 42, value: [] }] }),
    'FORMAT_UNKNOWN_TYPE',
    'array element type 42',
  );
  check(buildGguf({ tensors: [{ name: 'mis', dims: [4], type: GgmlType.F32, offset: 4 }] }), 'FORMAT_INVALID', 'misaligned', /not aligned/);
  check(
    buildGguf({
      tensors: [
        { name: 'a', dims: [16], type: GgmlType.F32, offset: 0 },
        { name: 'b', dims: [16], type: GgmlType.F32, offset: 32 },
      ],
    }),
    'FORMAT_INVALID',
    'overlap',
    /overlap/,
  );
  check(
    buildGguf({ tensors: [{ name: 'a', dims: [4], type: GgmlType.F32 }, { name: 'a', dims: [4], type: GgmlType.F32 }] }),
    'FORMAT_INVALID',
    'duplicate tensor',
    /duplicate tensor/,
  );
  check(
    buildGguf({ kvs: [ALL_KVS[0]!, ALL_KVS[0]!] }),
    'FORMAT_INVALID',
    'duplicate key',
    /duplicate metadata key/,
  );
  check(
    buildGguf({ kvs: [{ key: 'general.alignment', type: GgufValueType.UINT32, value: 24 }] }),
    'FORMAT_INVALID',
    'alignment 24',
    /alignment/,
  );
  check(buildGguf({ tensors: [{ name: 'q', dims: [33], type: GgmlType.Q8_0, bytes: 34 }] }), 'FORMAT_INVALID', 'row not whole blocks', /block size/);
  const boolBuf = buildGguf({ kvs: [{ key: 'b', type: GgufValueType.BOOL, value: false }] });
  boolBuf[boolBuf.length - 1] = 7;
  check(boolBuf, 'FORMAT_INVALID', 'bool byte 7', /bool value 7/);
});

S('GGUF: real files from ../shared (stories260K, vocabulary-only files)', () => {
  const stories = path.join(SHARED, 'models/stories260K/stories260K.gguf');
  if (!fs.existsSync(stories)) return skip('GGUF real files', `${stories} not found (../shared absent)`);
  const g = readGguf(stories);
  assert.is(g.version, 3);
  assert.is(g.tensors.length, 48);
  assert.is(ggufString(g, 'general.architecture'), 'llama');
  assert.is(ggufNumber(g, 'llama.embedding_length'), 64);
  assert.is(ggufNumber(g, 'llama.block_count'), 5);
  assert.is((g.metadata.get('tokenizer.ggml.tokens') as string[]).length, 512);
  const emb = g.tensors.find((t) => t.name === 'token_embd.weight')!;
  assert.equal(emb.dims, [64, 512]);
  assert.is(emb.typeName, 'F32');
  assert.is(emb.byteSize, 64 * 512 * 4);
  assert.is(emb.offset, g.dataOffset + emb.relativeOffset);
  const end = Math.max(...g.tensors.map((t) => t.offset + t.byteSize));
  assert.ok(end <= g.fileSize);
  for (const t of g.tensors) assert.is(t.offset % g.alignment, g.dataOffset % g.alignment, `${t.name} aligned`);

  for (const vocab of ['llama-spm', 'phi-3', 'gpt-2', 'falcon', 'deepseek-coder']) {
    const v = readGguf(path.join(SHARED, `tokenizers/ggml-vocab-${vocab}.gguf`));
    assert.is(v.tensors.length, 0);
    const tokens = v.metadata.get('tokenizer.ggml.tokens') as string[];
    assert.ok(tokens.length > 30000, `${vocab} tokens`);
    assert.is((v.metadata.get('tokenizer.ggml.token_type') as Int32Array).length, tokens.length);
  }
});

// -----------------------------------------------------------------------------------------------------------
// safetensors

function rawSafetensors(header: unknown, dataBytes: number, headerLen?: number): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLen ?? json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

S('safetensors: write then read back (dtypes, shapes, metadata, 8-byte aligned data, atomic replace)', () => {
  const file = tmpFile('w.safetensors');
  const f32 = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 1);
  const i32 = Int32Array.of(1, -2, 3);
  const f16 = new Uint16Array([0x3c00, 0xc000]);
  const i64 = BigInt64Array.of(-1n, 2n ** 40n);
  const u8 = Uint8Array.of(9);
  const empty = new Float32Array(0);
  writeSafetensors(
    file,
    {
      'layer.0.w': { dtype: 'F32', shape: [3, 4], data: f32 },
      ids: { dtype: 'I32', shape: [3], data: i32 },
      half: { dtype: 'F16', shape: [2], data: f16 },
      long: { dtype: 'I64', shape: [2], data: i64 },
      scalar: { dtype: 'U8', shape: [], data: u8 },
      none: { dtype: 'F32', shape: [0, 5], data: empty },
    },
    { format: 'hogwild', 'aquakv.bits': '2' },
  );
  const h = readSafetensorsHeader(file);
  assert.is(h.dataOffset % 8, 0);
  assert.equal(h.metadata, { format: 'hogwild', 'aquakv.bits': '2' });
  assert.equal(h.tensors.map((t) => t.name), ['layer.0.w', 'ids', 'half', 'long', 'scalar', 'none']);
  const w = h.tensorsByName.get('layer.0.w')!;
  assert.equal(w.shape, [3, 4]);
  assert.is(w.dtype, 'F32');
  assert.is(w.byteSize, 48);
  assert.is(h.tensorsByName.get('scalar')!.nElements, 1);
  assert.is(h.tensorsByName.get('none')!.byteSize, 0);
  const back = readSafetensorsTensorData(h, 'layer.0.w');
  assert.equal(Array.from(new Float32Array(back.buffer, back.byteOffset, 12)), Array.from(f32));
  const l = readSafetensorsTensorData(h, 'long');
  assert.equal(Array.from(new BigInt64Array(l.slice().buffer)), [-1n, 2n ** 40n]);
  assert.equal(Array.from(readSafetensorsTensorData(h, 'scalar')), [9]);

  // Replacing: the new content wins; a failed write leaves the old file and no temporary files.
  writeSafetensors(file, [['only', { dtype: 'F32', shape: [1], data: Float32Array.of(7) }]]);
  assert.equal(readSafetensorsHeader(file).tensors.map((t) => t.name), ['only']);
  assert.throws(() => writeSafetensors(file, { bad: { dtype: 'F32', shape: [2], data: Float32Array.of(1) } }), /needs 8 bytes/);
  assert.equal(readSafetensorsHeader(file).tensors.map((t) => t.name), ['only']);
  assert.throws(() => writeSafetensors(file, { bad: { dtype: 'Q4' as never, shape: [1], data: Uint8Array.of(1) } }), /dtype/);
  assert.equal(fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.tmp')), []);
});

S('safetensors: malformed and truncated files give typed errors', () => {
  const file = tmpFile('bad.safetensors');
  const check = (buf: Buffer, code: ModelFormatErrorCode, what: string, pattern?: RegExp) => {
    fs.writeFileSync(file, buf);
    expectFormatError(() => readSafetensorsHeader(file), code, what, pattern);
  };
  const ok = { a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };
  fs.writeFileSync(file, rawSafetensors(ok, 16));
  assert.is(readSafetensorsHeader(file).tensors.length, 1);

  check(Buffer.alloc(5), 'FORMAT_TRUNCATED', 'shorter than the length prefix');
  check(rawSafetensors(ok, 16, 2 ** 40), 'FORMAT_LIMIT_EXCEEDED', 'header length 2^40', /limit/);
  check(rawSafetensors(ok, 0, 5000), 'FORMAT_TRUNCATED', 'header length past the end', /header claims/);
  check(rawSafetensors('[1, 2, 3]', 0), 'FORMAT_BAD_MAGIC', 'header not an object');
  check(rawSafetensors('{"a": ', 0), 'FORMAT_INVALID', 'broken JSON', /JSON/);
  check(rawSafetensors(ok, 15), 'FORMAT_TRUNCATED', 'data one byte short', /past the end/);
  check(rawSafetensors({ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 1] } }, 1), 'FORMAT_UNKNOWN_TYPE', 'dtype Q4', /Q4/);
  check(rawSafetensors({ a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 16), 'FORMAT_INVALID', 'size mismatch', /needs 16/);
  check(rawSafetensors({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 0), 'FORMAT_INVALID', 'negative dim');
  check(rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 8), 'FORMAT_INVALID', 'begin > end');
  check(
    rawSafetensors({ a: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 10], data_offsets: [0, 4] } }, 4),
    'FORMAT_LIMIT_EXCEEDED',
    'shape overflow',
  );
  check(
    rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12),
    'FORMAT_INVALID',
    'overlap',
    /overlap/,
  );
  check(rawSafetensors({ __metadata__: { n: 1 } }, 0), 'FORMAT_INVALID', 'non-string metadata', /__metadata__\.n/);
  expectFormatError(() => readSafetensorsHeader(tmpFile('nope.safetensors')), 'FORMAT_IO', 'missing file');
});

S('safetensors: sharded index folders', () => {
  const dir = tmpFile('sharded');
  fs.mkdirSync(dir, { recursive: true });
  const t = (v: number) => ({ dtype: 'F32' as const, shape: [2], data: Float32Array.of(v, v) });
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), { 'a.weight': t(1), 'b.weight': t(2) });
  writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), { 'c.weight': t(3) });
  const index = {
    metadata: { total_size: 24 },
    weight_map: {
      'a.weight': 'model-00001-of-00002.safetensors',
      'b.weight': 'model-00001-of-00002.safetensors',
      'c.weight': 'model-00002-of-00002.safetensors',
    },
  };
  const indexPath = path.join(dir, SAFETENSORS_INDEX_FILE);
  fs.writeFileSync(indexPath, JSON.stringify(index));
  const idx = readSafetensorsIndex(dir);
  assert.is(idx.indexPath, indexPath);
  assert.is(idx.shards.size, 2);
  assert.equal([...idx.tensors.keys()], ['a.weight', 'b.weight', 'c.weight']);
  const c = idx.tensors.get('c.weight')!;
  assert.is(path.basename(c.shard.path), 'model-00002-of-00002.safetensors');
  assert.equal(Array.from(new Float32Array(readSafetensorsTensorData(c.shard, 'c.weight').slice().buffer)), [3, 3]);

  const broken = (wm: Record<string, string>, pattern: RegExp, code: ModelFormatErrorCode = 'FORMAT_INVALID') => {
    fs.writeFileSync(indexPath, JSON.stringify({ weight_map: wm }));
    expectFormatError(() => readSafetensorsIndex(dir), code, `index ${JSON.stringify(wm)}`, pattern);
  };
  broken({ 'c.weight': 'model-00001-of-00002.safetensors' }, /does not contain/);
  broken({ 'a.weight': '../model-00001-of-00002.safetensors' }, /not a file name/);
  broken({ 'a.weight': 'missing.safetensors' }, /missing\.safetensors/, 'FORMAT_IO');
  fs.writeFileSync(indexPath, '{ not json');
  expectFormatError(() => readSafetensorsIndex(dir), 'FORMAT_INVALID', 'index not JSON');

  // A folder with a single model.safetensors reads as one shard; an empty folder is an error.
  const single = tmpFile('single');
  fs.mkdirSync(single);
  expectFormatError(() => readSafetensorsIndex(single), 'FORMAT_IO', 'empty folder', /model\.safetensors/);
  writeSafetensors(path.join(single, 'model.safetensors'), { x: t(5) });
  const one = readSafetensorsIndex(single);
  assert.is(one.indexPath, null);
  assert.equal([...one.tensors.keys()], ['x']);
});

S('safetensors: Hugging Face fixtures (model and reference outputs)', () => {
  const local = path.join(repoRoot, 'test/fixtures/hf');
  const shared = path.join(SHARED, 'fixtures/hf');
  const root = fs.existsSync(path.join(local, 'llama/model.safetensors')) ? local : shared;
  if (!fs.existsSync(root)) return skip('safetensors HF fixtures', `neither ${local} nor ${shared} found (../shared absent)`);
  const names = fs.readdirSync(root).filter((n) => fs.existsSync(path.join(root, n, 'model.safetensors')));
  assert.ok(names.length >= 6, `fixtures found: ${names.join(', ')}`);
  for (const name of names) {
    const dir = path.join(root, name);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, number>;
    const idx = readSafetensorsIndex(dir);
    const emb = idx.tensors.get('model.embed_tokens.weight')!.info;
    assert.is(emb.dtype, 'F32', `${name} dtype`);
    assert.equal(emb.shape, [config['vocab_size'], config['hidden_size']], `${name} embedding shape`);
    for (let l = 0; l < config['num_hidden_layers']!; l++) {
      assert.ok(idx.tensors.has(`model.layers.${l}.self_attn.q_proj.weight`), `${name} layer ${l} q_proj`);
    }
    const ref = readSafetensorsHeader(path.join(dir, 'reference.safetensors'));
    assert.equal(ref.tensorsByName.get('input_ids')!.shape, [40]);
    assert.is(ref.tensorsByName.get('input_ids')!.dtype, 'I32');
    assert.equal(ref.tensorsByName.get('logits')!.shape, [40, config['vocab_size']]);
    assert.equal(ref.tensorsByName.get('batch_input_ids')!.shape, [3, 17]);
    const ids = readSafetensorsTensorData(ref, 'input_ids');
    const view = new Int32Array(ids.slice().buffer);
    assert.ok(view.every((v) => v >= 0 && v < config['vocab_size']!), `${name} input ids in range`);
  }
});

S.after(() => {
  if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
});

S.run();
