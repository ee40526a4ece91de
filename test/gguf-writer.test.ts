/**
 * ts/formats/gguf-writer.ts against the project's GGUF reader (ts/formats/gguf.ts) and the byte layout of the
 * GGUF v3 spec: every value type (scalars, arrays, nested arrays, 64-bit extremes), tensors of several ggml
 * types at the default and a custom alignment, and the atomic write (a failed write leaves the old file and
 * no temporary behind).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GgufValueType as T, readGguf } from '../ts/formats/gguf.ts';
import { encodeGguf, gguf, writeGguf } from '../ts/formats/gguf-writer.ts';
import { seededTest } from './helpers/harness.ts';

const S = suite('gguf-writer');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'hwkv-ggufw-'));
S.after(() => rmSync(tmp, { recursive: true, force: true }));

seededTest(S, 'gguf-writer', 'metadata of every value type round-trips through readGguf', (rng) => {
  const f32 = Math.fround(rng.normal());
  const strs = Array.from({ length: rng.int(1, 20) }, (_, i) => `tok${i}-${'é'.repeat(rng.int(0, 3))}`);
  const ints = Int32Array.from({ length: rng.int(1, 50) }, () => rng.int(-1000000, 1000000));
  const file = path.join(tmp, 'meta.gguf');
  writeGguf(file, {
    metadata: [
      ['general.architecture', 'llama'],
      ['u8', gguf.u8(255)],
      ['i8', gguf.i8(-128)],
      ['u16', gguf.u16(65535)],
      ['i16', gguf.i16(-32768)],
      ['u32', 4294967295],
      ['i32', gguf.i32(-2147483648)],
      ['f32', gguf.f32(f32)],
      ['f64', gguf.f64(Math.PI)],
      ['bool', true],
      ['u64', gguf.u64(2n ** 64n - 1n)],
      ['i64', -(2n ** 63n)],
      ['strs', strs],
      ['ints', ints],
      ['floats', Float32Array.of(1.5, -2.25)],
      ['bools', [true, false, true]],
      ['empty', gguf.array(T.UINT8, [])],
      ['nested', gguf.array(T.ARRAY, [gguf.array(T.STRING, ['a', 'b']), gguf.array(T.STRING, ['c'])])],
    ],
  });
  const g = readGguf(file);
  assert.is(g.version, 3);
  const m = g.metadata;
  assert.is(m.get('general.architecture'), 'llama');
  assert.is(m.get('u8'), 255);
  assert.is(m.get('i8'), -128);
  assert.is(m.get('u16'), 65535);
  assert.is(m.get('i16'), -32768);
  assert.is(m.get('u32'), 4294967295);
  assert.is(g.metadataTypes.get('u32'), T.UINT32);
  assert.is(m.get('i32'), -2147483648);
  assert.is(m.get('f32'), f32);
  assert.is(m.get('f64'), Math.PI);
  assert.is(m.get('bool'), true);
  assert.is(m.get('u64'), 2n ** 64n - 1n);
  assert.is(m.get('i64'), -(2n ** 63n));
  assert.equal(m.get('strs'), strs);
  assert.equal(Array.from(m.get('ints') as Int32Array), Array.from(ints));
  assert.is(g.metadataArrayTypes.get('ints'), T.INT32);
  assert.equal(Array.from(m.get('floats') as Float32Array), [1.5, -2.25]);
  assert.equal(m.get('bools'), [true, false, true]);
  assert.is((m.get('empty') as Uint8Array).length, 0);
  assert.equal(m.get('nested'), [['a', 'b'], ['c']]);
  assert.equal([...m.keys()][0], 'general.architecture', 'file order kept');
  // a fixed header, byte by byte: magic, version 3, counts
  const bytes = readFileSync(file);
  assert.is(bytes.toString('latin1', 0, 4), 'GGUF');
  assert.is(bytes.readUInt32LE(4), 3);
  assert.is(bytes.readBigUInt64LE(8), 0n);
  assert.is(bytes.readBigUInt64LE(16), 18n);
});

seededTest(S, 'gguf-writer', 'tensors: data, dims, types and alignment', (rng) => {
  for (const alignment of [32, 64, 256]) {
    const a = Float32Array.from({ length: 3 * rng.int(1, 9) }, () => rng.normal());
    const b = Uint16Array.from({ length: 5 }, () => rng.int(0, 65535));
    const q = Uint8Array.from({ length: 2 * 34 }, () => rng.int(0, 255));
    const file = path.join(tmp, `t${alignment}.gguf`);
    const size = writeGguf(file, {
      alignment,
      metadata: { 'general.architecture': 'test' },
      tensors: [
        { name: 'a', type: 0, shape: [a.length / 3, 3], data: a },
        { name: 'b', type: 1, dims: [5], data: b },
        { name: 'q', type: 8, dims: [64], data: q },
      ],
    });
    const g = readGguf(file);
    assert.is(g.fileSize, size);
    assert.is(g.alignment, alignment);
    if (alignment !== 32) assert.is(g.metadata.get('general.alignment'), alignment);
    const bytes = readFileSync(file);
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    assert.equal(byName.get('a')!.dims, [3, a.length / 3], 'dims are ggml order (shape reversed)');
    for (const [name, data, type] of [['a', a, 0], ['b', b, 1], ['q', q, 8]] as const) {
      const t = byName.get(name)!;
      assert.is(t.type, type);
      assert.is(t.offset % alignment, 0, `${name} aligned`);
      const want = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      assert.equal(new Uint8Array(bytes.subarray(t.offset, t.offset + t.byteSize)), want, `${name} data`);
    }
    assert.equal(encodeGguf({ alignment, metadata: { 'general.architecture': 'test' }, tensors: [{ name: 'a', type: 0, shape: [a.length / 3, 3], data: a }] }).length % 4, 0);
  }
});

S('bad input is refused before anything is written; a failed write keeps the old file and leaves no temporary', () => {
  const file = path.join(tmp, 'keep.gguf');
  writeFileSync(file, 'old');
  const bad: [string, () => unknown][] = [
    ['wrong byte count', () => writeGguf(file, { tensors: [{ name: 'x', type: 0, dims: [4], data: new Float32Array(3) }] })],
    ['Q8_0 row not a multiple of 32', () => writeGguf(file, { tensors: [{ name: 'x', type: 8, dims: [16], data: new Uint8Array(17) }] })],
    ['duplicate tensor', () => writeGguf(file, { tensors: [{ name: 'x', type: 0, dims: [1], data: new Float32Array(1) }, { name: 'x', type: 0, dims: [1], data: new Float32Array(1) }] })],
    ['u8 out of range', () => writeGguf(file, { metadata: { k: gguf.u8(256) } })],
    ['empty untyped array', () => writeGguf(file, { metadata: { k: [] as string[] } })],
    ['alignment not a power of two', () => writeGguf(file, { alignment: 48 })],
    ['missing folder', () => writeGguf(path.join(tmp, 'no', 'such', 'x.gguf'), {})],
  ];
  for (const [what, fn] of bad) {
    assert.throws(fn, undefined, what);
    assert.is(readFileSync(file, 'utf8'), 'old', `${what}: old file kept`);
  }
  assert.equal(readdirSync(tmp).filter((f) => f.endsWith('.tmp')), [], 'no temporaries left');
});

S.run();
