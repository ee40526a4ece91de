#!/usr/bin/env bash
# build-wasm.sh — build the WebAssembly backend from the CPU core (core/src) with emscripten.
#
#   bash scripts/build-wasm.sh [OUT_DIR]      (default OUT_DIR: prebuilds/wasm)
#
# Produces OUT_DIR/hwkv.cjs (emscripten CommonJS glue, MODULARIZE'd as createHwkvModule), OUT_DIR/hwkv.wasm
# and OUT_DIR/BUILD_INFO.json. The build is deterministic: rebuilding the same sources with the same toolchain
# yields the same bytes (scripts/check-wasm.sh relies on it). The committed prebuilds/wasm must be rebuilt
# and committed whenever core/src, core/include, bindings/wasm or this script changes.
#
# Toolchain: emscripten (emcc; the Debian package needs NODE_PATH=/usr/share/nodejs) and binaryen's wasm-opt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/prebuilds/wasm}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

export LC_ALL=C
export TZ=UTC
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
EMCC="${EMCC:-emcc}"
WASM_OPT="${WASM_OPT:-wasm-opt}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

for tool in "$EMCC" "$WASM_OPT"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-wasm: '$tool' not found (install emscripten and binaryen)" >&2
    exit 2
  fi
done

cd "$ROOT"

# Sources, repo-relative and sorted so the link order never depends on the file system.
# core/src/simd/avx2 is x86-only and never compiled here.
shopt -s nullglob
CORE_SOURCES=(core/src/*.cpp)
if [ ${#CORE_SOURCES[@]} -eq 0 ]; then
  echo "build-wasm: no core sources in core/src" >&2
  exit 2
fi
mapfile -t SOURCES < <(printf '%s\n' "${CORE_SOURCES[@]}" core/src/simd/wasm/*.cpp bindings/wasm/exports.cpp | sort -u)
# Everything whose content can change the output (hashed into BUILD_INFO.json).
mapfile -t HASHED < <({ printf '%s\n' "${SOURCES[@]}" core/include/*.h bindings/wasm/*.h scripts/build-wasm.sh;
  find core/src -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.inc' \) -not -path '*/avx2/*'; } | sort -u)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hwkv-wasm.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Compile flags. -ffile-prefix-map keeps the checkout path out of the output (e.g. __FILE__ in asserts);
# -fwasm-exceptions lets the core's guarded() turn std::bad_alloc into HWKV_ERR_OUT_OF_MEMORY.
CXXFLAGS=(
  -O3 -std=c++17 -g0 -DNDEBUG
  -msimd128 -DHWKV_HAVE_WASM_SIMD=1
  -fwasm-exceptions
  "-ffile-prefix-map=$ROOT/="
)
# Link settings. -sENVIRONMENT=web,worker: the glue carries no Node code (no require('fs'), no process.on
# handlers); it still runs in Node because the loaders always pass wasmBinary themselves.
LDFLAGS=(
  -O3 -g0 -fwasm-exceptions
  -sMODULARIZE=1 -sEXPORT_NAME=createHwkvModule
  -sENVIRONMENT=web,worker
  -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB
  -sABORTING_MALLOC=0
  -sFILESYSTEM=0
  -sDYNAMIC_EXECUTION=0
  -sNODEJS_CATCH_EXIT=0 -sNODEJS_CATCH_REJECTION=0
  "-sEXPORTED_FUNCTIONS=[_malloc,_free]"
  "-sEXPORTED_RUNTIME_METHODS=[]"
)
WASM_OPT_FLAGS=(
  -O3
  --enable-simd --enable-sign-ext --enable-mutable-globals --enable-exception-handling
  --strip-debug --strip-producers
)

echo "build-wasm: compiling ${#SOURCES[@]} sources with $("$EMCC" --version | sed -n 1p)" >&2
mkdir -p "$WORK/obj"
OBJS=()
for src in "${SOURCES[@]}"; do
  OBJS+=("$WORK/obj/$(echo "$src" | tr '/' '_').o")
done
# Compile in parallel (objects are named after their sources, so the result does not depend on scheduling).
export WORK
printf '%s\n' "${SOURCES[@]}" | xargs -P "$JOBS" -I{} sh -c \
  'src="$1"; shift; exec "$0" "$@" -c "$src" -o "$WORK/obj/$(echo "$src" | tr / _).o"' "$EMCC" {} "${CXXFLAGS[@]}"
# (emcc is $0, the source $1, the flags follow.)

"$EMCC" "${OBJS[@]}" "${LDFLAGS[@]}" -o "$WORK/hwkv.js"
"$WASM_OPT" "${WASM_OPT_FLAGS[@]}" "$WORK/hwkv.wasm" -o "$WORK/hwkv.opt.wasm"

# Sanity: no checkout path may leak into the artifacts.
if grep -q -F "$ROOT" "$WORK/hwkv.js" "$WORK/hwkv.opt.wasm"; then
  echo "build-wasm: the checkout path $ROOT leaked into the output" >&2
  exit 1
fi

cp "$WORK/hwkv.js" "$OUT/hwkv.cjs"
cp "$WORK/hwkv.opt.wasm" "$OUT/hwkv.wasm"

# BUILD_INFO.json: toolchain versions, flags and hashes. No timestamps, no paths (deterministic).
sha() { sha256sum "$@" | cut -d' ' -f1; }
SOURCES_SHA="$(for f in "${HASHED[@]}"; do printf '%s  %s\n' "$(sha "$f")" "$f"; done | sha256sum | cut -d' ' -f1)"
json_list() { local first=1; printf '['; for x in "$@"; do [ $first = 1 ] || printf ', '; first=0; printf '"%s"' "$x"; done; printf ']'; }
EMCC_VERSION="$("$EMCC" --version | sed -n 1p | sed -E 's/.* ([0-9]+\.[0-9]+\.[0-9]+).*/\1/')"
CLANG_VERSION="$("$EMCC" -v 2>&1 | sed -n "s/.*clang version \([^ ]*\).*/\1/p" | sed -n 1p)"
WASM_OPT_VERSION="$("$WASM_OPT" --version | sed -E 's/.*version ([^ ]+).*/\1/')"
CXXFLAGS_PRINT=()
for f in "${CXXFLAGS[@]}"; do case "$f" in -ffile-prefix-map=*) CXXFLAGS_PRINT+=("-ffile-prefix-map=<root>");; *) CXXFLAGS_PRINT+=("$f");; esac; done
{
  printf '{\n'
  printf '  "emcc": "%s",\n' "$EMCC_VERSION"
  printf '  "clang": "%s",\n' "$CLANG_VERSION"
  printf '  "wasm_opt": "%s",\n' "$WASM_OPT_VERSION"
  printf '  "cxxflags": %s,\n' "$(json_list "${CXXFLAGS_PRINT[@]}")"
  printf '  "ldflags": %s,\n' "$(json_list "${LDFLAGS[@]}")"
  printf '  "wasm_opt_flags": %s,\n' "$(json_list "${WASM_OPT_FLAGS[@]}")"
  printf '  "hashed_files": %s,\n' "$(json_list "${HASHED[@]}")"
  printf '  "sources_sha256": "%s",\n' "$SOURCES_SHA"
  printf '  "hwkv_wasm_sha256": "%s",\n' "$(sha "$OUT/hwkv.wasm")"
  printf '  "hwkv_cjs_sha256": "%s"\n' "$(sha "$OUT/hwkv.cjs")"
  printf '}\n'
} >"$OUT/BUILD_INFO.json"

echo "build-wasm: wrote $OUT/hwkv.cjs ($(wc -c <"$OUT/hwkv.cjs") bytes), $OUT/hwkv.wasm ($(wc -c <"$OUT/hwkv.wasm") bytes)" >&2
