// quant_params.cpp — the quantizers' host-side parameter and argument checks, sizes, HIGGS signs and the
// validations of the inputs (group scales, uniform ranges) with their messages (hwkv_quant.h): no kernels, so
// the CUDA library compiles this file too (cuda/core_host.cuh) and both backends validate with one
// implementation and one set of messages.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <vector>

#include "dispatch.h"
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


// ---- argument checks of the hwkv_quant_api operations (in the CPU core's order) ----
hwkv_status check_higgs_encode(const char* fn, const hwkv_higgs_params* p, const float* grid, const float* x,
                               int64_t n_tok, const uint32_t* codes, int64_t n_words, const uint16_t* scales,
                               bool* skip) {
  *skip = false;
  HWKV_TRY(check_higgs_call(fn, p, grid, n_tok, n_words));
  if (n_tok == 0) return *skip = true, HWKV_OK;
  if (!x || !codes || !scales) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: x, codes and scales must not be NULL", fn);
  return HWKV_OK;
}

hwkv_status check_higgs_decode(const char* fn, const hwkv_higgs_params* p, const float* grid, const uint32_t* codes,
                               int64_t n_words, const uint16_t* scales, int64_t n_tok, const float* y, bool* skip) {
  *skip = false;
  HWKV_TRY(check_higgs_call(fn, p, grid, n_tok, n_words));
  if (n_tok == 0) return *skip = true, HWKV_OK;
  if (!y || !codes || !scales) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: codes, scales and y must not be NULL", fn);
  const int32_t G = p->channels / p->group;
  for (int64_t i = 0; i < n_tok * G; ++i)
    if ((scales[i] & 0x7c00u) == 0x7c00u)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: scale %lld (token %lld, group %lld) is not a finite fp16 value", fn,
                  (long long)i, (long long)(i / G), (long long)(i % G));
  return HWKV_OK;
}

hwkv_status higgs_scales(const char* fn, const hwkv_higgs_params* p, const float* x, int64_t n_tok, uint16_t* sc) {
  const int32_t C = p->channels, g = p->group, G = C / g;
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int32_t j = 0; j < G; ++j) {
      const float* xg = x + t * C + int64_t(j) * g;
      double ss = 0.0;
      for (int32_t c = 0; c < g; ++c) ss += double(xg[c]) * double(xg[c]);
      if (!std::isfinite(ss))
        return fail(HWKV_ERR_OUT_OF_RANGE, "%s: token %lld group %d has a non-finite value or norm", fn, (long long)t, j);
      const float nrm = static_cast<float>(std::sqrt(ss));
      const uint16_t h = f32_to_f16_one(nrm);
      if ((h & 0x7c00u) == 0x7c00u)
        return fail(HWKV_ERR_OUT_OF_RANGE, "%s: token %lld group %d has L2 norm %g, beyond the fp16 scale range (65504)", fn,
                    (long long)t, j, double(nrm));
      if (sc) sc[t * G + j] = h;
    }
  }
  return HWKV_OK;
}

hwkv_status check_nearest(const char* fn, const float* grid, int32_t n_points, int32_t dim, const float* z, int64_t m,
                          const uint16_t* idx, bool* skip) {
  *skip = false;
  if (dim != 1 && dim != 2 && dim != 4 && dim != 8)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: dim must be 1, 2, 4 or 8, got %d", fn, dim);
  if (n_points < 1 || n_points > 65536)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: n_points must be in 1..65536, got %d", fn, n_points);
  if (m < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: m must be >= 0, got %lld", fn, (long long)m);
  if (!grid) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: grid is NULL", fn);
  for (int64_t i = 0; i < int64_t(n_points) * dim; ++i)
    if (!std::isfinite(grid[i]))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: grid value %lld is not finite", fn, (long long)i);
  if (m == 0) return *skip = true, HWKV_OK;
  if (!z || !idx) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: z and idx must not be NULL", fn);
  return HWKV_OK;
}

hwkv_status check_uniform_encode(const char* fn, const hwkv_uniform_params* p, const float* x, int64_t n_tok,
                                 const uint32_t* codes, int64_t n_words, const uint16_t* scales, const uint16_t* zeros,
                                 bool* skip) {
  *skip = false;
  HWKV_TRY(check_uniform_call(fn, p, n_tok, n_words));
  if (n_tok == 0) return *skip = true, HWKV_OK;
  if (!x || !codes || !scales || !zeros)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: x, codes, scales and zeros must not be NULL", fn);
  return HWKV_OK;
}

hwkv_status check_uniform_decode(const char* fn, const hwkv_uniform_params* p, const uint32_t* codes, int64_t n_words,
                                 const uint16_t* scales, const uint16_t* zeros, int64_t n_tok, const float* y,
                                 bool* skip) {
  *skip = false;
  HWKV_TRY(check_uniform_call(fn, p, n_tok, n_words));
  if (n_tok == 0) return *skip = true, HWKV_OK;
  if (!y || !codes || !scales || !zeros)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: codes, scales, zeros and y must not be NULL", fn);
  const int64_t ns = uniform_n_scales(p, n_tok);
  for (int64_t i = 0; i < ns; ++i)
    if ((scales[i] & 0x7c00u) == 0x7c00u || (zeros[i] & 0x7c00u) == 0x7c00u)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: scale/zero %lld is not a finite fp16 value", fn, (long long)i);
  return HWKV_OK;
}

hwkv_status uniform_scales(const char* fn, const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint16_t* Zh,
                           uint16_t* Dh) {
  const int32_t C = p->channels, bits = p->bits, grp = p->group;
  const int64_t n_codes = n_tok * C;
  const int64_t ns = uniform_n_scales(p, n_tok);
  for (int64_t i = 0; i < n_codes; ++i)
    if (!std::isfinite(x[i]))
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: x[%lld] (token %lld, channel %lld) is not finite", fn, (long long)i,
                  (long long)(i / C), (long long)(i % C));
  std::vector<float> lo(static_cast<size_t>(ns)), hi(static_cast<size_t>(ns));
  if (p->axis == HWKV_UNIFORM_PER_TOKEN) {
    const int32_t G = C / grp;
    for (int64_t t = 0; t < n_tok; ++t)
      for (int32_t j = 0; j < G; ++j) {
        const float* xg = x + t * C + int64_t(j) * grp;
        float a = xg[0], b = xg[0];
        for (int32_t c = 1; c < grp; ++c) {
          a = std::min(a, xg[c]);
          b = std::max(b, xg[c]);
        }
        lo[t * G + j] = a;
        hi[t * G + j] = b;
      }
  } else {
    for (int64_t t = 0; t < n_tok; ++t) {
      const int64_t base = (t / grp) * C;
      const float* xr = x + t * C;
      const bool first = (t % grp) == 0;
      for (int32_t c = 0; c < C; ++c) {
        if (first) {
          lo[base + c] = xr[c];
          hi[base + c] = xr[c];
        } else {
          lo[base + c] = std::min(lo[base + c], xr[c]);
          hi[base + c] = std::max(hi[base + c], xr[c]);
        }
      }
    }
  }
  const float L = static_cast<float>((1 << bits) - 1);
  auto finite16 = [](uint16_t h) { return (h & 0x7c00u) != 0x7c00u; };
  for (int64_t i = 0; i < ns; ++i) {
    const uint16_t z = f32_to_f16_one(lo[i]), d = f32_to_f16_one((hi[i] - lo[i]) / L);
    if (!finite16(z) || !finite16(d) || !finite16(f32_to_f16_one(hi[i])))
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: group %lld spans [%g, %g], beyond the fp16 range of scale/zero", fn,
                  (long long)i, double(lo[i]), double(hi[i]));
    if (Zh) Zh[i] = z;
    if (Dh) Dh[i] = d;
  }
  return HWKV_OK;
}

hwkv_status check_ridge_accumulate(const char* fn, const float* x, const float* y, int64_t n, int32_t p, int32_t q,
                                   const double* xtx, const double* xty, bool* skip) {
  *skip = false;
  if (p < 0 || p > 65535) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: p must be in 0..65535, got %d", fn, p);
  if (q < 1 || q > 65536) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: q must be in 1..65536, got %d", fn, q);
  if (n < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n must be >= 0, got %lld", fn, (long long)n);
  if (!xtx || !xty) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: xtx and xty must not be NULL", fn);
  if (n == 0) return *skip = true, HWKV_OK;
  if ((p > 0 && !x) || !y) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: x and y must not be NULL", fn);
  return HWKV_OK;
}

hwkv_status check_linear_apply(const char* fn, const float* x, int64_t n, int32_t p, int32_t q, const float* w,
                               const float* y, bool* skip) {
  *skip = false;
  if (p < 0 || p > 65535) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: p must be in 0..65535, got %d", fn, p);
  if (q < 1 || q > 65536) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: q must be in 1..65536, got %d", fn, q);
  if (n < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n must be >= 0, got %lld", fn, (long long)n);
  if (!w) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: w must not be NULL", fn);
  if (n == 0) return *skip = true, HWKV_OK;
  if ((p > 0 && !x) || !y) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: x and y must not be NULL", fn);
  return HWKV_OK;
}

}  // namespace quant
}  // namespace hwkv
