// wasm_common.h — included only by core/src/simd/wasm/*.cpp (emscripten with -msimd128).
#ifndef HWKV_CORE_SIMD_WASM_COMMON_H
#define HWKV_CORE_SIMD_WASM_COMMON_H

#if defined(__EMSCRIPTEN__) && defined(HWKV_HAVE_WASM_SIMD) && HWKV_HAVE_WASM_SIMD
#if !defined(__wasm_simd128__)
#error "core/src/simd/wasm/*.cpp must be compiled with -msimd128 when HWKV_HAVE_WASM_SIMD=1"
#endif
#define HWKV_WASM_BODY 1
#include <wasm_simd128.h>
#endif

#endif
