// AVX2 FWHT: strides 1, 2, 4 inside one register (permute + sign flip), strides >= 8 as vector butterflies.
// Every element sees exactly the additions of the scalar loop, so results are bit-identical to it.
#include "avx2_common.h"
#if defined(HWKV_AVX2_BODY)
#include "../../dispatch.h"
#include "../../fwht.h"

namespace hwkv {
namespace {

inline void small_strides(float* x, int64_t len) {  // strides 1, 2, 4 over x[0, len), len % 8 == 0
  const __m256 s1 = _mm256_castsi256_ps(_mm256_setr_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_setr_epi32(0, 0, INT32_MIN, INT32_MIN, 0, 0, INT32_MIN, INT32_MIN));
  const __m256 s4 = _mm256_castsi256_ps(_mm256_setr_epi32(0, 0, 0, 0, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN));
  for (int64_t i = 0; i < len; i += 8) {
    __m256 a = _mm256_loadu_ps(x + i);
    a = _mm256_add_ps(_mm256_permute_ps(a, 0xB1), _mm256_xor_ps(a, s1));
    a = _mm256_add_ps(_mm256_permute_ps(a, 0x4E), _mm256_xor_ps(a, s2));
    a = _mm256_add_ps(_mm256_permute2f128_ps(a, a, 0x01), _mm256_xor_ps(a, s4));
    _mm256_storeu_ps(x + i, a);
  }
}

inline void big_strides(float* x, int64_t len, int64_t h_begin, int64_t h_end) {  // h >= 8
  for (int64_t h = h_begin; h < h_end && h < len; h *= 2) {
    for (int64_t i = 0; i < len; i += 2 * h) {
      float* a = x + i;
      float* b = x + i + h;
      for (int64_t j = 0; j < h; j += 8) {
        const __m256 u = _mm256_loadu_ps(a + j), v = _mm256_loadu_ps(b + j);
        _mm256_storeu_ps(a + j, _mm256_add_ps(u, v));
        _mm256_storeu_ps(b + j, _mm256_sub_ps(u, v));
      }
    }
  }
}

void fwht_row_avx2(float* x, int64_t n, float scale) {
  if (n < 8) {
    fwht_row_scalar(x, n, scale);
    return;
  }
  const int64_t blk = n < kFwhtBlock ? n : kFwhtBlock;
  for (int64_t c = 0; c < n; c += blk) {
    small_strides(x + c, blk);
    big_strides(x + c, blk, 8, blk);
  }
  big_strides(x, n, blk, n);
  if (scale != 1.0f) {
    const __m256 s = _mm256_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
  }
}

}  // namespace

void install_avx2_fwht(Kernels& k) { k.fwht_row = fwht_row_avx2; }

}  // namespace hwkv
#endif
