/**
 * hogwild-kv/wasm: the WebAssembly-only ESM bundle (dist/wasm/index.js + dist/wasm/hwkv.wasm), built by
 * rollup (rollup.config.mjs). It needs no native addon and no file layout of the package: the emscripten
 * glue is embedded, and the .wasm bytes come from `options.wasmBinary`, `options.wasmUrl`, or hwkv.wasm
 * next to this bundle (read from disk in Node, fetched elsewhere).
 *
 *   import { createWasmBackend } from 'hogwild-kv/wasm';
 *   const be = await createWasmBackend();
 *   be.fwht(x, 1024, 1 / 32);
 */
import createHwkvModule from '../prebuilds/wasm/hwkv.cjs';
import { CoreBackend } from './backend/backend.js';
import { BackendUnavailableError } from './errors.js';
import type { Backend } from './backend/types.js';
import { createWasmRaw, type HwkvModuleFactory } from './backend/wasm.js';

export type {
  AttentionBatch,
  Backend,
  BackendName,
  KvStore,
  RopeParams,
  RopeScaling,
  StoreParams,
  StoreStats,
} from './backend/types.js';
export {
  BackendUnavailableError,
  DisposedError,
  HogwildError,
  InternalError,
  InvalidArgumentError,
  OutOfMemoryError,
  OutOfRangeError,
  UnsupportedError,
} from './errors.js';
export type { HogwildErrorCode } from './errors.js';

export interface CreateWasmBackendOptions {
  /** The bytes of hwkv.wasm. When given, nothing is fetched or read. */
  wasmBinary?: Uint8Array | ArrayBuffer;
  /** Where to load hwkv.wasm from. Defaults to hwkv.wasm next to this bundle. */
  wasmUrl?: string | URL;
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: unknown } } }).process;
  return typeof p?.versions?.node === 'string';
}

async function loadBytes(url: URL): Promise<Uint8Array> {
  if (url.protocol === 'file:' && isNode()) {
    // Node's fetch() cannot read file: URLs. The specifier is kept out of static analysis so that browser
    // bundlers consuming this file do not try to resolve a Node built-in.
    const fsName = 'node:fs/promises';
    const fs = (await import(/* webpackIgnore: true */ /* @vite-ignore */ fsName)) as typeof import('node:fs/promises');
    return new Uint8Array(await fs.readFile(url));
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fetching ${url.href} failed: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Create the WebAssembly backend (CPU core compiled to wasm with SIMD128). */
export async function createWasmBackend(options: CreateWasmBackendOptions = {}): Promise<Backend> {
  let bytes: Uint8Array | ArrayBuffer;
  if (options.wasmBinary !== undefined) {
    bytes = options.wasmBinary;
  } else {
    const url = options.wasmUrl !== undefined ? new URL(options.wasmUrl, import.meta.url) : new URL('./hwkv.wasm', import.meta.url);
    try {
      bytes = await loadBytes(url);
    } catch (e) {
      throw new BackendUnavailableError(
        'wasm',
        `hogwild-kv/wasm: cannot load ${url.href} (${e instanceof Error ? e.message : String(e)}); ` +
          'serve hwkv.wasm next to the bundle, or pass { wasmUrl } or { wasmBinary }',
      );
    }
  }
  let raw;
  try {
    raw = await createWasmRaw(createHwkvModule as unknown as HwkvModuleFactory, bytes);
  } catch (e) {
    throw new BackendUnavailableError('wasm', `hogwild-kv/wasm: ${e instanceof Error ? e.message : String(e)}`);
  }
  return new CoreBackend('wasm', raw);
}
