#!/usr/bin/env bash
# Builds the CUDA backend: prebuilds/cuda/libhwkv_cuda.so (loaded at run time by the native addon).
#
#   bash scripts/build-cuda.sh            # or: npm run build:cuda
#
# Environment:
#   NVCC          compiler (default: nvcc on PATH, then $CUDA_HOME/bin/nvcc, /usr/local/cuda/bin/nvcc)
#   HWKV_CUDA_JOBS parallel compile jobs (default: number of CPUs, at most 8)
#   HWKV_CUDA_OUT  output directory (default: prebuilds/cuda)
#
# Code: SASS for sm_90a (H100/H200) and PTX for compute_80 (JIT-compiled by the driver on any GPU of
# compute capability 8.0 or newer). The CUDA runtime is linked statically; the library needs only the
# NVIDIA driver (libcuda.so) at run time.
#
# cuBLAS (the model engine's GEMMs, cuda/model_forward.cu) is neither linked nor needed to build: the library
# declares the few cuBLAS entry points it uses (cuda/blas.cuh) and dlopen()s libcublas.so.<CUDA major> on
# the first model_create (override: HWKV_CUBLAS_LIB=/path/to/libcublas.so.N). So this script builds with a
# bare nvcc (CI: no cuBLAS headers or libraries), the primitives work on any machine with the driver, and
# only hwkv_cuda_model_api().model_create needs cuBLAS at run time (HWKV_ERR_UNSUPPORTED, naming the paths
# tried, when it is missing). Static cuBLAS was rejected: it would add ~700 MB of archives to the link and
# several hundred MB to the library.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

nvcc="${NVCC:-}"
if [[ -z "$nvcc" ]]; then
  if command -v nvcc >/dev/null 2>&1; then
    nvcc="$(command -v nvcc)"
  elif [[ -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then
    nvcc="$CUDA_HOME/bin/nvcc"
  elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
    nvcc=/usr/local/cuda/bin/nvcc
  fi
fi
if [[ -z "$nvcc" ]] || ! "$nvcc" --version >/dev/null 2>&1; then
  echo "build-cuda: nvcc not found (install the CUDA toolkit >= 12, or set NVCC=/path/to/nvcc or CUDA_HOME)" >&2
  exit 1
fi

out="${HWKV_CUDA_OUT:-prebuilds/cuda}"
# Objects go to a private temporary directory (build/ belongs to node-gyp, which wipes it).
obj="$(mktemp -d "${TMPDIR:-/tmp}/hwkv-cuda-obj.XXXXXX")"
trap 'rm -rf "$obj"' EXIT
mkdir -p "$out"

cpus="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"
jobs="${HWKV_CUDA_JOBS:-$(( cpus < 8 ? cpus : 8 ))}"

flags=(-O3 -std=c++17 -Xcompiler -fPIC,-fvisibility=hidden -I core/include
       -gencode arch=compute_80,code=compute_80
       -gencode arch=compute_90a,code=sm_90a
       -Xptxas -warn-spills)

srcs=(cuda/api.cu cuda/rope.cu cuda/pack.cu cuda/fwht.cu cuda/store.cu cuda/codec.cu cuda/attn.cu cuda/blas.cu
      cuda/model_api.cu cuda/model_forward.cu cuda/model_q8.cu cuda/quant_api.cu
      # the CPU core's host-side code, shared instead of repeated (cuda/core_host.cuh)
      core/src/errors.cpp core/src/rope_freq.cpp core/src/model_params.cpp core/src/model_files.cpp
      core/src/quant_params.cpp core/src/quant_ridge.cpp core/src/half.cpp core/src/codec_params.cpp
      core/src/kernels_threadpool.cpp)

start=$(date +%s)
echo "build-cuda: $("$nvcc" --version | tail -n 2 | head -n 1)"
echo "build-cuda: compiling ${#srcs[@]} files with $jobs jobs"
pids=()
fail=0
for src in "${srcs[@]}"; do
  base="$(basename "$src")"
  o="$obj/${base%.*}.o"
  "$nvcc" "${flags[@]}" -c "$src" -o "$o" &
  pids+=($!)
  if (( ${#pids[@]} >= jobs )); then
    wait "${pids[0]}" || fail=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if (( fail )); then
  echo "build-cuda: compilation failed" >&2
  exit 1
fi

objs=()
for src in "${srcs[@]}"; do base="$(basename "$src")"; objs+=("$obj/${base%.*}.o"); done
"$nvcc" -shared -cudart static \
  -gencode arch=compute_80,code=compute_80 -gencode arch=compute_90a,code=sm_90a \
  -Xlinker --no-undefined -o "$out/libhwkv_cuda.so" "${objs[@]}" -ldl -lpthread

end=$(date +%s)
echo "build-cuda: wrote $out/libhwkv_cuda.so ($(( end - start )) s)"
