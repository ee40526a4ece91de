// AVX2+FMA online-softmax tile: 4-key dot products, vectorised exp, register-blocked P·V accumulation.
#include "avx2_common.h"
#if defined(HWKV_AVX2_BODY)
#include <cmath>
#include <limits>

#include "../../dispatch.h"

namespace hwkv {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) for float lanes: Cody–Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial
// (truncation error < 1e-8 relative), scaled by 2^n through the exponent bits. x < -87.33 gives 0.
inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447505531f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);  // includes -inf
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

inline float dot_tail(const float* q, const float* k, int32_t from, int32_t d) {
  float s = 0.f;
  for (int32_t i = from; i < d; ++i) s += q[i] * k[i];
  return s;
}

void attn_tile_avx2(const float* q, const float* K, const float* V, int64_t n, int32_t d, int32_t dv, float scale, float* m,
                    float* l, float* acc, float* s) {
  const int32_t d8 = d & ~7;
  // 1. scores
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) {
    const float* k0 = K + t * d;
    const float *k1 = k0 + d, *k2 = k1 + d, *k3 = k2 + d;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int32_t i = 0; i < d8; i += 8) {
      const __m256 qv = _mm256_loadu_ps(q + i);
      a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
    }
    s[t] = scale * (hsum(a0) + dot_tail(q, k0, d8, d));
    s[t + 1] = scale * (hsum(a1) + dot_tail(q, k1, d8, d));
    s[t + 2] = scale * (hsum(a2) + dot_tail(q, k2, d8, d));
    s[t + 3] = scale * (hsum(a3) + dot_tail(q, k3, d8, d));
  }
  for (; t < n; ++t) {
    const float* k0 = K + t * d;
    __m256 a0 = _mm256_setzero_ps();
    for (int32_t i = 0; i < d8; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k0 + i), a0);
    s[t] = scale * (hsum(a0) + dot_tail(q, k0, d8, d));
  }
  // 2. running max and rescale
  float mt = -std::numeric_limits<float>::infinity();
  for (t = 0; t < n; ++t) mt = s[t] > mt ? s[t] : mt;
  const int32_t dv8 = dv & ~7;
  if (mt > *m) {
    const float alpha = std::exp(*m - mt);
    *l *= alpha;
    const __m256 av = _mm256_set1_ps(alpha);
    int32_t i = 0;
    for (; i < dv8; i += 8) _mm256_storeu_ps(acc + i, _mm256_mul_ps(_mm256_loadu_ps(acc + i), av));
    for (; i < dv; ++i) acc[i] *= alpha;
    *m = mt;
  }
  // 3. p = exp(s - m), sum
  const __m256 mv = _mm256_set1_ps(*m);
  __m256 sumv = _mm256_setzero_ps();
  for (t = 0; t + 8 <= n; t += 8) {
    const __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t), mv));
    _mm256_storeu_ps(s + t, p);
    sumv = _mm256_add_ps(sumv, p);
  }
  if (t < n) {
    alignas(32) float tmp[8];
    for (int j = 0; j < 8; ++j) tmp[j] = t + j < n ? s[t + j] - *m : -std::numeric_limits<float>::infinity();
    const __m256 p = exp256(_mm256_load_ps(tmp));
    _mm256_store_ps(tmp, p);
    sumv = _mm256_add_ps(sumv, p);
    for (int j = 0; t + j < n; ++j) s[t + j] = tmp[j];
  }
  *l += hsum(sumv);
  // 4. acc += sum_t p_t V_t, 32 columns in registers at a time
  int32_t i = 0;
  for (; i + 32 <= dv; i += 32) {
    __m256 c0 = _mm256_loadu_ps(acc + i), c1 = _mm256_loadu_ps(acc + i + 8);
    __m256 c2 = _mm256_loadu_ps(acc + i + 16), c3 = _mm256_loadu_ps(acc + i + 24);
    for (t = 0; t < n; ++t) {
      const __m256 p = _mm256_broadcast_ss(s + t);
      const float* vt = V + t * dv + i;
      c0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt), c0);
      c1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + 8), c1);
      c2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + 16), c2);
      c3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + 24), c3);
    }
    _mm256_storeu_ps(acc + i, c0);
    _mm256_storeu_ps(acc + i + 8, c1);
    _mm256_storeu_ps(acc + i + 16, c2);
    _mm256_storeu_ps(acc + i + 24, c3);
  }
  for (; i + 8 <= dv; i += 8) {
    __m256 c0 = _mm256_loadu_ps(acc + i);
    for (t = 0; t < n; ++t) c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(s + t), _mm256_loadu_ps(V + t * dv + i), c0);
    _mm256_storeu_ps(acc + i, c0);
  }
  for (; i < dv; ++i) {
    float c = acc[i];
    for (t = 0; t < n; ++t) c += s[t] * V[t * dv + i];
    acc[i] = c;
  }
}

}  // namespace

void install_avx2_attn(Kernels& k) { k.attn_tile = attn_tile_avx2; }

}  // namespace hwkv
#endif
