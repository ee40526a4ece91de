// WASM SIMD128 online-softmax tile over several queries (GQA group x rows) sharing the keys: 3 queries x 2 keys
// register-blocked scores, vectorised exp, 3 queries x 8 columns register-blocked P·V accumulation.
#include "wasm_common.h"
#if defined(HWKV_WASM_BODY)
#include <algorithm>
#include <cmath>
#include <limits>

#include "../../dispatch.h"

namespace hwkv {
namespace {

inline v128_t madd(v128_t a, v128_t b, v128_t c) { return wasm_f32x4_add(wasm_f32x4_mul(a, b), c); }

// Horizontal sums of four vectors: [sum a0, sum a1, sum a2, sum a3] (a 4x4 transpose, then adds).
inline v128_t hsum4(v128_t a0, v128_t a1, v128_t a2, v128_t a3) {
  const v128_t t0 = wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7);
  const v128_t t2 = wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7);
  const v128_t u = wasm_f32x4_add(t0, t1), w = wasm_f32x4_add(t2, t3);  // u = [a0 02, a1 02, a0 13, a1 13]
  return wasm_f32x4_add(wasm_i32x4_shuffle(u, w, 0, 1, 4, 5), wasm_i32x4_shuffle(u, w, 2, 3, 6, 7));
}

inline float dot_tail(const float* q, const float* k, int32_t from, int32_t d) {
  float s = 0.f;
  for (int32_t i = from; i < d; ++i) s += q[i] * k[i];
  return s;
}

// (x0+x2)+(x1+x3): a plain horizontal sum.
inline float hsum_as4(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 2)) +
         (wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 3));
}

// exp(x) on four lanes: Cody–Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial (truncation
// error < 1e-8 relative), scaled by 2^n through the exponent bits. x < -87.33 (and -inf) gives 0.
inline v128_t exp4(v128_t x) {
  const v128_t lo = wasm_f32x4_splat(-87.3365447505531f);
  const v128_t under = wasm_f32x4_lt(x, lo);
  x = wasm_f32x4_min(wasm_f32x4_max(x, lo), wasm_f32x4_splat(88.3762626647949f));
  const v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.0f / 5040);
  p = madd(p, r, wasm_f32x4_splat(1.0f / 720));
  p = madd(p, r, wasm_f32x4_splat(1.0f / 120));
  p = madd(p, r, wasm_f32x4_splat(1.0f / 24));
  p = madd(p, r, wasm_f32x4_splat(1.0f / 6));
  p = madd(p, r, wasm_f32x4_splat(0.5f));
  p = madd(p, r, wasm_f32x4_splat(1.0f));
  p = madd(p, r, wasm_f32x4_splat(1.0f));
  const v128_t e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_v128_andnot(wasm_f32x4_mul(p, e), under);
}

// WASM has no prefetch instruction: the next page is brought in by touching one byte per 64-byte line of a range,
// the touches spread over `steps` calls of step() (ceil(lines / steps) per call) so that the misses overlap the
// arithmetic. The bytes are folded into `sink` so the loads are kept.
struct Spread {
  const unsigned char* p = nullptr;
  int64_t left = 0, per = 0;
  unsigned sink = 0;
  Spread() = default;
  Spread(const char* ptr, int64_t bytes, int64_t steps)
      : p(reinterpret_cast<const unsigned char*>(ptr)), left((bytes + 63) / 64) {
    per = steps > 0 ? (left + steps - 1) / steps : left;
  }
  inline void step() {
    for (int64_t i = 0; i < per && left > 0; ++i, --left, p += 64) sink += *p;
  }
};
volatile unsigned g_touch_sink;

// Scores of R queries q[R, d] against keys [0, n): s[r*n + t] = scale * <q_r, K_t>, blocked as R queries x KB
// keys (R = 3, KB = 2: 6 accumulators, which with the 3 query vectors and a key vector stay within the 16 vector
// registers of a 64-bit host; each loaded key vector feeds R multiply-adds, each query vector KB). D4 > 0 fixes
// d / 4 at compile time (unrolled); D4 = 0 is the generic loop. Every score is the same 4-lane accumulation along
// d and the same reduction (a hsum4 lane) whatever R and D4 are and wherever the key falls in its block (the last
// block repeats key n-1 in its unused slots): a query's scores never depend on the other queries of the call.
constexpr int kKB = 2;
template <int R, int D4>
void scores_rows(const float* q, int32_t d, const float* K, int64_t n, float scale, float* s, Spread* pf) {
  const int32_t d4 = D4 > 0 ? D4 * 4 : (d & ~3);
  const v128_t sc = wasm_f32x4_splat(scale);
  for (int64_t t = 0; t < n; t += kKB) {
    if (pf) pf->step();
    const float* k[kKB];
    for (int c = 0; c < kKB; ++c) k[c] = K + (t + c < n ? t + c : n - 1) * d;
    v128_t a[R][kKB];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < kKB; ++c) a[r][c] = wasm_f32x4_splat(0.f);
    auto step = [&](int32_t i) {
      v128_t x[R];
      for (int r = 0; r < R; ++r) x[r] = wasm_v128_load(q + r * d + i);
      for (int c = 0; c < kKB; ++c) {
        const v128_t kv = wasm_v128_load(k[c] + i);
        for (int r = 0; r < R; ++r) a[r][c] = madd(x[r], kv, a[r][c]);
      }
    };
    if (D4 > 0) {
#pragma clang loop unroll(full)
      for (int32_t i = 0; i < D4 * 4; i += 4) step(i);
    } else {
      for (int32_t i = 0; i < d4; i += 4) step(i);
    }
    for (int r = 0; r < R; ++r) {
      v128_t v = hsum4(a[r][0], a[r][1 % kKB], a[r][2 % kKB], a[r][3 % kKB]);  // lanes 0 .. kKB-1 are the keys
      if (D4 == 0 && d4 < d) {
        const float* qr = q + r * d;
        alignas(16) float tl[4] = {0.f, 0.f, 0.f, 0.f};
        for (int c = 0; c < kKB; ++c) tl[c] = dot_tail(qr, k[c], d4, d);
        v = wasm_f32x4_add(v, wasm_v128_load(tl));
      }
      v = wasm_f32x4_mul(v, sc);
      alignas(16) float tmp[4];
      wasm_v128_store(tmp, v);
      float* dst = s + r * n + t;
      for (int64_t c = 0; c < kKB && t + c < n; ++c) dst[c] = tmp[c];
    }
  }
}

template <int R>
void scores_any(const float* q, int32_t d, const float* K, int64_t n, float scale, float* s, Spread* pf) {
  switch (d) {
    case 64: scores_rows<R, 16>(q, d, K, n, scale, s, pf); break;
    case 128: scores_rows<R, 32>(q, d, K, n, scale, s, pf); break;
    default: scores_rows<R, 0>(q, d, K, n, scale, s, pf); break;
  }
}

// Online-softmax update of one query from its scores s[0, n): rescale acc if the max grew, s <- exp(s - m),
// l += sum (four lanes, then (l0+l2)+(l1+l3)).
void softmax_step(float* s, int64_t n, int32_t dv, float* m, float* l, float* acc) {
  const float ninf = -std::numeric_limits<float>::infinity();
  v128_t mv4 = wasm_f32x4_splat(ninf);
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) mv4 = wasm_f32x4_max(mv4, wasm_v128_load(s + t));
  float mt = std::max(std::max(wasm_f32x4_extract_lane(mv4, 0), wasm_f32x4_extract_lane(mv4, 1)),
                      std::max(wasm_f32x4_extract_lane(mv4, 2), wasm_f32x4_extract_lane(mv4, 3)));
  for (; t < n; ++t) mt = s[t] > mt ? s[t] : mt;
  const int32_t dv4 = dv & ~3;
  if (mt > *m) {
    const float alpha = std::exp(*m - mt);
    *l *= alpha;
    const v128_t av = wasm_f32x4_splat(alpha);
    int32_t i = 0;
    for (; i < dv4; i += 4) wasm_v128_store(acc + i, wasm_f32x4_mul(wasm_v128_load(acc + i), av));
    for (; i < dv; ++i) acc[i] *= alpha;
    *m = mt;
  }
  const v128_t mv = wasm_f32x4_splat(*m);
  v128_t sumv = wasm_f32x4_splat(0.f);
  t = 0;
  for (; t + 4 <= n; t += 4) {
    const v128_t p = exp4(wasm_f32x4_sub(wasm_v128_load(s + t), mv));
    wasm_v128_store(s + t, p);
    sumv = wasm_f32x4_add(sumv, p);
  }
  if (t < n) {
    alignas(16) float tmp[4];
    for (int j = 0; j < 4; ++j) tmp[j] = t + j < n ? s[t + j] - *m : ninf;
    const v128_t p = exp4(wasm_v128_load(tmp));
    wasm_v128_store(tmp, p);
    sumv = wasm_f32x4_add(sumv, p);
    for (int j = 0; t + j < n; ++j) s[t + j] = tmp[j];
  }
  *l += hsum_as4(sumv);
}

// acc[r*dv + c] += sum_t p[r*n + t] V[t*dv + c] for R queries: R queries x 8 columns in registers (R = 3: 6
// accumulators + 3 broadcast weights + 2 V vectors, within 16 vector registers), each loaded V vector feeding R
// multiply-adds. Every output element is the same sequence of multiply-then-add steps over t whatever R is
// (the scalar column tail included).
template <int R>
void pv_rows(const float* p, const float* V, int64_t n, int32_t dv, float* acc, Spread* pf) {
  if (pf && dv < 8)
    for (int64_t t = 0; t < n; ++t) pf->step();
  int32_t i = 0;
  for (; i + 8 <= dv; i += 8) {
    v128_t x[R][2];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < 2; ++c) x[r][c] = wasm_v128_load(acc + r * dv + i + 4 * c);
    for (int64_t t = 0; t < n; ++t) {
      if (pf && i == 0) pf->step();
      const float* vt = V + t * dv + i;
      v128_t w[R];
      for (int r = 0; r < R; ++r) w[r] = wasm_f32x4_splat(p[r * n + t]);
      for (int c = 0; c < 2; ++c) {
        const v128_t v = wasm_v128_load(vt + 4 * c);
        for (int r = 0; r < R; ++r) x[r][c] = madd(w[r], v, x[r][c]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < 2; ++c) wasm_v128_store(acc + r * dv + i + 4 * c, x[r][c]);
  }
  for (; i + 4 <= dv; i += 4) {
    v128_t x[R];
    for (int r = 0; r < R; ++r) x[r] = wasm_v128_load(acc + r * dv + i);
    for (int64_t t = 0; t < n; ++t) {
      const v128_t v = wasm_v128_load(V + t * dv + i);
      for (int r = 0; r < R; ++r) x[r] = madd(wasm_f32x4_splat(p[r * n + t]), v, x[r]);
    }
    for (int r = 0; r < R; ++r) wasm_v128_store(acc + r * dv + i, x[r]);
  }
  for (; i < dv; ++i) {
    for (int r = 0; r < R; ++r) {
      float x = acc[r * dv + i];
      for (int64_t t = 0; t < n; ++t) x += p[r * n + t] * V[t * dv + i];
      acc[r * dv + i] = x;
    }
  }
}

// nq queries against the same n keys: scores (3 queries x 2 keys register blocks: a GQA group of 3, or the groups
// of several rows), softmax per query (vectorised exp), P.V (3 queries x 8 columns). Leftover queries (nq % 3)
// take the 2- or 1-query instances of the same code, which compute every query exactly as the 3-query one does:
// each query's result is bitwise independent of the other queries of the call.
void attn_tile_wasm(const float* q, int64_t nq, const float* K, const float* V, int64_t n, int32_t d, int32_t dv,
                    float scale, float* m, float* l, float* acc, float* s, const AttnPrefetch* pf) {
  // The next page's K is touched during the first row group's scores, its V during the first group's P.V.
  Spread pk, pv;
  if (pf) {
    pk = Spread(pf->k, pf->k_bytes, (n + kKB - 1) / kKB);
    pv = Spread(pf->v, pf->v_bytes, n);
  }
  int64_t j = 0;
  for (; j + 3 <= nq; j += 3) scores_any<3>(q + j * d, d, K, n, scale, s + j * n, j == 0 ? &pk : nullptr);
  if (nq - j == 2) scores_any<2>(q + j * d, d, K, n, scale, s + j * n, j == 0 ? &pk : nullptr);
  if (nq - j == 1) scores_any<1>(q + j * d, d, K, n, scale, s + j * n, j == 0 ? &pk : nullptr);
  for (j = 0; j < nq; ++j) softmax_step(s + j * n, n, dv, m + j, l + j, acc + j * dv);
  for (j = 0; j + 3 <= nq; j += 3) pv_rows<3>(s + j * n, V, n, dv, acc + j * dv, j == 0 ? &pv : nullptr);
  if (nq - j == 2) pv_rows<2>(s + j * n, V, n, dv, acc + j * dv, j == 0 ? &pv : nullptr);
  if (nq - j == 1) pv_rows<1>(s + j * n, V, n, dv, acc + j * dv, j == 0 ? &pv : nullptr);
  if (pf) g_touch_sink = pk.sink + pv.sink;
}

}  // namespace

void install_wasm_attn(Kernels& k) { k.attn_tile = attn_tile_wasm; }

}  // namespace hwkv
#endif
