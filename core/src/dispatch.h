// dispatch.h — the CPU kernel table and its run-time selection.
//
// Build macros (set by the build scripts, never by users):
//   HWKV_HAVE_AVX2=1       native x86-64 build that also compiles core/src/simd/avx2/*.cpp with
//                          -mavx2 -mfma -mf16c. The AVX2+FMA table is then chosen at run time when the CPU
//                          reports both avx2 and fma (__builtin_cpu_supports; on MSVC via __cpuid).
//                          Without the macro (or on non-x86) only the scalar table exists.
//   HWKV_HAVE_WASM_SIMD=1  emscripten build with -msimd128 that also compiles core/src/simd/wasm/*.cpp.
//                          SIMD128 is a compile-time property of the module, so that table is chosen
//                          unconditionally.
// Files: core/src/*.cpp is portable C++17 (scalar "generic" kernels, compiled everywhere, no intrinsics);
// core/src/simd/avx2/*.cpp only contain code under (__x86_64__ || _M_X64) && __AVX2__; core/src/simd/wasm/*.cpp
// only under __EMSCRIPTEN__ && __wasm_simd128__. Each SIMD file exports an install_<isa>_<op>(Kernels&) that
// overrides the members it accelerates; members it leaves alone keep the scalar kernels.
//
// hwkv_cpu_set_simd(1) switches every member back to scalar, and the matmul kernels of the model forward too
// (kern::set_force_scalar); used by tests to compare both paths.
#ifndef HWKV_CORE_DISPATCH_H
#define HWKV_CORE_DISPATCH_H

#include <cstdint>

namespace hwkv {

// Prefetch hint of attn_tile: two byte ranges (either may be empty) the tile touches with prefetches spread over
// its arithmetic, so the next page streams in while this one is computed.
struct AttnPrefetch {
  const char* k = nullptr;
  int64_t k_bytes = 0;
  const char* v = nullptr;
  int64_t v_bytes = 0;
};

struct Kernels {
  const char* name;  // "scalar" | "avx2" | "simd128"

  // -- bit packing (arguments already validated; every code < 2^bits) --
  // words receives exactly ceil(n*bits/32) words; codes reads exactly that many words.
  void (*pack_bits)(const uint16_t* codes, int64_t n, int bits, uint32_t* words);
  void (*unpack_bits)(const uint32_t* words, int64_t n, int bits, uint16_t* codes);
  uint16_t (*max_u16)(const uint16_t* x, int64_t n);  // 0 for n == 0

  // -- FWHT: one row of n = 2^k floats, in place, times scale --
  void (*fwht_row)(float* x, int64_t n, float scale);

  // -- RoPE: rotate n_vec vectors x + i*stride over dims [0, rotary_dim) with expanded tables C, S of
  //    length rotary_dim: x'[j] = x[j]*C[j] + x[partner(j)]*S[j]; partner pairs (i, i+rotary_dim/2) for
  //    NEOX (style 0) and (2i, 2i+1) for NORMAL (style 1). See rope.h for the table layout. --
  void (*rope_rotate)(float* x, int64_t n_vec, int64_t stride, int32_t rotary_dim, int32_t style,
                      const float* C, const float* S);

  // -- attention: one online-softmax step of nq queries q[nq, d] (e.g. every head of a GQA group, of
  //    several query rows) over the same n keys K[n, d], values V[n, dv]: each K/V row is loaded once for all
  //    queries. Query j: scores s_t = scale*<q_j, K_t>; state m[j] (running max), l[j] (running sum of
  //    exp(s - m)), acc[j*dv .. j*dv+dv) (running sum of exp(s - m) V_t). scratch holds >= nq*n floats.
  //    n >= 1, nq >= 1. pf (may be null): byte ranges to prefetch while computing (the next page's K and V),
  //    a hint only: never read, and each query's result is bitwise the same with or without it. --
  void (*attn_tile)(const float* q, int64_t nq, const float* K, const float* V, int64_t n, int32_t d, int32_t dv,
                    float scale, float* m, float* l, float* acc, float* scratch, const AttnPrefetch* pf);

  // -- half precision (IEEE binary16), round to nearest even --
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n);
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n);
};

// The table in effect (scalar, or the best SIMD level unless forced scalar).
const Kernels& kernels();
// The portable table (always available).
const Kernels& scalar_kernels();
// 0 = best available, nonzero = scalar. Returns the name of the table in effect afterwards.
const char* set_simd(int force_scalar);

// SIMD installers (defined in core/src/simd/<isa>/*.cpp, present only in the matching builds).
#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2 && (defined(__x86_64__) || defined(_M_X64))
void install_avx2_pack(Kernels& k);
void install_avx2_fwht(Kernels& k);
void install_avx2_rope(Kernels& k);
void install_avx2_attn(Kernels& k);
void install_avx2_half(Kernels& k);
#endif
#if defined(HWKV_HAVE_WASM_SIMD) && HWKV_HAVE_WASM_SIMD && defined(__EMSCRIPTEN__)
void install_wasm_pack(Kernels& k);
void install_wasm_fwht(Kernels& k);
void install_wasm_rope(Kernels& k);
void install_wasm_attn(Kernels& k);
#endif

// Scalar kernels, also used by SIMD files for tails and unaccelerated cases.
void pack_bits_scalar(const uint16_t* codes, int64_t n, int bits, uint32_t* words);
void unpack_bits_scalar(const uint32_t* words, int64_t n, int bits, uint16_t* codes);
uint16_t max_u16_scalar(const uint16_t* x, int64_t n);
void fwht_row_scalar(float* x, int64_t n, float scale);
// One radix-2 pass set: butterflies of strides h in [h_begin, h_end) over x[0, len).
void fwht_strides_scalar(float* x, int64_t len, int64_t h_begin, int64_t h_end);
void rope_rotate_scalar(float* x, int64_t n_vec, int64_t stride, int32_t rotary_dim, int32_t style,
                        const float* C, const float* S);
void attn_tile_scalar(const float* q, int64_t nq, const float* K, const float* V, int64_t n, int32_t d, int32_t dv,
                      float scale, float* m, float* l, float* acc, float* scratch, const AttnPrefetch* pf);
void f32_to_f16_scalar(const float* x, uint16_t* y, int64_t n);
void f16_to_f32_scalar(const uint16_t* x, float* y, int64_t n);
uint16_t f32_to_f16_one(float f);
float f16_to_f32_one(uint16_t h);

}  // namespace hwkv

#endif
