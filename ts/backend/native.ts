/**
 * Loading the Node-API addon (bindings/napi, built by node-gyp into build/Release/hwkv.node).
 *
 * The addon exports the CPU core as a RawApi, opens CUDA libraries (openCuda) and reports CPU features.
 * HOGWILD_NATIVE_ADDON=<path> loads another build of it instead.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { packageRoot } from '../util/paths.js';
import type { RawApi } from './raw.js';

export interface CpuFeatures {
  avx2: boolean;
  fma: boolean;
  f16c: boolean;
  avx512f: boolean;
  sse42: boolean;
  /** CPU brand string ("" when unknown). */
  model: string;
}

export interface NativeAddon {
  /** The CPU core compiled into the addon. */
  cpu: RawApi & { setSimd(forceScalar: boolean): void };
  /**
   * dlopen()s a CUDA build of the core and returns its RawApi (cached per path). Throws an Error whose
   * `code` is HWKV_BAD_ARGUMENT, HWKV_DLOPEN, HWKV_NO_SYMBOL, HWKV_NO_DEVICE or HWKV_ABI.
   */
  openCuda(libPath: string): RawApi;
  cpuFeatures(): CpuFeatures;
  /** HWKV_ABI_VERSION the addon was compiled against. */
  abiVersion: number;
}

export type NativeLoadResult = { addon: NativeAddon } | { error: string };

const BUILD_HINT = 'run `npm run build:native` (needs a C++17 compiler and Python for node-gyp)';

let cached: NativeLoadResult | undefined;

/** Where the addon is loaded from: HOGWILD_NATIVE_ADDON, else <package>/build/Release/hwkv.node. */
export function nativeAddonPath(): string {
  const env = process.env.HOGWILD_NATIVE_ADDON;
  if (env !== undefined && env.length > 0) return path.resolve(env);
  return path.join(packageRoot(), 'build', 'Release', 'hwkv.node');
}

function load(): NativeLoadResult {
  let file: string;
  try {
    file = nativeAddonPath();
  } catch (e) {
    return { error: `native addon not found: ${(e as Error).message}` };
  }
  const fromEnv = (process.env.HOGWILD_NATIVE_ADDON ?? '').length > 0;
  if (!existsSync(file)) {
    return {
      error: fromEnv
        ? `HOGWILD_NATIVE_ADDON is ${file}, which does not exist`
        : `native addon not built (${file} is missing): ${BUILD_HINT}`,
    };
  }
  let mod: unknown;
  try {
    mod = createRequire(file)(file);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    return { error: `native addon failed to load (${file}): ${msg}; rebuild it: ${BUILD_HINT}` };
  }
  const a = mod as Partial<NativeAddon> | null;
  if (
    a === null ||
    typeof a !== 'object' ||
    typeof a.cpu !== 'object' ||
    typeof a.openCuda !== 'function' ||
    typeof a.cpuFeatures !== 'function'
  ) {
    return { error: `${file} is not the hogwild-kv addon (no cpu/openCuda/cpuFeatures exports); rebuild it: ${BUILD_HINT}` };
  }
  return { addon: a as NativeAddon };
}

/** Loads the addon once per process; later calls return the same result (or the same error). */
export function loadNativeAddon(): NativeLoadResult {
  if (cached === undefined) cached = load();
  return cached;
}
