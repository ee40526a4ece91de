// WASM SIMD128 online-softmax tile over several queries (GQA group x rows) sharing the keys: 4 queries x 2 keys
// register-blocked scores, 4 queries x 8 columns register-blocked P·V accumulation (exp stays scalar).
#include "wasm_common.h"
#if defined(HWKV_WASM_BODY)
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

// Scores of four queries (stride d) against keys [0, n), two keys per step.
void scores4(const float* q, const float* K, int64_t n, int32_t d, float scale, float* s) {
  const int32_t d4 = d & ~3;
  const float *q0 = q, *q1 = q + d, *q2 = q + 2 * d, *q3 = q + 3 * d;
  float *s0 = s, *s1 = s + n, *s2 = s + 2 * n, *s3 = s + 3 * n;
  const v128_t sc = wasm_f32x4_splat(scale);
  int64_t t = 0;
  for (; t + 2 <= n; t += 2) {
    const float* ka = K + t * d;
    const float* kb = ka + d;
    v128_t a0 = wasm_f32x4_splat(0.f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int32_t i = 0; i < d4; i += 4) {
      const v128_t va = wasm_v128_load(ka + i), vb = wasm_v128_load(kb + i);
      v128_t x = wasm_v128_load(q0 + i);
      a0 = madd(x, va, a0);
      b0 = madd(x, vb, b0);
      x = wasm_v128_load(q1 + i);
      a1 = madd(x, va, a1);
      b1 = madd(x, vb, b1);
      x = wasm_v128_load(q2 + i);
      a2 = madd(x, va, a2);
      b2 = madd(x, vb, b2);
      x = wasm_v128_load(q3 + i);
      a3 = madd(x, va, a3);
      b3 = madd(x, vb, b3);
    }
    v128_t ra = hsum4(a0, a1, a2, a3), rb = hsum4(b0, b1, b2, b3);
    if (d4 < d) {
      ra = wasm_f32x4_add(ra, wasm_f32x4_make(dot_tail(q0, ka, d4, d), dot_tail(q1, ka, d4, d), dot_tail(q2, ka, d4, d),
                                              dot_tail(q3, ka, d4, d)));
      rb = wasm_f32x4_add(rb, wasm_f32x4_make(dot_tail(q0, kb, d4, d), dot_tail(q1, kb, d4, d), dot_tail(q2, kb, d4, d),
                                              dot_tail(q3, kb, d4, d)));
    }
    ra = wasm_f32x4_mul(ra, sc);
    rb = wasm_f32x4_mul(rb, sc);
    s0[t] = wasm_f32x4_extract_lane(ra, 0), s1[t] = wasm_f32x4_extract_lane(ra, 1);
    s2[t] = wasm_f32x4_extract_lane(ra, 2), s3[t] = wasm_f32x4_extract_lane(ra, 3);
    s0[t + 1] = wasm_f32x4_extract_lane(rb, 0), s1[t + 1] = wasm_f32x4_extract_lane(rb, 1);
    s2[t + 1] = wasm_f32x4_extract_lane(rb, 2), s3[t + 1] = wasm_f32x4_extract_lane(rb, 3);
  }
  for (; t < n; ++t) {
    const float* ka = K + t * d;
    v128_t a0 = wasm_f32x4_splat(0.f), a1 = a0, a2 = a0, a3 = a0;
    for (int32_t i = 0; i < d4; i += 4) {
      const v128_t va = wasm_v128_load(ka + i);
      a0 = madd(wasm_v128_load(q0 + i), va, a0);
      a1 = madd(wasm_v128_load(q1 + i), va, a1);
      a2 = madd(wasm_v128_load(q2 + i), va, a2);
      a3 = madd(wasm_v128_load(q3 + i), va, a3);
    }
    v128_t ra = hsum4(a0, a1, a2, a3);
    if (d4 < d)
      ra = wasm_f32x4_add(ra, wasm_f32x4_make(dot_tail(q0, ka, d4, d), dot_tail(q1, ka, d4, d), dot_tail(q2, ka, d4, d),
                                              dot_tail(q3, ka, d4, d)));
    ra = wasm_f32x4_mul(ra, sc);
    s0[t] = wasm_f32x4_extract_lane(ra, 0), s1[t] = wasm_f32x4_extract_lane(ra, 1);
    s2[t] = wasm_f32x4_extract_lane(ra, 2), s3[t] = wasm_f32x4_extract_lane(ra, 3);
  }
}

// Horizontal sum in exactly the order of one lane of hsum4: (x0+x2)+(x1+x3), so a query's scores do not depend on
// whether it went through scores4 or scores1 (i.e. on the other queries of the call).
inline float hsum_as4(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 2)) +
         (wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 3));
}

void scores1(const float* q, const float* K, int64_t n, int32_t d, float scale, float* s) {
  const int32_t d4 = d & ~3;
  for (int64_t t = 0; t < n; ++t) {
    const float* k = K + t * d;
    v128_t a = wasm_f32x4_splat(0.f);
    for (int32_t i = 0; i < d4; i += 4) a = madd(wasm_v128_load(q + i), wasm_v128_load(k + i), a);
    s[t] = scale * (hsum_as4(a) + dot_tail(q, k, d4, d));
  }
}

void softmax_step(float* s, int64_t n, int32_t dv, float* m, float* l, float* acc) {
  float mt = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n; ++t) mt = s[t] > mt ? s[t] : mt;
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
  const float mm = *m;
  float sum = 0.f;
  for (int64_t t = 0; t < n; ++t) {
    s[t] = std::exp(s[t] - mm);
    sum += s[t];
  }
  *l += sum;
}

// acc_j += sum_t p_j[t] V_t for four queries, 8 columns per pass: each loaded V vector feeds four multiply-adds.
void pv4(const float* p, const float* V, int64_t n, int32_t dv, float* acc) {
  const float *p0 = p, *p1 = p + n, *p2 = p + 2 * n, *p3 = p + 3 * n;
  float *c0 = acc, *c1 = acc + dv, *c2 = acc + 2 * dv, *c3 = acc + 3 * dv;
  int32_t i = 0;
  for (; i + 8 <= dv; i += 8) {
    v128_t x0 = wasm_v128_load(c0 + i), y0 = wasm_v128_load(c0 + i + 4);
    v128_t x1 = wasm_v128_load(c1 + i), y1 = wasm_v128_load(c1 + i + 4);
    v128_t x2 = wasm_v128_load(c2 + i), y2 = wasm_v128_load(c2 + i + 4);
    v128_t x3 = wasm_v128_load(c3 + i), y3 = wasm_v128_load(c3 + i + 4);
    for (int64_t t = 0; t < n; ++t) {
      const float* vt = V + t * dv + i;
      const v128_t va = wasm_v128_load(vt), vb = wasm_v128_load(vt + 4);
      v128_t w = wasm_f32x4_splat(p0[t]);
      x0 = madd(w, va, x0);
      y0 = madd(w, vb, y0);
      w = wasm_f32x4_splat(p1[t]);
      x1 = madd(w, va, x1);
      y1 = madd(w, vb, y1);
      w = wasm_f32x4_splat(p2[t]);
      x2 = madd(w, va, x2);
      y2 = madd(w, vb, y2);
      w = wasm_f32x4_splat(p3[t]);
      x3 = madd(w, va, x3);
      y3 = madd(w, vb, y3);
    }
    wasm_v128_store(c0 + i, x0), wasm_v128_store(c0 + i + 4, y0);
    wasm_v128_store(c1 + i, x1), wasm_v128_store(c1 + i + 4, y1);
    wasm_v128_store(c2 + i, x2), wasm_v128_store(c2 + i + 4, y2);
    wasm_v128_store(c3 + i, x3), wasm_v128_store(c3 + i + 4, y3);
  }
  for (; i < dv; ++i) {
    float x0 = c0[i], x1 = c1[i], x2 = c2[i], x3 = c3[i];
    for (int64_t t = 0; t < n; ++t) {
      const float v = V[t * dv + i];
      x0 += p0[t] * v, x1 += p1[t] * v, x2 += p2[t] * v, x3 += p3[t] * v;
    }
    c0[i] = x0, c1[i] = x1, c2[i] = x2, c3[i] = x3;
  }
}

void pv1(const float* s, const float* V, int64_t n, int32_t dv, float* acc) {
  int32_t i = 0;
  for (; i + 16 <= dv; i += 16) {
    v128_t c0 = wasm_v128_load(acc + i), c1 = wasm_v128_load(acc + i + 4);
    v128_t c2 = wasm_v128_load(acc + i + 8), c3 = wasm_v128_load(acc + i + 12);
    for (int64_t t = 0; t < n; ++t) {
      const v128_t p = wasm_f32x4_splat(s[t]);
      const float* vt = V + t * dv + i;
      c0 = madd(p, wasm_v128_load(vt), c0);
      c1 = madd(p, wasm_v128_load(vt + 4), c1);
      c2 = madd(p, wasm_v128_load(vt + 8), c2);
      c3 = madd(p, wasm_v128_load(vt + 12), c3);
    }
    wasm_v128_store(acc + i, c0);
    wasm_v128_store(acc + i + 4, c1);
    wasm_v128_store(acc + i + 8, c2);
    wasm_v128_store(acc + i + 12, c3);
  }
  for (; i + 4 <= dv; i += 4) {
    v128_t c0 = wasm_v128_load(acc + i);
    for (int64_t t = 0; t < n; ++t) c0 = madd(wasm_f32x4_splat(s[t]), wasm_v128_load(V + t * dv + i), c0);
    wasm_v128_store(acc + i, c0);
  }
  for (; i < dv; ++i) {
    float c = acc[i];
    for (int64_t t = 0; t < n; ++t) c += s[t] * V[t * dv + i];
    acc[i] = c;
  }
}

// nq queries against the same n keys: scores (4 queries per K pass), softmax per query, P.V (4 queries per V pass).
// Every query's result is bitwise independent of the other queries of the call (same operation order on both
// the 4-query and the 1-query paths).
void attn_tile_wasm(const float* q, int64_t nq, const float* K, const float* V, int64_t n, int32_t d, int32_t dv,
                    float scale, float* m, float* l, float* acc, float* s) {
  int64_t j = 0;
  for (; j + 4 <= nq; j += 4) scores4(q + j * d, K, n, d, scale, s + j * n);
  for (; j < nq; ++j) scores1(q + j * d, K, n, d, scale, s + j * n);
  for (j = 0; j < nq; ++j) softmax_step(s + j * n, n, dv, m + j, l + j, acc + j * dv);
  for (j = 0; j + 4 <= nq; j += 4) pv4(s + j * n, V, n, dv, acc + j * dv);
  for (; j < nq; ++j) pv1(s + j * n, V, n, dv, acc + j * dv);
}

}  // namespace

void install_wasm_attn(Kernels& k) { k.attn_tile = attn_tile_wasm; }

}  // namespace hwkv
#endif
