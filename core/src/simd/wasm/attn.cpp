// WASM SIMD128 online-softmax tile: 4-key dot products and vectorised P·V accumulation (exp stays scalar).
#include "wasm_common.h"
#if defined(HWKV_WASM_BODY)
#include <cmath>
#include <limits>

#include "../../dispatch.h"

namespace hwkv {
namespace {

inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}
inline v128_t madd(v128_t a, v128_t b, v128_t c) { return wasm_f32x4_add(wasm_f32x4_mul(a, b), c); }

void attn_tile_wasm(const float* q, const float* K, const float* V, int64_t n, int32_t d, int32_t dv, float scale, float* m,
                    float* l, float* acc, float* s) {
  const int32_t d4 = d & ~3;
  for (int64_t t = 0; t < n; ++t) {
    const float* k = K + t * d;
    v128_t a = wasm_f32x4_splat(0.f);
    for (int32_t i = 0; i < d4; i += 4) a = madd(wasm_v128_load(q + i), wasm_v128_load(k + i), a);
    float dot = hsum(a);
    for (int32_t i = d4; i < d; ++i) dot += q[i] * k[i];
    s[t] = scale * dot;
  }
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

}  // namespace

void install_wasm_attn(Kernels& k) { k.attn_tile = attn_tile_wasm; }

}  // namespace hwkv
#endif
