// avx2_common.h — included only by core/src/simd/avx2/*.cpp (compiled with -mavx2 -mfma -mf16c on x86-64).
#ifndef HWKV_CORE_SIMD_AVX2_COMMON_H
#define HWKV_CORE_SIMD_AVX2_COMMON_H

#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2 && (defined(__x86_64__) || defined(_M_X64))
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "core/src/simd/avx2/*.cpp must be compiled with -mavx2 -mfma -mf16c (MSVC: /arch:AVX2)"
#endif
#define HWKV_AVX2_BODY 1
#include <immintrin.h>
#endif

#endif
