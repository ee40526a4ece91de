// quant_api.cpp — hwkv_cpu_quant_api(): the C table of core/include/hwkv_quant.h (no exceptions across).
#include "quant_internal.h"

namespace hwkv {
namespace quant {
namespace {

hwkv_status api_higgs_size(const hwkv_higgs_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales) {
  return guarded("higgs_size", [&] { return higgs_size(p, n_tok, n_words, n_scales); });
}
hwkv_status api_higgs_encode(const hwkv_higgs_params* p, const float* grid, const float* x, int64_t n_tok,
                             uint32_t* codes, int64_t n_words, uint16_t* scales) {
  return guarded("higgs_encode", [&] { return higgs_encode(p, grid, x, n_tok, codes, n_words, scales); });
}
hwkv_status api_higgs_decode(const hwkv_higgs_params* p, const float* grid, const uint32_t* codes, int64_t n_words,
                             const uint16_t* scales, int64_t n_tok, float* y, int32_t accumulate) {
  return guarded("higgs_decode", [&] { return higgs_decode(p, grid, codes, n_words, scales, n_tok, y, accumulate); });
}
hwkv_status api_grid_nearest(const float* grid, int32_t n_points, int32_t dim, const float* z, int64_t m,
                             uint16_t* idx) {
  return guarded("grid_nearest", [&] { return nearest(grid, n_points, dim, z, m, idx); });
}
hwkv_status api_higgs_signs(uint32_t seed, int32_t channels, float* out) {
  return guarded("higgs_signs", [&] { return signs(seed, channels, out); });
}
hwkv_status api_uniform_size(const hwkv_uniform_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales) {
  return guarded("uniform_size", [&] { return uniform_size(p, n_tok, n_words, n_scales); });
}
hwkv_status api_uniform_encode(const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint32_t* codes,
                               int64_t n_words, uint16_t* scales, uint16_t* zeros) {
  return guarded("uniform_encode", [&] { return uniform_encode(p, x, n_tok, codes, n_words, scales, zeros); });
}
hwkv_status api_uniform_decode(const hwkv_uniform_params* p, const uint32_t* codes, int64_t n_words,
                               const uint16_t* scales, const uint16_t* zeros, int64_t n_tok, float* y,
                               int32_t accumulate) {
  return guarded("uniform_decode",
                 [&] { return uniform_decode(p, codes, n_words, scales, zeros, n_tok, y, accumulate); });
}
hwkv_status api_ridge_accumulate(const float* x, const float* y, int64_t n, int32_t p, int32_t q, double* xtx,
                                 double* xty, double* yy) {
  return guarded("ridge_accumulate", [&] { return ridge_accumulate(x, y, n, p, q, xtx, xty, yy); });
}
hwkv_status api_ridge_solve(const double* xtx, const double* xty, int32_t p, int32_t q, double lambda_rel, float* w) {
  return guarded("ridge_solve", [&] { return ridge_solve(xtx, xty, p, q, lambda_rel, w); });
}
hwkv_status api_linear_apply(const float* x, int64_t n, int32_t p, int32_t q, const float* w, float* y) {
  return guarded("linear_apply", [&] { return linear_apply(x, n, p, q, w, y); });
}

const hwkv_quant_api kQuantApi = {
    HWKV_QUANT_ABI_VERSION,
    static_cast<uint32_t>(sizeof(hwkv_quant_api)),
    api_higgs_size,
    api_higgs_encode,
    api_higgs_decode,
    api_grid_nearest,
    api_higgs_signs,
    api_uniform_size,
    api_uniform_encode,
    api_uniform_decode,
    api_ridge_accumulate,
    api_ridge_solve,
    api_linear_apply,
};

}  // namespace
}  // namespace quant
}  // namespace hwkv

extern "C" HWKV_API const hwkv_quant_api* hwkv_cpu_quant_api(void) { return &hwkv::quant::kQuantApi; }
