/**
 * Loading the CUDA backend: the shared library built by scripts/build-cuda.sh
 * (prebuilds/cuda/libhwkv_cuda.so, or HOGWILD_CUDA_LIB), opened through the native addon's openCuda().
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import { packageRoot } from '../util/paths.js';
import { loadNativeAddon } from './native.js';
import type { RawApi } from './raw.js';

export type CudaLoadResult = { raw: RawApi; libPath: string } | { error: string };

const BUILD_HINT = 'run `npm run build:cuda` with nvcc on PATH';

const cache = new Map<string, CudaLoadResult>();

/**
 * The library to open: HOGWILD_CUDA_LIB (a bare file name is left to the dynamic loader's search path),
 * else <package>/prebuilds/cuda/libhwkv_cuda.so.
 */
export function cudaLibraryPath(): { libPath: string; fromEnv: boolean } {
  const env = process.env.HOGWILD_CUDA_LIB;
  if (env !== undefined && env.length > 0) {
    return { libPath: env.includes('/') || env.includes(path.sep) ? path.resolve(env) : env, fromEnv: true };
  }
  return { libPath: path.join(packageRoot(), 'prebuilds', 'cuda', 'libhwkv_cuda.so'), fromEnv: false };
}

function explain(e: unknown, libPath: string): string {
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : '';
  const msg = typeof err?.message === 'string' ? err.message : String(e);
  switch (code) {
    case 'HWKV_NO_DEVICE':
      return msg; // "no usable CUDA device: <reason from hwkv_cuda_api>"
    case 'HWKV_DLOPEN': {
      const m = /(lib[\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(msg);
      const missing = m?.[1];
      if (missing !== undefined && missing !== path.basename(libPath)) {
        if (/^libcuda\.so/.test(missing)) return `no NVIDIA driver: ${missing} not found (${msg})`;
        return `${msg}; a library it depends on is missing: put the CUDA toolkit's lib64 directory on LD_LIBRARY_PATH`;
      }
      return `${msg}; rebuild it: ${BUILD_HINT}`;
    }
    case 'HWKV_NO_SYMBOL':
    case 'HWKV_ABI':
      return `${msg}; rebuild it: ${BUILD_HINT}`;
    default:
      return `cannot open the CUDA library ${libPath}: ${msg}`;
  }
}

function load(libPath: string, fromEnv: boolean): CudaLoadResult {
  const searched = fromEnv && !path.isAbsolute(libPath);
  if (!searched && !existsSync(libPath)) {
    return {
      error: fromEnv
        ? `HOGWILD_CUDA_LIB is ${libPath}, which does not exist`
        : `CUDA library not built (${libPath} is missing): ${BUILD_HINT}`,
    };
  }
  const native = loadNativeAddon();
  if ('error' in native) {
    return { error: `the CUDA backend needs the native addon, which is unavailable: ${native.error}` };
  }
  try {
    return { raw: native.addon.openCuda(libPath), libPath };
  } catch (e) {
    return { error: explain(e, libPath) };
  }
}

/** Opens the CUDA backend once per library path; later calls return the same result (or error). */
export function loadCudaRaw(): CudaLoadResult {
  let where: { libPath: string; fromEnv: boolean };
  try {
    where = cudaLibraryPath();
  } catch (e) {
    return { error: `CUDA library not found: ${(e as Error).message}` };
  }
  let r = cache.get(where.libPath);
  if (r === undefined) {
    r = load(where.libPath, where.fromEnv);
    cache.set(where.libPath, r);
  }
  return r;
}
