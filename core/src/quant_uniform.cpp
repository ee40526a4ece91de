// quant_uniform.cpp — asymmetric min/max uniform quantizer, per-token or per-channel groups (hwkv_quant.h).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "pack.h"
#include "quant_internal.h"

namespace hwkv {
namespace quant {
namespace {
inline bool f16_finite(uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }
}  // namespace

hwkv_status uniform_encode(const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint32_t* codes,
                           int64_t n_words, uint16_t* scales, uint16_t* zeros) {
  const char* fn = "uniform_encode";
  HWKV_TRY(check_uniform_call(fn, p, n_tok, n_words));
  const int32_t C = p->channels, bits = p->bits, grp = p->group;
  const int64_t n_codes = n_tok * C;
  if (n_tok == 0) return HWKV_OK;
  if (!x || !codes || !scales || !zeros)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: x, codes, scales and zeros must not be NULL", fn);
  const int64_t ns = uniform_n_scales(p, n_tok);
  std::vector<float> lo(static_cast<size_t>(ns)), hi(static_cast<size_t>(ns));
  for (int64_t i = 0; i < n_codes; ++i)
    if (!std::isfinite(x[i]))
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: x[%lld] (token %lld, channel %lld) is not finite", fn, (long long)i,
                  (long long)(i / C), (long long)(i % C));
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
  std::vector<float> Zf(static_cast<size_t>(ns)), Df(static_cast<size_t>(ns));
  std::vector<uint16_t> Zh(static_cast<size_t>(ns)), Dh(static_cast<size_t>(ns));
  for (int64_t i = 0; i < ns; ++i) {
    Zh[i] = f32_to_f16_one(lo[i]);
    Dh[i] = f32_to_f16_one((hi[i] - lo[i]) / L);
    if (!f16_finite(Zh[i]) || !f16_finite(Dh[i]) || !f16_finite(f32_to_f16_one(hi[i])))
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: group %lld spans [%g, %g], beyond the fp16 range of scale/zero", fn,
                  (long long)i, double(lo[i]), double(hi[i]));
    Zf[i] = f16_to_f32_one(Zh[i]);
    Df[i] = f16_to_f32_one(Dh[i]);
  }
  std::vector<uint16_t> q(static_cast<size_t>(n_codes));
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int32_t c = 0; c < C; ++c) {
      const int64_t s = p->axis == HWKV_UNIFORM_PER_TOKEN ? t * (C / grp) + c / grp : (t / grp) * C + c;
      const float D = Df[s];
      uint16_t code = 0;
      if (D > 0.0f) {
        float r = std::nearbyint((x[t * C + c] - Zf[s]) / D);
        r = std::min(std::max(r, 0.0f), L);
        code = static_cast<uint16_t>(r);
      }
      q[t * C + c] = code;
    }
  }
  kernels().pack_bits(q.data(), n_codes, bits, codes);
  std::memcpy(scales, Dh.data(), sizeof(uint16_t) * static_cast<size_t>(ns));
  std::memcpy(zeros, Zh.data(), sizeof(uint16_t) * static_cast<size_t>(ns));
  return HWKV_OK;
}

hwkv_status uniform_decode(const hwkv_uniform_params* p, const uint32_t* codes, int64_t n_words,
                           const uint16_t* scales, const uint16_t* zeros, int64_t n_tok, float* y, int32_t accumulate) {
  const char* fn = "uniform_decode";
  HWKV_TRY(check_uniform_call(fn, p, n_tok, n_words));
  const int32_t C = p->channels, bits = p->bits, grp = p->group;
  const int64_t n_codes = n_tok * C;
  if (n_tok == 0) return HWKV_OK;
  if (!y || !codes || !scales || !zeros)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: codes, scales, zeros and y must not be NULL", fn);
  const int64_t ns = uniform_n_scales(p, n_tok);
  std::vector<float> Zf(static_cast<size_t>(ns)), Df(static_cast<size_t>(ns));
  for (int64_t i = 0; i < ns; ++i) {
    if (!f16_finite(scales[i]) || !f16_finite(zeros[i]))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: scale/zero %lld is not a finite fp16 value", fn, (long long)i);
    Zf[i] = f16_to_f32_one(zeros[i]);
    Df[i] = f16_to_f32_one(scales[i]);
  }
  std::vector<uint16_t> q(static_cast<size_t>(n_codes));
  kernels().unpack_bits(codes, n_codes, bits, q.data());
  for (int64_t t = 0; t < n_tok; ++t) {
    float* yr = y + t * C;
    const uint16_t* qr = q.data() + t * C;
    for (int32_t c = 0; c < C; ++c) {
      const int64_t s = p->axis == HWKV_UNIFORM_PER_TOKEN ? t * (C / grp) + c / grp : (t / grp) * C + c;
      const float v = static_cast<float>(qr[c]) * Df[s] + Zf[s];
      if (accumulate)
        yr[c] += v;
      else
        yr[c] = v;
    }
  }
  return HWKV_OK;
}

}  // namespace quant
}  // namespace hwkv
