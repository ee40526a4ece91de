#!/usr/bin/env bash
# check-wasm.sh — CI guard: the committed WebAssembly artifacts (prebuilds/wasm) must be exactly what
# scripts/build-wasm.sh produces from the current sources. Rebuilds into a temp dir and compares bytes.
#
#   bash scripts/check-wasm.sh        exit 0: up to date; exit 1: stale (or missing); exit 2: cannot build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMMITTED="$ROOT/prebuilds/wasm"
FILES=(hwkv.cjs hwkv.wasm BUILD_INFO.json)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/hwkv-wasm-check.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if ! bash "$ROOT/scripts/build-wasm.sh" "$TMP/out"; then
  echo "check-wasm: the WebAssembly build failed (see above)" >&2
  exit 2
fi

stale=()
for f in "${FILES[@]}"; do
  if [ ! -f "$COMMITTED/$f" ]; then
    stale+=("$f (missing)")
  elif ! cmp -s "$COMMITTED/$f" "$TMP/out/$f"; then
    stale+=("$f")
  fi
done

if [ ${#stale[@]} -ne 0 ]; then
  echo "committed WASM artifact is stale: run npm run build:wasm and commit prebuilds/wasm" >&2
  echo "  differing: ${stale[*]}" >&2
  # Different toolchains produce different bytes; say so when that is the likely cause.
  if [ -f "$COMMITTED/BUILD_INFO.json" ]; then
    for key in emcc clang wasm_opt; do
      a="$(sed -n "s/^  \"$key\": \"\\(.*\\)\",\$/\\1/p" "$COMMITTED/BUILD_INFO.json")"
      b="$(sed -n "s/^  \"$key\": \"\\(.*\\)\",\$/\\1/p" "$TMP/out/BUILD_INFO.json")"
      if [ "$a" != "$b" ]; then
        echo "  note: toolchain differs: $key committed=$a here=$b (the artifact is only reproducible with the same toolchain)" >&2
      fi
    done
    a="$(sed -n 's/^  "sources_sha256": "\(.*\)",$/\1/p' "$COMMITTED/BUILD_INFO.json")"
    b="$(sed -n 's/^  "sources_sha256": "\(.*\)",$/\1/p' "$TMP/out/BUILD_INFO.json")"
    [ "$a" = "$b" ] || echo "  sources changed since the artifact was built (sources_sha256 $a -> $b)" >&2
  fi
  exit 1
fi
echo "check-wasm: prebuilds/wasm is up to date ($(sha256sum "$COMMITTED/hwkv.wasm" | cut -c1-16)...)" >&2
