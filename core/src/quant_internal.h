// quant_internal.h — internals shared by core/src/quant_*.cpp and core/src/simd/*/quant*.cpp
// (the quantizers and ridge algebra of core/include/hwkv_quant.h).
//
// SIMD: the quantizer kernels keep their own small table (not dispatch.h's Kernels): the AVX2 variants are
// used when the core's kernel table in effect is the AVX2 one (so hwkv_cpu_set_simd(1) forces scalar here
// too). The nearest-point search produces identical codes on every path: scores are formed with separate
// multiplies and adds in the same order (no FMA contraction; see the pragmas in the .cpp files).
#ifndef HWKV_CORE_QUANT_INTERNAL_H
#define HWKV_CORE_QUANT_INTERNAL_H

#include <cstdint>
#include <vector>

#include "../include/hwkv_quant.h"
#include "common.h"

namespace hwkv {
namespace quant {

// A grid laid out for the search. Brute force: points in blocks of 8, coordinates structure-of-arrays
// soa[b][k][lane], half squared norms hn[b*8 + lane] (+inf for padding lanes). d == 1: sorted thresholds.
struct GridSearch {
  int32_t n = 0, d = 0, nb = 0;
  std::vector<float> soa;
  std::vector<float> hn;
  std::vector<float> thr;         // d == 1: n - 1 midpoints between sorted values
  std::vector<uint16_t> order;    // d == 1: sorted position -> grid index
};

void grid_prepare(const float* grid, int32_t n, int32_t d, GridSearch* gs);
// idx[i] = nearest point of z[i*d .. i*d+d) for i < m (dispatches to the SIMD path when in effect).
void grid_nearest(const GridSearch& gs, const float* z, int64_t m, uint16_t* idx);
void grid_nearest_scalar(const GridSearch& gs, const float* z, int64_t m, uint16_t* idx);

// out[i*ldo + j] = sum_r A[i*R + r] * B[j*R + r] for i < na, j < nb (rows of R floats, R % 8 == 0).
void dots_scalar(const float* A, int32_t na, const float* B, int32_t nb, int64_t R, float* out, int64_t ldo);

bool simd_avx2_active();

// ±1 per channel (see hwkv_quant.h).
void make_signs(uint32_t seed, int32_t channels, float* signs);

// Parameter checks and sizes (quant_params.cpp, shared with the CUDA library): check_higgs validates the
// parameters (and the grid's values when grid != NULL); check_higgs_call adds what encode and decode share
// (grid given, n_tok >= 0, room for the packed codes); check_uniform / check_uniform_call likewise for the uniform quantizer.
int32_t code_bits(int64_t n_points);  // log2 of a power of two (bits per code)
hwkv_status check_higgs(const char* fn, const hwkv_higgs_params* p, const float* grid);
hwkv_status check_higgs_call(const char* fn, const hwkv_higgs_params* p, const float* grid, int64_t n_tok,
                             int64_t n_words);
hwkv_status check_uniform(const char* fn, const hwkv_uniform_params* p, int64_t n_tok);
hwkv_status check_uniform_call(const char* fn, const hwkv_uniform_params* p, int64_t n_tok, int64_t n_words);
int64_t uniform_n_scales(const hwkv_uniform_params* p, int64_t n_tok);

// Argument checks of the hwkv_quant_api operations, shared by the CPU and CUDA tables (quant_params.cpp; the
// CPU core's order and messages). *skip = true when there is nothing to compute (no tokens / points / rows).
hwkv_status check_higgs_encode(const char* fn, const hwkv_higgs_params* p, const float* grid, const float* x,
                               int64_t n_tok, const uint32_t* codes, int64_t n_words, const uint16_t* scales,
                               bool* skip);
// (+ every scale a finite fp16 value)
hwkv_status check_higgs_decode(const char* fn, const hwkv_higgs_params* p, const float* grid, const uint32_t* codes,
                               int64_t n_words, const uint16_t* scales, int64_t n_tok, const float* y, bool* skip);
hwkv_status check_nearest(const char* fn, const float* grid, int32_t n_points, int32_t dim, const float* z, int64_t m,
                          const uint16_t* idx, bool* skip);
hwkv_status check_uniform_encode(const char* fn, const hwkv_uniform_params* p, const float* x, int64_t n_tok,
                                 const uint32_t* codes, int64_t n_words, const uint16_t* scales, const uint16_t* zeros,
                                 bool* skip);
// (+ every scale and zero a finite fp16 value)
hwkv_status check_uniform_decode(const char* fn, const hwkv_uniform_params* p, const uint32_t* codes, int64_t n_words,
                                 const uint16_t* scales, const uint16_t* zeros, int64_t n_tok, const float* y,
                                 bool* skip);
hwkv_status check_ridge_accumulate(const char* fn, const float* x, const float* y, int64_t n, int32_t p, int32_t q,
                                   const double* xtx, const double* xty, bool* skip);
hwkv_status check_linear_apply(const char* fn, const float* x, int64_t n, int32_t p, int32_t q, const float* w,
                               const float* y, bool* skip);
// Validation of the inputs with the encoders' messages (the first failure in order): HIGGS group norms ->
// fp16 scales sc[n_tok * G] (may be NULL); uniform: every x finite, then each group's min / max -> fp16 zeros
// Zh and scales Dh (may be NULL) within the fp16 range. The CUDA quantizers call them on the host to word
// the error their kernels detected.
hwkv_status higgs_scales(const char* fn, const hwkv_higgs_params* p, const float* x, int64_t n_tok, uint16_t* sc);
hwkv_status uniform_scales(const char* fn, const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint16_t* Zh,
                           uint16_t* Dh);

// The validating operations behind hwkv_quant_api (quant_api.cpp wraps them in guarded()).
hwkv_status higgs_size(const hwkv_higgs_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales);
hwkv_status higgs_encode(const hwkv_higgs_params* p, const float* grid, const float* x, int64_t n_tok,
                         uint32_t* codes, int64_t n_words, uint16_t* scales);
hwkv_status higgs_decode(const hwkv_higgs_params* p, const float* grid, const uint32_t* codes, int64_t n_words,
                         const uint16_t* scales, int64_t n_tok, float* y, int32_t accumulate);
hwkv_status nearest(const float* grid, int32_t n_points, int32_t dim, const float* z, int64_t m, uint16_t* idx);
hwkv_status signs(uint32_t seed, int32_t channels, float* out);
hwkv_status uniform_size(const hwkv_uniform_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales);
hwkv_status uniform_encode(const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint32_t* codes,
                           int64_t n_words, uint16_t* scales, uint16_t* zeros);
hwkv_status uniform_decode(const hwkv_uniform_params* p, const uint32_t* codes, int64_t n_words,
                           const uint16_t* scales, const uint16_t* zeros, int64_t n_tok, float* y, int32_t accumulate);
hwkv_status ridge_accumulate(const float* x, const float* y, int64_t n, int32_t p, int32_t q, double* xtx,
                             double* xty, double* yy);
hwkv_status ridge_solve(const double* xtx, const double* xty, int32_t p, int32_t q, double lambda_rel, float* w);
hwkv_status linear_apply(const float* x, int64_t n, int32_t p, int32_t q, const float* w, float* y);

#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2 && (defined(__x86_64__) || defined(_M_X64))
#define HWKV_QUANT_AVX2 1
void grid_nearest_avx2(const GridSearch& gs, const float* z, int64_t m, uint16_t* idx);
void dots_avx2(const float* A, int32_t na, const float* B, int32_t nb, int64_t R, float* out, int64_t ldo);
#endif

}  // namespace quant
}  // namespace hwkv

#endif
