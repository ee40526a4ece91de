/**
 * The AQUA-KV predictor product on CUDA (`gemm_nt` in cuda/codec.cu, reached through the quantizer table's
 * linear_apply: y[n, q] = x[n, p] · W[0:p] + W[p]) at the shapes of a 32K-token decode step, for kernel tuning.
 * On the GPU machine: `node --import tsx bench/cuda-gemm.ts`; under a profiler:
 *   ncu -k regex:gemm_nt --launch-skip 2 --launch-count 1 --section SpeedOfLight --section WarpStateStats \
 *       node --import tsx bench/cuda-gemm.ts
 * Prints ms per call (host copies in and out included) and the result's largest difference from the native
 * backend's, for HWKV_CUDA_GEMM as set in the environment (tf32x3 by default, fma for the FP32 kernels).
 *
 * Options: --n=32768  --shapes=512x512,1024x1024  --calls=5
 */
import { createBackend } from '../ts/index.ts';
import { Xoshiro128 } from '../ts/util/random.ts';

function fillRandom(a: Float32Array, seed: number): Float32Array {
  const r = new Xoshiro128(seed);
  for (let i = 0; i < a.length; i++) a[i] = r.next() * 2 - 1;
  return a;
}

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const N = Number(opt('n') ?? 32768);
const SHAPES = (opt('shapes') ?? '512x512,1024x1024').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const CALLS = Number(opt('calls') ?? 5);

const cuda = await createBackend({ backend: 'cuda' });
const native = await createBackend({ backend: 'native' });
console.log(`bench:cuda-gemm, HWKV_CUDA_GEMM=${process.env.HWKV_CUDA_GEMM ?? '(default)'}, n=${N}`);
for (const [p, q] of SHAPES) {
  const x = fillRandom(new Float32Array(N * p), 3);
  const w = fillRandom(new Float32Array((p + 1) * q), 5);
  const times: number[] = [];
  let y: Float32Array = new Float32Array(0);
  for (let c = 0; c < CALLS; c++) {
    const t0 = performance.now();
    y = cuda.quant!.linearApply(x, w, N, p, q);
    times.push(performance.now() - t0);
  }
  const ref = native.quant!.linearApply(x, w, N, p, q);
  let err = 0;
  let mag = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(y[i]! - ref[i]!));
    mag = Math.max(mag, Math.abs(ref[i]!));
  }
  const best = Math.min(...times);
  console.log(`p=${p} q=${q}: best ${best.toFixed(2)} ms/call (incl. copies), ${((2 * N * p * q) / best / 1e9).toFixed(1)} TFLOP/s lower bound; max |Δ| vs native ${(err / mag).toExponential(2)} of max |y|`);
}
cuda.dispose();
native.dispose();
