// AVX2 RoPE rotation with expanded cos/sin tables (see rope.h).
#include "avx2_common.h"
#if defined(HWKV_AVX2_BODY)
#include "../../dispatch.h"
#include "../../common.h"

namespace hwkv {
namespace {

void rope_rotate_avx2(float* x, int64_t n_vec, int64_t stride, int32_t rotary_dim, int32_t style, const float* C,
                      const float* S) {
  const int32_t half = rotary_dim / 2;
  for (int64_t v = 0; v < n_vec; ++v) {
    float* y = x + v * stride;
    int32_t i = 0;
    if (style == HWKV_ROPE_NEOX) {
      for (; i + 8 <= half; i += 8) {
        const __m256 a = _mm256_loadu_ps(y + i), b = _mm256_loadu_ps(y + i + half);
        const __m256 ya = _mm256_fmadd_ps(a, _mm256_loadu_ps(C + i), _mm256_mul_ps(b, _mm256_loadu_ps(S + i)));
        const __m256 yb = _mm256_fmadd_ps(b, _mm256_loadu_ps(C + i + half), _mm256_mul_ps(a, _mm256_loadu_ps(S + i + half)));
        _mm256_storeu_ps(y + i, ya);
        _mm256_storeu_ps(y + i + half, yb);
      }
      for (; i < half; ++i) {
        const float a = y[i], b = y[i + half];
        y[i] = a * C[i] + b * S[i];
        y[i + half] = b * C[i + half] + a * S[i + half];
      }
    } else {
      for (; i + 8 <= rotary_dim; i += 8) {
        const __m256 a = _mm256_loadu_ps(y + i);
        const __m256 sw = _mm256_permute_ps(a, 0xB1);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(C + i), _mm256_mul_ps(sw, _mm256_loadu_ps(S + i))));
      }
      for (; i < rotary_dim; i += 2) {
        const float a = y[i], b = y[i + 1];
        y[i] = a * C[i] + b * S[i];
        y[i + 1] = b * C[i + 1] + a * S[i + 1];
      }
    }
  }
}

}  // namespace

void install_avx2_rope(Kernels& k) { k.rope_rotate = rope_rotate_avx2; }

}  // namespace hwkv
#endif
