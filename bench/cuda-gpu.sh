#!/usr/bin/env bash
# One command on the GPU machine (no Node there; see /work/shared/tools/gpu-prep.sh): builds the CUDA library,
# runs the CUDA-enabled test suites one file at a time (each under its own time limit, so a hang costs one
# suite, not the run) and then `bench:cuda`. Carry .gpu (node) and .gpurun (hwkv.node built here + the
# node_modules subset the tests and tsx need + shared/ with the models the tests read).
#
#   bash bench/cuda-gpu.sh [test-regex|-] [bench args...]
#     test-regex  test files to run (default: every suite that exercises CUDA); '-' skips the tests
#   Environment: OUT (log folder, default /tmp/hwkv-out), DEADLINE_S (whole run, default 560),
#                SUITE_S (per test file, default 90), HWKV_NO_BENCH=1 (tests only)
# Logs go to $OUT: build.log, test-logs.tgz (test-<suite>.log), tests.txt (one summary line per suite), bench.log,
# bench.err, bench.json.
set -uo pipefail
t0=$(date +%s)
left() { echo $(( ${DEADLINE_S:-560} - ($(date +%s) - t0) )); }
source .gpu/enter.sh
out="${OUT:-/tmp/hwkv-out}"
mkdir -p "$out"
if [ -L node_modules ] || [ ! -e node_modules ]; then rm -f node_modules; ln -s .gpurun/node_modules node_modules; fi
export HOGWILD_NATIVE_ADDON="$PWD/.gpurun/hwkv.node"
# ../shared does not travel to the GPU machine: carry a copy (or links) of the models the tests need in .gpurun/shared
if [ -z "${HOGWILD_SHARED:-}" ] && [ -d .gpurun/shared ]; then export HOGWILD_SHARED="$PWD/.gpurun/shared"; fi
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,temperature.gpu --format=csv,noheader
HWKV_CUDA_JOBS="${HWKV_CUDA_JOBS:-14}" bash scripts/build-cuda.sh > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
grep -E "spill|warning" "$out/build.log" | head -5
tail -1 "$out/build.log"

tests="${1:-cuda-|aqua-|model-|hogwild-|ops-}"
shift || true
if [ "$tests" != "-" ]; then
  # CUDA-specific suites first: they are what this machine is for
  mapfile -t files < <(ls test/*.test.ts | xargs -n1 basename | sed 's/\.test\.ts$//' | grep -E "$tests" |
    awk '{ print (/^(cuda-|aqua-cuda)/ ? 0 : 1) " " $0 }' | sort | cut -d' ' -f2)
  : > "$out/tests.txt"
  for f in "${files[@]}"; do
    budget=$(( $(left) - ${BENCH_RESERVE_S:-0} ))
    if [ "$budget" -lt 20 ]; then echo "SKIPPED (no time left): $f" >> "$out/tests.txt"; continue; fi
    lim=$(( budget < ${SUITE_S:-90} ? budget : ${SUITE_S:-90} ))
    timeout "$lim" node test/run.mjs "^$f\\.test\\.ts\$" > "$out/test-$f.log" 2>&1
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out/test-$f.log" | tail -1)
    [ "$rc" = 124 ] && line="TIMED OUT after ${lim}s"
    echo "$f: ${line:-rc $rc}" | tee -a "$out/tests.txt"
    grep -E "✘|MAXERR|AssertionError|FAIL " "$out/test-$f.log" | grep -v "^\s*at " | head -6
  done
fi
# the device tool returns at most 8 files: the per-suite logs travel as one archive
if ls "$out"/test-*.log >/dev/null 2>&1; then
  tar czf "$out/test-logs.tgz" -C "$out" $(cd "$out" && ls test-*.log) && rm -f "$out"/test-*.log
fi
if [ "${HWKV_NO_BENCH:-0}" != "1" ]; then
  timeout "$(( $(left) > 30 ? $(left) : 30 ))" node --import tsx bench/cuda.ts --json-out="$out/bench.json" "$@" \
    2> "$out/bench.err" | tee "$out/bench.log"
  tail -5 "$out/bench.err"
fi
