// half.cpp — IEEE binary16 <-> binary32 conversion, round to nearest even (scalar kernels).
#include <cstring>

#include "dispatch.h"

namespace hwkv {

uint16_t f32_to_f16_one(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {                                   // inf or nan
    if (ax == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));  // quiet nan, keep payload top bits
  }
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520 -> inf
  if (ax >= 0x38800000u) {                                   // normal half (|x| >= 2^-14)
    const uint32_t mant = ax & 0x7fffffu;
    const uint32_t exp = (ax >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // carry may bump the exponent: still correct
    return static_cast<uint16_t>(sign | h);
  }
  if (ax < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to zero (2^-25 itself ties to 0)
  // subnormal half: value = m * 2^-24, m = round(|x| * 2^24)
  const uint32_t e = ax >> 23;                               // biased float exponent, 102..112
  const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;        // 24-bit significand, value = mant * 2^(e-150)
  const uint32_t shift = 126 - e;                            // 2^(e-150)/2^-24 = 2^(e-126): shift right by 126-e
  uint32_t h = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float f16_to_f32_one(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  } else if (mant == 0) {
    x = sign;
  } else {  // subnormal: normalise
    uint32_t m = mant;
    int32_t e = -14;
    while (!(m & 0x400u)) {
      m <<= 1;
      --e;
    }
    x = sign | (uint32_t(e + 127) << 23) | ((m & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

void f32_to_f16_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16_one(x[i]);
}

void f16_to_f32_scalar(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32_one(x[i]);
}

}  // namespace hwkv
