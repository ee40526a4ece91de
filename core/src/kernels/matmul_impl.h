// matmul_impl.h — internal contract between kernels_matmul.cpp (validation, threading, dispatch) and the
// per-ISA row kernels in simd/avx2/matmul_avx2.cpp, simd/wasm/matmul_wasm.cpp and the scalar fallback.
#ifndef HWKV_KERNELS_MATMUL_IMPL_H
#define HWKV_KERNELS_MATMUL_IMPL_H

#include <cstdint>
#include <cstring>

namespace hwkv {
namespace kern {

constexpr int64_t kQ8Block = 32;
constexpr int64_t kQ8BlockBytes = 34;

// Everything a row kernel needs for one weight matrix.
struct MMTask {
  const void* W;
  int32_t wtype;
  int32_t accumulate;
  int64_t n_in;
  const float* x;    // [n_tok, n_in]
  int64_t n_tok;
  const int8_t* xq;  // Q8_0 only: quantized activations [n_tok, n_in]
  const float* xd;   // Q8_0 only: their scales [n_tok, n_in / 32]
  float* y;          // [n_tok, ldy]
  int64_t ldy;
};

// A row kernel computes y[t, r] for r in [r0, r1) and every token t.
using RowKernel = void (*)(const MMTask& t, int64_t r0, int64_t r1);
// Quantizes n values (n % 32 == 0) into q[n] and d[n / 32]: d = max|x| / 127, q = round-to-nearest(x / d).
using QuantizeFn = void (*)(const float* x, int64_t n, int8_t* q, float* d);

namespace scalar {
void rows(const MMTask& t, int64_t r0, int64_t r1);
void quantize_q8(const float* x, int64_t n, int8_t* q, float* d);
}  // namespace scalar
#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2
namespace avx2 {
void rows(const MMTask& t, int64_t r0, int64_t r1);
void quantize_q8(const float* x, int64_t n, int8_t* q, float* d);
}  // namespace avx2
#endif
#if defined(HWKV_HAVE_WASM_SIMD) && HWKV_HAVE_WASM_SIMD
namespace wasm {
void rows(const MMTask& t, int64_t r0, int64_t r1);
void quantize_q8(const float* x, int64_t n, int8_t* q, float* d);
}  // namespace wasm
#endif

// Exact IEEE binary16 -> binary32 (normals, subnormals, inf, nan), portable.
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  uint32_t bits;
  if (em >= 0x7c00u) {
    bits = sign | 0x7f800000u | (static_cast<uint32_t>(em & 0x3ffu) << 13);  // inf / nan
  } else {
    // normals and subnormals: shift into place and rescale by 2^112 (exact in float)
    float f;
    const uint32_t b = em << 13;
    std::memcpy(&f, &b, 4);
    f *= 5.192296858534828e+33f;  // 2^112
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

inline float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

inline int64_t q8_row_bytes(int64_t n_in) { return (n_in / kQ8Block) * kQ8BlockBytes; }

inline uint16_t load_u16(const void* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace kern
}  // namespace hwkv

#endif
