#!/usr/bin/env bash
# One command on the GPU machine (no Node there; see /work/shared/tools/gpu-prep.sh): builds the CUDA library,
# runs the CUDA-enabled test suites and `bench:cuda`. Carry .gpu (node) and .gpurun (hwkv.node + the
# node_modules subset the tests and tsx need). Usage: bash bench/cuda-gpu.sh [test-regex|-] [bench args...]
#   test-regex  default 'ops-|model-|hogwild-|cuda-|aqua-'; '-' skips the tests
# Logs go to $OUT (when set) as build.log, test.log, bench.log, bench.json.
set -uo pipefail
source .gpu/enter.sh
out="${OUT:-/tmp/hwkv-out}"
mkdir -p "$out"
if [ -L node_modules ] || [ ! -e node_modules ]; then rm -f node_modules; ln -s .gpurun/node_modules node_modules; fi
export HOGWILD_NATIVE_ADDON="$PWD/.gpurun/hwkv.node"
# ../shared does not travel to the GPU machine: carry a copy (or links) of the models the tests need in .gpurun/shared
if [ -z "${HOGWILD_SHARED:-}" ] && [ -d .gpurun/shared ]; then export HOGWILD_SHARED="$PWD/.gpurun/shared"; fi
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,temperature.gpu --format=csv,noheader
bash scripts/build-cuda.sh > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
grep -E "spill|warning" "$out/build.log" | head -5
tail -1 "$out/build.log"
tests="${1:-ops-|model-|hogwild-|cuda-|aqua-}"
shift || true
if [ "$tests" != "-" ]; then
  node test/run.mjs "$tests" > "$out/test.log" 2>&1
  grep -E "^(FAIL|SKIP)|✘|MAXERR|AssertionError|passed, " "$out/test.log" | head -30
fi
if [ "${HWKV_NO_BENCH:-0}" != "1" ]; then
  node --import tsx bench/cuda.ts --json-out="$out/bench.json" "$@" 2> "$out/bench.err" | tee "$out/bench.log"
  tail -5 "$out/bench.err"
fi
