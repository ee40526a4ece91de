// kernels_ops.cpp — see kernels/ops.h.
//
// GCC refuses to if-convert (and so to vectorize) float selects under its default -ftrapping-math; none
// of these loops relies on floating-point exception flags, so turn it off for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "kernels/ops.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/matmul.h"
#include "kernels/matmul_impl.h"

namespace hwkv {
namespace kern {

namespace {

inline float bits_to_f(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint32_t f_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// exp(x): x = k ln2 + r (Cody-Waite, |r| <= ln2/2), exp(r) by a degree-6 polynomial, 2^k by exponent
// bits. Branch-free on the main path so loops over it vectorize.
inline float exp_f(float x) {
  const float hi = 88.72283f, lo = -103.97208f;  // exp(hi) ~ FLT_MAX, exp(lo) ~ 0 (subnormal min)
  float xc = x < lo ? lo : (x > hi ? hi : x);
  // round to nearest via the 1.5 * 2^23 trick (vectorizes, unlike nearbyint)
  const float k = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = xc - k * 0.693145751953125f;  // ln2 hi
  r = r - k * 1.428606765330187045e-06f;  // ln2 lo
  float p = 1.3888949e-3f;
  p = p * r + 8.3333509e-3f;
  p = p * r + 4.1666645e-2f;
  p = p * r + 1.6666666e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^k in two halves so k down to -150 and up to 128 stay representable.
  const int ki = static_cast<int>(k);
  const int k1 = ki / 2, k2 = ki - k1;
  const float s1 = bits_to_f(static_cast<uint32_t>(k1 + 127) << 23);
  const float s2 = bits_to_f(static_cast<uint32_t>(k2 + 127) << 23);
  float v = p * s1 * s2;
  v = x > hi ? std::numeric_limits<float>::infinity() : v;
  v = x < lo ? 0.f : v;
  return x != x ? x : v;
}

inline uint16_t f32_to_f16_bits(float f) {
  uint32_t x = f_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65536: inf
  if (x < 0x38800000u) {  // f16 subnormal or zero: round(|f| * 2^24)
    const float a = bits_to_f(x);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  const uint32_t mant = x & 0x7fffffu;
  uint32_t h = (((x >> 23) - 112u) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carries into the exponent correctly
  return static_cast<uint16_t>(sign | h);
}

}  // namespace

void rmsnorm(const float* x, const float* w, int64_t n_tok, int64_t n, float eps, float* out) {
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xr = x + t * n;
    float* o = out + t * n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float s = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
    if (w)
      for (int64_t i = 0; i < n; ++i) o[i] = xr[i] * s * w[i];
    else
      for (int64_t i = 0; i < n; ++i) o[i] = xr[i] * s;
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + exp_f(-g)) * up[i];
  }
}

void add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void scale(const float* a, float s, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * s;
}

void exp_row(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = exp_f(x[i]);
}

double softmax(float* x, int64_t n, float temperature) {
  if (n <= 0) return -std::numeric_limits<double>::infinity();
  const float it = 1.0f / temperature;
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  const float ms = m * it;
  double sum = 0.0;
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const float e = exp_f(x[i + j] * it - ms);
      x[i + j] = e;
      part[j] += e;
    }
  for (; i < n; ++i) {
    const float e = exp_f(x[i] * it - ms);
    x[i] = e;
    part[0] += e;
  }
  for (int j = 0; j < 8; ++j) sum += part[j];
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t k = 0; k < n; ++k) x[k] *= inv;
  return std::log(sum) + static_cast<double>(ms);
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = -1;
  float bv = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (v != v) continue;
    if (best < 0 || v > bv) {
      best = i;
      bv = v;
    }
  }
  return best;
}

void f16_to_f32_row(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}
void f32_to_f16_row(const float* src, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16_bits(src[i]);
}
void bf16_to_f32_row(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}
void f32_to_bf16_row(const float* src, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = f_to_bits(src[i]);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
      dst[i] = static_cast<uint16_t>((b >> 16) | 0x40u);  // quiet nan
    } else {
      dst[i] = static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
    }
  }
}

bool dequantize_row(const void* W, int32_t wtype, int64_t n, int64_t row, float* out) {
  const int64_t rb = row_bytes(wtype, n);
  if (rb == 0 || !W || !out || row < 0) return false;
  const uint8_t* p = static_cast<const uint8_t*>(W) + row * rb;
  switch (wtype) {
    case HWKV_WT_F32: std::memcpy(out, p, static_cast<size_t>(n) * 4); return true;
    case HWKV_WT_F16: f16_to_f32_row(reinterpret_cast<const uint16_t*>(p), n, out); return true;
    case HWKV_WT_BF16: bf16_to_f32_row(reinterpret_cast<const uint16_t*>(p), n, out); return true;
    case HWKV_WT_Q8_0:
      for (int64_t b = 0; b < n / kQ8Block; ++b) {
        const uint8_t* blk = p + b * kQ8BlockBytes;
        const float d = f16_to_f32(load_u16(blk));
        const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
        for (int j = 0; j < kQ8Block; ++j) out[b * kQ8Block + j] = d * static_cast<float>(q[j]);
      }
      return true;
    default: return false;
  }
}

}  // namespace kern
}  // namespace hwkv
