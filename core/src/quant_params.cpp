// quant_params.cpp — the quantizers' host-side parameter checks, sizes and HIGGS signs (hwkv_quant.h): no
// kernels, so the CUDA library compiles this file too (cuda/core_host.cuh) and both backends validate with
// one implementation and one set of messages.
#include <cmath>

#include "pack.h"
#include "quant_internal.h"

namespace hwkv {
namespace quant {

int32_t code_bits(int64_t v) {
  int32_t b = 0;
  while ((int64_t{1} << b) < v) ++b;
  return b;
}

namespace {

inline uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z;
}

inline bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }


}  // namespace

void make_signs(uint32_t seed, int32_t channels, float* signs) {
  for (int32_t c = 0; c < channels; ++c) {
    const uint64_t v = mix64(((uint64_t(seed) << 32) + uint64_t(c) + 1) * 0x9E3779B97F4A7C15ull);
    signs[c] = (v >> 63) ? -1.0f : 1.0f;
  }
}

hwkv_status check_higgs(const char* fn, const hwkv_higgs_params* p, const float* grid) {
  if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->dim != 1 && p->dim != 2 && p->dim != 4 && p->dim != 8)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: dim must be 1, 2, 4 or 8, got %d", fn, p->dim);
  if (p->n_points < 2 || p->n_points > 65536)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: n_points must be a power of two in 2..65536 (1..16 bits per code), got %d", fn,
                p->n_points);
  if (!is_pow2(p->n_points))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_points must be a power of two (bits per code = log2 n), got %d", fn,
                p->n_points);
  if (p->group < 1 || p->group > 65536 || !is_pow2(p->group))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: group must be a power of two in 1..65536, got %d", fn, p->group);
  if (p->group % p->dim != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: group (%d) must be a multiple of dim (%d)", fn, p->group, p->dim);
  if (p->channels < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: channels must be >= 1, got %d", fn, p->channels);
  if (p->channels % p->group != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "%s: channels (%d) must be a multiple of group (%d); choose group = the largest power of two dividing "
                "channels (no padding is done)",
                fn, p->channels, p->group);
  if (p->use_signs != 0 && p->use_signs != 1)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: use_signs must be 0 or 1, got %d", fn, p->use_signs);
  if (grid != nullptr) {
    const int64_t len = int64_t(p->n_points) * p->dim;
    for (int64_t i = 0; i < len; ++i)
      if (!std::isfinite(grid[i]))
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: grid value %lld is not finite", fn, (long long)i);
  }
  return HWKV_OK;
}

hwkv_status higgs_size(const hwkv_higgs_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales) {
  HWKV_TRY(check_higgs("higgs_size", p, nullptr));
  if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "higgs_size: n_tok must be >= 0, got %lld", (long long)n_tok);
  const int32_t bits = code_bits(p->n_points);
  if (n_words) *n_words = packed_words(n_tok * (p->channels / p->dim), bits);
  if (n_scales) *n_scales = n_tok * (p->channels / p->group);
  return HWKV_OK;
}

// The checks encode and decode share: grid, parameters, n_tok, and room for the packed codes.
hwkv_status check_higgs_call(const char* fn, const hwkv_higgs_params* p, const float* grid, int64_t n_tok,
                             int64_t n_words) {
  if (!grid) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: grid is NULL", fn);
  HWKV_TRY(check_higgs(fn, p, grid));
  if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 0, got %lld", fn, (long long)n_tok);
  const int64_t need = packed_words(n_tok * (p->channels / p->dim), code_bits(p->n_points));
  if (n_words < need)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: codes has %lld words, needs %lld (ceil(n_tok*(C/d)*log2(n)/32))", fn,
                (long long)n_words, (long long)need);
  return HWKV_OK;
}

hwkv_status signs(uint32_t seed, int32_t channels, float* out) {
  if (channels < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "higgs_signs: channels must be >= 0, got %d", channels);
  if (channels == 0) return HWKV_OK;
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "higgs_signs: signs is NULL");
  make_signs(seed, channels, out);
  return HWKV_OK;
}

hwkv_status check_uniform(const char* fn, const hwkv_uniform_params* p, int64_t n_tok) {
  if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  if (p->bits < 1 || p->bits > 8) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: bits must be in 1..8, got %d", fn, p->bits);
  if (p->channels < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: channels must be >= 1, got %d", fn, p->channels);
  if (p->axis != HWKV_UNIFORM_PER_TOKEN && p->axis != HWKV_UNIFORM_PER_CHANNEL)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: axis must be 0 (per token) or 1 (per channel), got %d", fn, p->axis);
  if (p->group < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: group must be >= 1, got %d", fn, p->group);
  if (p->axis == HWKV_UNIFORM_PER_TOKEN && p->channels % p->group != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: per-token groups: channels (%d) must be a multiple of group (%d)", fn,
                p->channels, p->group);
  if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 0, got %lld", fn, (long long)n_tok);
  return HWKV_OK;
}

hwkv_status check_uniform_call(const char* fn, const hwkv_uniform_params* p, int64_t n_tok, int64_t n_words) {
  HWKV_TRY(check_uniform(fn, p, n_tok));
  const int64_t need = packed_words(n_tok * p->channels, p->bits);
  if (n_words < need)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: codes has %lld words, needs %lld (ceil(n_tok*C*bits/32))", fn,
                (long long)n_words, (long long)need);
  return HWKV_OK;
}

int64_t uniform_n_scales(const hwkv_uniform_params* p, int64_t n_tok) {
  if (p->axis == HWKV_UNIFORM_PER_TOKEN) return n_tok * (p->channels / p->group);
  return ceil_div(n_tok, p->group) * p->channels;
}

hwkv_status uniform_size(const hwkv_uniform_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales) {
  HWKV_TRY(check_uniform("uniform_size", p, n_tok));
  if (n_words) *n_words = packed_words(n_tok * p->channels, p->bits);
  if (n_scales) *n_scales = uniform_n_scales(p, n_tok);
  return HWKV_OK;
}

}  // namespace quant
}  // namespace hwkv
