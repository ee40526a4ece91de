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
hwkv_status uniform_encode(const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint32_t* codes,
                           int64_t n_words, uint16_t* scales, uint16_t* zeros) {
  const char* fn = "uniform_encode";
  bool skip;
  HWKV_TRY(check_uniform_encode(fn, p, x, n_tok, codes, n_words, scales, zeros, &skip));
  if (skip) return HWKV_OK;
  const int32_t C = p->channels, bits = p->bits, grp = p->group;
  const int64_t n_codes = n_tok * C;
  const int64_t ns = uniform_n_scales(p, n_tok);
  const float L = static_cast<float>((1 << bits) - 1);
  std::vector<uint16_t> Zh(static_cast<size_t>(ns)), Dh(static_cast<size_t>(ns));
  HWKV_TRY(uniform_scales(fn, p, x, n_tok, Zh.data(), Dh.data()));
  std::vector<float> Zf(static_cast<size_t>(ns)), Df(static_cast<size_t>(ns));
  for (int64_t i = 0; i < ns; ++i) {
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
  bool skip;
  HWKV_TRY(check_uniform_decode(fn, p, codes, n_words, scales, zeros, n_tok, y, &skip));
  if (skip) return HWKV_OK;
  const int32_t C = p->channels, bits = p->bits, grp = p->group;
  const int64_t n_codes = n_tok * C;
  const int64_t ns = uniform_n_scales(p, n_tok);
  std::vector<float> Zf(static_cast<size_t>(ns)), Df(static_cast<size_t>(ns));
  for (int64_t i = 0; i < ns; ++i) {
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
