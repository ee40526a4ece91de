// AVX2+FMA online-softmax tile over several queries (GQA group x rows) sharing the keys: 3 queries x 4 keys
// register-blocked scores, vectorised exp, 3 queries x 32 columns register-blocked P·V accumulation.
#include "avx2_common.h"
#if defined(HWKV_AVX2_BODY)
#include <algorithm>
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

// [sum a0, sum a1, sum a2, sum a3]: lane k is ((x0+x1)+(x2+x3)) + ((x4+x5)+(x6+x7)) of a_k, whatever the others.
inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Prefetches of one byte range spread over `steps` calls of step(): per call, the next ceil(lines / steps) cache
// lines (into L2: the range is the next page, used after this one).
struct Spread {
  const char* p = nullptr;
  int64_t left = 0, per = 0;
  Spread() = default;
  Spread(const char* ptr, int64_t bytes, int64_t steps) : p(ptr), left((bytes + 63) / 64) {
    per = steps > 0 ? (left + steps - 1) / steps : left;
  }
  inline void step() {
    for (int64_t i = 0; i < per && left > 0; ++i, --left, p += 64) _mm_prefetch(p, _MM_HINT_T1);
  }
};

// Scores of R queries q[R, d] against keys [0, n): s[r*n + t] = scale * <q_r, K_t>, a small GEMM blocked as
// R queries x 4 keys (R = 3: 12 accumulators; each loaded key vector feeds R FMAs, each query vector 4). D8 > 0
// fixes d / 8 at compile time (fully unrolled, accumulators stay in registers); D8 = 0 is the generic loop.
// Every score is the same 8-lane accumulation along d and the same reduction tree (a hsum4 lane) whatever R and
// D8 are and wherever the key falls in its 4-key block (the last block repeats key n-1 in its unused slots), so
// a query's scores never depend on the other queries of the call.
template <int R, int D8>
void scores_rows(const float* q, int32_t d, const float* K, int64_t n, float scale, float* s, Spread* pf) {
  const int32_t d8 = D8 > 0 ? D8 * 8 : (d & ~7);
  const __m128 sc = _mm_set1_ps(scale);
  for (int64_t t = 0; t < n; t += 4) {
    if (pf) pf->step();
    const float* k[4];
    for (int c = 0; c < 4; ++c) k[c] = K + std::min<int64_t>(t + c, n - 1) * d;
    __m256 a[R][4];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < 4; ++c) a[r][c] = _mm256_setzero_ps();
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 16
#endif
    for (int32_t i = 0; i < d8; i += 8) {
      __m256 x[R];
      for (int r = 0; r < R; ++r) x[r] = _mm256_loadu_ps(q + r * d + i);
      for (int c = 0; c < 4; ++c) {
        const __m256 kv = _mm256_loadu_ps(k[c] + i);
        for (int r = 0; r < R; ++r) a[r][c] = _mm256_fmadd_ps(x[r], kv, a[r][c]);
      }
    }
    __m128 v[R];
    for (int r = 0; r < R; ++r) v[r] = hsum4(a[r][0], a[r][1], a[r][2], a[r][3]);
    if (D8 == 0 && d8 < d) {
      for (int r = 0; r < R; ++r) {
        const float* qr = q + r * d;
        v[r] = _mm_add_ps(v[r], _mm_setr_ps(dot_tail(qr, k[0], d8, d), dot_tail(qr, k[1], d8, d), dot_tail(qr, k[2], d8, d),
                                            dot_tail(qr, k[3], d8, d)));
      }
    }
    if (t + 4 <= n) {
      for (int r = 0; r < R; ++r) _mm_storeu_ps(s + r * n + t, _mm_mul_ps(v[r], sc));
    } else {
      for (int r = 0; r < R; ++r) {
        alignas(16) float tmp[4];
        _mm_store_ps(tmp, _mm_mul_ps(v[r], sc));
        for (int64_t c = 0; c < n - t; ++c) s[r * n + t + c] = tmp[c];
      }
    }
  }
}

template <int R>
void scores_any(const float* q, int32_t d, const float* K, int64_t n, float scale, float* s, Spread* pf) {
  switch (d) {
    case 64: scores_rows<R, 8>(q, d, K, n, scale, s, pf); break;
    case 128: scores_rows<R, 16>(q, d, K, n, scale, s, pf); break;
    default: scores_rows<R, 0>(q, d, K, n, scale, s, pf); break;
  }
}

// Online-softmax update of one query from its scores s[0, n): rescale acc if the max grew, s <- exp(s - m),
// l += sum. acc is updated by the P.V step afterwards.
void softmax_step(float* s, int64_t n, int32_t dv, float* m, float* l, float* acc) {
  const float ninf = -std::numeric_limits<float>::infinity();
  __m256 mv8 = _mm256_set1_ps(ninf);
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) mv8 = _mm256_max_ps(mv8, _mm256_loadu_ps(s + t));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv8), _mm256_extractf128_ps(mv8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  float mt = _mm_cvtss_f32(m4);
  for (; t < n; ++t) mt = s[t] > mt ? s[t] : mt;
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
  t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t), mv));
    _mm256_storeu_ps(s + t, p);
    sumv = _mm256_add_ps(sumv, p);
  }
  if (t < n) {
    alignas(32) float tmp[8];
    for (int j = 0; j < 8; ++j) tmp[j] = t + j < n ? s[t + j] - *m : ninf;
    const __m256 p = exp256(_mm256_load_ps(tmp));
    _mm256_store_ps(tmp, p);
    sumv = _mm256_add_ps(sumv, p);
    for (int j = 0; t + j < n; ++j) s[t + j] = tmp[j];
  }
  *l += hsum(sumv);
}

// acc[r*dv + c] += sum_t p[r*n + t] V[t*dv + c] for R queries: R queries x 32 columns in registers (R = 3: 12
// accumulators), each loaded V vector feeding R FMAs. Every output element is the same sequence of fused
// multiply-adds over t whatever R is (the scalar column tail uses std::fma too).
template <int R>
void pv_rows(const float* p, const float* V, int64_t n, int32_t dv, float* acc, Spread* pf) {
  if (pf && dv < 32)
    for (int64_t t = 0; t < n; ++t) pf->step();
  int32_t i = 0;
  for (; i + 32 <= dv; i += 32) {
    __m256 x[R][4];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < 4; ++c) x[r][c] = _mm256_loadu_ps(acc + r * dv + i + 8 * c);
    for (int64_t t = 0; t < n; ++t) {
      if (pf && i == 0) pf->step();
      const float* vt = V + t * dv + i;
      __m256 w[R];
      for (int r = 0; r < R; ++r) w[r] = _mm256_broadcast_ss(p + r * n + t);
      for (int c = 0; c < 4; ++c) {
        const __m256 v = _mm256_loadu_ps(vt + 8 * c);
        for (int r = 0; r < R; ++r) x[r][c] = _mm256_fmadd_ps(w[r], v, x[r][c]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < 4; ++c) _mm256_storeu_ps(acc + r * dv + i + 8 * c, x[r][c]);
  }
  for (; i + 8 <= dv; i += 8) {
    __m256 x[R];
    for (int r = 0; r < R; ++r) x[r] = _mm256_loadu_ps(acc + r * dv + i);
    for (int64_t t = 0; t < n; ++t) {
      const __m256 v = _mm256_loadu_ps(V + t * dv + i);
      for (int r = 0; r < R; ++r) x[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + r * n + t), v, x[r]);
    }
    for (int r = 0; r < R; ++r) _mm256_storeu_ps(acc + r * dv + i, x[r]);
  }
  for (; i < dv; ++i) {
    for (int r = 0; r < R; ++r) {
      float x = acc[r * dv + i];
      for (int64_t t = 0; t < n; ++t) x = std::fma(p[r * n + t], V[t * dv + i], x);
      acc[r * dv + i] = x;
    }
  }
}

// nq queries against the same n keys: scores (3 queries x 4 keys register blocks: a GQA group of 3, or the
// groups of several rows), softmax per query, P.V (3 queries x 32 columns). Leftover queries (nq % 3) take the
// 2- or 1-query instances of the same code, which compute every query exactly as the 3-query one does: each
// query's result is bitwise independent of the other queries of the call (outputs do not change when workers
// are permuted).
void attn_tile_avx2(const float* q, int64_t nq, const float* K, const float* V, int64_t n, int32_t d, int32_t dv,
                    float scale, float* m, float* l, float* acc, float* s, const AttnPrefetch* pf) {
  // The next page's K streams in during the scores, its V during the P.V, spread over every row group.
  Spread pk, pv;
  Spread* fk = nullptr;
  Spread* fv = nullptr;
  if (pf) {
    const int64_t groups = (nq + 2) / 3;
    pk = Spread(pf->k, pf->k_bytes, groups * ((n + 3) / 4));
    pv = Spread(pf->v, pf->v_bytes, groups * n);
    fk = &pk, fv = &pv;
  }
  int64_t j = 0;
  for (; j + 3 <= nq; j += 3) scores_any<3>(q + j * d, d, K, n, scale, s + j * n, fk);
  if (nq - j == 2) scores_any<2>(q + j * d, d, K, n, scale, s + j * n, fk);
  if (nq - j == 1) scores_any<1>(q + j * d, d, K, n, scale, s + j * n, fk);
  for (j = 0; j < nq; ++j) softmax_step(s + j * n, n, dv, m + j, l + j, acc + j * dv);
  for (j = 0; j + 3 <= nq; j += 3) pv_rows<3>(s + j * n, V, n, dv, acc + j * dv, fv);
  if (nq - j == 2) pv_rows<2>(s + j * n, V, n, dv, acc + j * dv, fv);
  if (nq - j == 1) pv_rows<1>(s + j * n, V, n, dv, acc + j * dv, fv);
}

}  // namespace

void install_avx2_attn(Kernels& k) { k.attn_tile = attn_tile_avx2; }

}  // namespace hwkv
#endif
