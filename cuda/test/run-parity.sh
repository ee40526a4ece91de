#!/usr/bin/env bash
# Builds the CPU core + cuda/test/parity.cpp and runs the CUDA-vs-CPU parity test (needs a GPU).
#
#   bash cuda/test/run-parity.sh [--quick] [--seed N]
#
# Builds prebuilds/cuda/libhwkv_cuda.so first if it is missing. The CPU core is compiled as the native addon
# compiles it (core/src/*.cpp, -O3 -std=c++17), plus core/src/simd/avx2/*.cpp with -mavx2 -mfma -mf16c and
# HWKV_HAVE_AVX2=1 on x86-64, so "cpu best" means the AVX2 kernels and "cpu scalar" the portable ones.
# Set HWKV_PARITY_NO_AVX2=1 to build the scalar core only; HWKV_PARITY_WRAP to run it under a tool.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

lib=prebuilds/cuda/libhwkv_cuda.so
if [[ ! -f "$lib" ]]; then
  bash scripts/build-cuda.sh
fi

cxx="${CXX:-g++}"
out="$(mktemp -d "${TMPDIR:-/tmp}/hwkv-parity.XXXXXX")"
trap 'rm -rf "$out"' EXIT
jobs="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"

base=(-O3 -std=c++17 -fPIC -Icore/include -Icore/src)
defs=()
avx2=()
if [[ "$(uname -m)" == "x86_64" && "${HWKV_PARITY_NO_AVX2:-0}" != "1" ]] && compgen -G "core/src/simd/avx2/*.cpp" >/dev/null; then
  defs=(-DHWKV_HAVE_AVX2=1)
  avx2=(core/src/simd/avx2/*.cpp)
fi

compile() {  # compile <flags...> -- <sources...>; objects into $out
  local flags=() srcs=()
  while [[ "$1" != "--" ]]; do flags+=("$1"); shift; done
  shift
  srcs=("$@")
  printf '%s\n' "${srcs[@]}" | xargs -P "$jobs" -I{} sh -c \
    'f="{}"; o="'"$out"'/$(echo "$f" | tr / _).o"; exec '"$cxx"' '"${flags[*]}"' -c "$f" -o "$o"'
}

start=$(date +%s)
echo "run-parity: compiling the CPU core (${#avx2[@]} AVX2 files) and parity.cpp"
if ! compile "${base[@]}" "${defs[@]}" -- core/src/*.cpp cuda/test/parity.cpp || \
   { (( ${#avx2[@]} )) && ! compile "${base[@]}" "${defs[@]}" -mavx2 -mfma -mf16c -- "${avx2[@]}"; }; then
  if (( ${#avx2[@]} )); then
    echo "run-parity: build with AVX2 failed; retrying with the scalar core only" >&2
    rm -f "$out"/*.o
    defs=()
    avx2=()
    compile "${base[@]}" -- core/src/*.cpp cuda/test/parity.cpp
  else
    exit 1
  fi
fi
"$cxx" -o "$out/parity" "$out"/*.o -ldl -pthread
echo "run-parity: built in $(( $(date +%s) - start )) s (cpu simd: ${defs[*]:-scalar only})"

# HWKV_PARITY_WRAP: a command prefix, e.g. "compute-sanitizer --tool memcheck --error-exitcode 9".
${HWKV_PARITY_WRAP:-} "$out/parity" "$lib" "$@"
