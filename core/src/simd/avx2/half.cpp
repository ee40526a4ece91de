// F16C half <-> float conversion (round to nearest even, like the scalar kernels).
#include "avx2_common.h"
#if defined(HWKV_AVX2_BODY)
#include "../../dispatch.h"

namespace hwkv {
namespace {

void f32_to_f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) y[i] = f32_to_f16_one(x[i]);
}

void f16_to_f32_avx2(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = f16_to_f32_one(x[i]);
}

}  // namespace

void install_avx2_half(Kernels& k) {
  k.f32_to_f16 = f32_to_f16_avx2;
  k.f16_to_f32 = f16_to_f32_avx2;
}

}  // namespace hwkv
#endif
