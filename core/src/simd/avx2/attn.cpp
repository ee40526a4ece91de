// AVX2+FMA online-softmax tile over several queries (GQA group x rows) sharing the keys: 4 queries x 2 keys
// register-blocked scores, vectorised exp, 4 queries x 16 columns register-blocked P·V accumulation.
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

// Horizontal sums of four vectors: [sum a0, sum a1, sum a2, sum a3].
inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Scores of four queries q0..q3 (stride d) against keys [0, n): s[j*n + t] = scale * <q_j, K_t>. Two keys per
// step: each loaded key vector feeds four FMAs, each loaded query vector two.
void scores4(const float* q, const float* K, int64_t n, int32_t d, float scale, float* s) {
  const int32_t d8 = d & ~7;
  const float *q0 = q, *q1 = q + d, *q2 = q + 2 * d, *q3 = q + 3 * d;
  float *s0 = s, *s1 = s + n, *s2 = s + 2 * n, *s3 = s + 3 * n;
  const __m128 sc = _mm_set1_ps(scale);
  alignas(16) float r[4];
  int64_t t = 0;
  for (; t + 2 <= n; t += 2) {
    const float* ka = K + t * d;
    const float* kb = ka + d;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int32_t i = 0; i < d8; i += 8) {
      const __m256 va = _mm256_loadu_ps(ka + i), vb = _mm256_loadu_ps(kb + i);
      __m256 x = _mm256_loadu_ps(q0 + i);
      a0 = _mm256_fmadd_ps(x, va, a0);
      b0 = _mm256_fmadd_ps(x, vb, b0);
      x = _mm256_loadu_ps(q1 + i);
      a1 = _mm256_fmadd_ps(x, va, a1);
      b1 = _mm256_fmadd_ps(x, vb, b1);
      x = _mm256_loadu_ps(q2 + i);
      a2 = _mm256_fmadd_ps(x, va, a2);
      b2 = _mm256_fmadd_ps(x, vb, b2);
      x = _mm256_loadu_ps(q3 + i);
      a3 = _mm256_fmadd_ps(x, va, a3);
      b3 = _mm256_fmadd_ps(x, vb, b3);
    }
    __m128 ra = hsum4(a0, a1, a2, a3), rb = hsum4(b0, b1, b2, b3);
    if (d8 < d) {
      ra = _mm_add_ps(ra, _mm_setr_ps(dot_tail(q0, ka, d8, d), dot_tail(q1, ka, d8, d), dot_tail(q2, ka, d8, d),
                                      dot_tail(q3, ka, d8, d)));
      rb = _mm_add_ps(rb, _mm_setr_ps(dot_tail(q0, kb, d8, d), dot_tail(q1, kb, d8, d), dot_tail(q2, kb, d8, d),
                                      dot_tail(q3, kb, d8, d)));
    }
    _mm_store_ps(r, _mm_mul_ps(ra, sc));
    s0[t] = r[0], s1[t] = r[1], s2[t] = r[2], s3[t] = r[3];
    _mm_store_ps(r, _mm_mul_ps(rb, sc));
    s0[t + 1] = r[0], s1[t + 1] = r[1], s2[t + 1] = r[2], s3[t + 1] = r[3];
  }
  for (; t < n; ++t) {
    const float* ka = K + t * d;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int32_t i = 0; i < d8; i += 8) {
      const __m256 va = _mm256_loadu_ps(ka + i);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i), va, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i), va, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i), va, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q3 + i), va, a3);
    }
    __m128 ra = hsum4(a0, a1, a2, a3);
    if (d8 < d)
      ra = _mm_add_ps(ra, _mm_setr_ps(dot_tail(q0, ka, d8, d), dot_tail(q1, ka, d8, d), dot_tail(q2, ka, d8, d),
                                      dot_tail(q3, ka, d8, d)));
    _mm_store_ps(r, _mm_mul_ps(ra, sc));
    s0[t] = r[0], s1[t] = r[1], s2[t] = r[2], s3[t] = r[3];
  }
}

// Horizontal sum in exactly the order of one lane of hsum4: ((x0+x1)+(x2+x3)) + ((x4+x5)+(x6+x7)), so a query's
// scores do not depend on whether it went through scores4 or scores1 (i.e. on the other queries of the call).
inline float hsum_as4(__m256 a) {
  __m256 h = _mm256_hadd_ps(a, a);
  h = _mm256_hadd_ps(h, h);
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

// Scores of one query: four keys per step.
void scores1(const float* q, const float* K, int64_t n, int32_t d, float scale, float* s) {
  const int32_t d8 = d & ~7;
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
    s[t] = scale * (hsum_as4(a0) + dot_tail(q, k0, d8, d));
    s[t + 1] = scale * (hsum_as4(a1) + dot_tail(q, k1, d8, d));
    s[t + 2] = scale * (hsum_as4(a2) + dot_tail(q, k2, d8, d));
    s[t + 3] = scale * (hsum_as4(a3) + dot_tail(q, k3, d8, d));
  }
  for (; t < n; ++t) {
    const float* k0 = K + t * d;
    __m256 a0 = _mm256_setzero_ps();
    for (int32_t i = 0; i < d8; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k0 + i), a0);
    s[t] = scale * (hsum_as4(a0) + dot_tail(q, k0, d8, d));
  }
}

// Online-softmax update of one query from its scores s[0, n): rescale acc if the max grew, s <- exp(s - m),
// l += sum. acc is updated by the P.V step afterwards.
void softmax_step(float* s, int64_t n, int32_t dv, float* m, float* l, float* acc) {
  float mt = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n; ++t) mt = s[t] > mt ? s[t] : mt;
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
  const __m256 mv = _mm256_set1_ps(*m);
  __m256 sumv = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
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
}

// acc_j += sum_t p_j[t] V_t for four queries (p stride n, acc stride dv): each loaded V vector feeds four FMAs.
void pv4(const float* p, const float* V, int64_t n, int32_t dv, float* acc) {
  const float *p0 = p, *p1 = p + n, *p2 = p + 2 * n, *p3 = p + 3 * n;
  float *c0 = acc, *c1 = acc + dv, *c2 = acc + 2 * dv, *c3 = acc + 3 * dv;
  int32_t i = 0;
  for (; i + 16 <= dv; i += 16) {
    __m256 x0 = _mm256_loadu_ps(c0 + i), y0 = _mm256_loadu_ps(c0 + i + 8);
    __m256 x1 = _mm256_loadu_ps(c1 + i), y1 = _mm256_loadu_ps(c1 + i + 8);
    __m256 x2 = _mm256_loadu_ps(c2 + i), y2 = _mm256_loadu_ps(c2 + i + 8);
    __m256 x3 = _mm256_loadu_ps(c3 + i), y3 = _mm256_loadu_ps(c3 + i + 8);
    for (int64_t t = 0; t < n; ++t) {
      const float* vt = V + t * dv + i;
      const __m256 va = _mm256_loadu_ps(vt), vb = _mm256_loadu_ps(vt + 8);
      __m256 w = _mm256_broadcast_ss(p0 + t);
      x0 = _mm256_fmadd_ps(w, va, x0);
      y0 = _mm256_fmadd_ps(w, vb, y0);
      w = _mm256_broadcast_ss(p1 + t);
      x1 = _mm256_fmadd_ps(w, va, x1);
      y1 = _mm256_fmadd_ps(w, vb, y1);
      w = _mm256_broadcast_ss(p2 + t);
      x2 = _mm256_fmadd_ps(w, va, x2);
      y2 = _mm256_fmadd_ps(w, vb, y2);
      w = _mm256_broadcast_ss(p3 + t);
      x3 = _mm256_fmadd_ps(w, va, x3);
      y3 = _mm256_fmadd_ps(w, vb, y3);
    }
    _mm256_storeu_ps(c0 + i, x0), _mm256_storeu_ps(c0 + i + 8, y0);
    _mm256_storeu_ps(c1 + i, x1), _mm256_storeu_ps(c1 + i + 8, y1);
    _mm256_storeu_ps(c2 + i, x2), _mm256_storeu_ps(c2 + i + 8, y2);
    _mm256_storeu_ps(c3 + i, x3), _mm256_storeu_ps(c3 + i + 8, y3);
  }
  for (; i + 8 <= dv; i += 8) {
    __m256 x0 = _mm256_loadu_ps(c0 + i), x1 = _mm256_loadu_ps(c1 + i);
    __m256 x2 = _mm256_loadu_ps(c2 + i), x3 = _mm256_loadu_ps(c3 + i);
    for (int64_t t = 0; t < n; ++t) {
      const __m256 va = _mm256_loadu_ps(V + t * dv + i);
      x0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p0 + t), va, x0);
      x1 = _mm256_fmadd_ps(_mm256_broadcast_ss(p1 + t), va, x1);
      x2 = _mm256_fmadd_ps(_mm256_broadcast_ss(p2 + t), va, x2);
      x3 = _mm256_fmadd_ps(_mm256_broadcast_ss(p3 + t), va, x3);
    }
    _mm256_storeu_ps(c0 + i, x0), _mm256_storeu_ps(c1 + i, x1);
    _mm256_storeu_ps(c2 + i, x2), _mm256_storeu_ps(c3 + i, x3);
  }
  for (; i < dv; ++i) {
    float x0 = c0[i], x1 = c1[i], x2 = c2[i], x3 = c3[i];
    for (int64_t t = 0; t < n; ++t) {  // fused like the vector columns and like pv1's tail
      const float v = V[t * dv + i];
      x0 = std::fma(p0[t], v, x0), x1 = std::fma(p1[t], v, x1), x2 = std::fma(p2[t], v, x2), x3 = std::fma(p3[t], v, x3);
    }
    c0[i] = x0, c1[i] = x1, c2[i] = x2, c3[i] = x3;
  }
}

// acc += sum_t p[t] V_t for one query, 32 columns in registers at a time.
void pv1(const float* s, const float* V, int64_t n, int32_t dv, float* acc) {
  int32_t i = 0;
  int64_t t;
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
    for (t = 0; t < n; ++t) c = std::fma(s[t], V[t * dv + i], c);
    acc[i] = c;
  }
}

// nq queries against the same n keys: scores (4 queries per K pass), softmax per query, P.V (4 queries per V pass).
// Every query's result is bitwise independent of the other queries of the call (same operation order on both
// the 4-query and the 1-query paths): outputs do not change when workers are permuted.
void attn_tile_avx2(const float* q, int64_t nq, const float* K, const float* V, int64_t n, int32_t d, int32_t dv,
                    float scale, float* m, float* l, float* acc, float* s) {
  int64_t j = 0;
  for (; j + 4 <= nq; j += 4) scores4(q + j * d, K, n, d, scale, s + j * n);
  for (; j < nq; ++j) scores1(q + j * d, K, n, d, scale, s + j * n);
  for (j = 0; j < nq; ++j) softmax_step(s + j * n, n, dv, m + j, l + j, acc + j * dv);
  for (j = 0; j + 4 <= nq; j += 4) pv4(s + j * n, V, n, dv, acc + j * dv);
  for (; j < nq; ++j) pv1(s + j * n, V, n, dv, acc + j * dv);
}

}  // namespace

void install_avx2_attn(Kernels& k) { k.attn_tile = attn_tile_avx2; }

}  // namespace hwkv
#endif
