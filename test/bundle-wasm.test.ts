/**
 * The WebAssembly-only bundle (dist/wasm, built by `npm run build` / `npm run build:bundle`) works on its own:
 * copied to an empty temporary directory (no package.json, no prebuilds/, no native addon next to it), it
 * loads hwkv.wasm from beside itself and computes real results, checked here against independent float64
 * computations: FWHT against the naive O(n^2) Sylvester-Hadamard product, and bit packing against a
 * bit-by-bit reference stream plus the pack/unpack round trip.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { seededTest } from './helpers/harness.ts';

const NAME = 'bundle-wasm';
const S = suite(NAME);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const distWasm = path.join(repoRoot, 'dist', 'wasm');

interface WasmBundle {
  createWasmBackend(options?: { wasmBinary?: Uint8Array | ArrayBuffer; wasmUrl?: string | URL }): Promise<{
    name: string;
    details: Record<string, unknown>;
    fwht(x: Float32Array, n: number, scale?: number): void;
    packBits(codes: Uint16Array, bits: number): Uint32Array;
    unpackBits(words: Uint32Array, bits: number, n: number): Uint16Array;
    dispose(): void;
  }>;
  InvalidArgumentError: new (...a: never[]) => Error;
}

let tmp: string | undefined;

async function importIsolatedBundle(): Promise<WasmBundle> {
  for (const f of ['index.js', 'hwkv.wasm']) {
    if (!existsSync(path.join(distWasm, f))) throw new Error(`dist/wasm/${f} is missing: run \`npm run build\` first`);
  }
  tmp = mkdtempSync(path.join(tmpdir(), 'hwkv-bundle-'));
  copyFileSync(path.join(distWasm, 'index.js'), path.join(tmp, 'index.js'));
  copyFileSync(path.join(distWasm, 'hwkv.wasm'), path.join(tmp, 'hwkv.wasm'));
  return (await import(pathToFileURL(path.join(tmp, 'index.js')).href)) as WasmBundle;
}

S.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

seededTest(S, NAME, 'isolated bundle: FWHT vs O(n^2) float64 Hadamard product, pack/unpack vs bit-level reference', async (rng) => {
  // Self-contained: no static imports at all (the glue is embedded), nothing that loads the addon.
  const src = readFileSync(path.join(distWasm, 'index.js'), 'utf8');
  assert.not.match(src, /^\s*import\s[^(]/m, 'dist/wasm/index.js must not have static imports');
  assert.not.match(src, /\brequire\(/, 'dist/wasm/index.js must not call require()');
  assert.not.match(src, /hwkv\.node|node-gyp-build|bindings\/napi/, 'dist/wasm/index.js must not reference the native addon');

  const mod = await importIsolatedBundle();
  const be = await mod.createWasmBackend();
  assert.is(be.name, 'wasm');

  // FWHT, several rows, orthonormal scale: float32 result vs float64 naive H_n x.
  for (const n of [1, 2, 8, 64, 256]) {
    const rows = 3;
    const x = rng.f32(rows * n);
    const y = Float32Array.from(x);
    const scale = 1 / Math.sqrt(n);
    be.fwht(y, n, scale);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < n; i++) {
        let acc = 0; // float64
        let mag = 0;
        for (let j = 0; j < n; j++) {
          let pc = 0;
          for (let b = i & j; b; b &= b - 1) pc++;
          const xv = x[r * n + j]!;
          acc += pc & 1 ? -xv : xv;
          mag += Math.abs(xv);
        }
        const want = acc * scale;
        const got = y[r * n + i]!;
        const tol = 1e-6 * mag * scale + 1e-30;
        if (Math.abs(got - want) > tol) {
          assert.unreachable(`fwht n=${n} row ${r} [${i}]: got ${got}, want ${want} (tol ${tol})`);
        }
      }
    }
  }

  // Bit packing: the stream must equal the LSB-first reference bit by bit; unpack must invert it.
  for (const bits of [1, 3, 5, 8, 13, 16]) {
    const n = rng.int(1, 300);
    const codes = new Uint16Array(n);
    for (let i = 0; i < n; i++) codes[i] = rng.int(0, 2 ** bits - 1);
    const words = be.packBits(codes, bits);
    assert.is(words.length, Math.ceil((n * bits) / 32), `pack_bits bits=${bits}: word count`);
    const ref = new Uint32Array(words.length);
    for (let i = 0; i < n; i++) {
      for (let b = 0; b < bits; b++) {
        const k = i * bits + b;
        if ((codes[i]! >> b) & 1) ref[k >>> 5] = (ref[k >>> 5]! | (1 << (k & 31))) >>> 0;
      }
    }
    assert.equal(Array.from(words), Array.from(ref), `pack_bits bits=${bits}: stream`);
    assert.equal(Array.from(be.unpackBits(words, bits, n)), Array.from(codes), `unpack_bits bits=${bits}: round trip`);
  }

  // Typed errors cross the bundle boundary.
  let thrown: unknown;
  try {
    be.fwht(new Float32Array(6), 4);
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof mod.InvalidArgumentError, 'fwht with a bad length throws InvalidArgumentError');

  // Explicit bytes work too (no file access at all).
  const bytes = readFileSync(path.join(distWasm, 'hwkv.wasm'));
  const be2 = await mod.createWasmBackend({ wasmBinary: new Uint8Array(bytes) });
  const z = new Float32Array([1, 2, 3, 4]);
  be2.fwht(z, 4);
  assert.equal(Array.from(z), [10, -2, -4, 0]);
  be.dispose();
  be2.dispose();
});

S.run();
