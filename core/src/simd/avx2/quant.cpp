// AVX2 kernels of the quantizers (core/src/quant_internal.h): brute-force nearest grid point (8 points per
// register, separate multiply and add in the scalar order so codes equal the scalar path's) and the dot
// tiles of the ridge normal equations (FMA; only rounding differs from scalar).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "avx2_common.h"
#if defined(HWKV_AVX2_BODY)
#include <limits>

#include "../../quant_internal.h"

namespace hwkv {
namespace quant {

namespace {

template <int D>
void nearest_d(const GridSearch& gs, const float* z, int64_t m, uint16_t* idx) {
  const int32_t nb = gs.nb;
  const float* soa = gs.soa.data();
  const float* hn = gs.hn.data();
  const __m256i step = _mm256_set1_epi32(8);
  for (int64_t p = 0; p < m; ++p) {
    const float* zp = z + p * D;
    __m256 zk[D];
    for (int k = 0; k < D; ++k) zk[k] = _mm256_set1_ps(zp[k]);
    __m256 best = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    __m256i bidx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i cur = bidx;
    for (int32_t b = 0; b < nb; ++b) {
      const float* g = soa + static_cast<int64_t>(b) * D * 8;
      __m256 s = _mm256_mul_ps(zk[0], _mm256_loadu_ps(g));
      for (int k = 1; k < D; ++k) s = _mm256_add_ps(s, _mm256_mul_ps(zk[k], _mm256_loadu_ps(g + k * 8)));
      s = _mm256_sub_ps(s, _mm256_loadu_ps(hn + b * 8));
      const __m256 gt = _mm256_cmp_ps(s, best, _CMP_GT_OQ);
      best = _mm256_blendv_ps(best, s, gt);
      bidx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bidx), _mm256_castsi256_ps(cur), gt));
      cur = _mm256_add_epi32(cur, step);
    }
    alignas(32) float bs[8];
    alignas(32) int32_t bi[8];
    _mm256_store_ps(bs, best);
    _mm256_store_si256(reinterpret_cast<__m256i*>(bi), bidx);
    float bv = bs[0];
    int32_t id = bi[0];
    for (int l = 1; l < 8; ++l) {
      if (bs[l] > bv || (bs[l] == bv && bi[l] < id)) {
        bv = bs[l];
        id = bi[l];
      }
    }
    if (id >= gs.n) id = 0;  // only when every score is NaN (the scalar path keeps index 0 then)
    idx[p] = static_cast<uint16_t>(id);
  }
}

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 0x55));
  return _mm_cvtss_f32(lo);
}

}  // namespace

void grid_nearest_avx2(const GridSearch& gs, const float* z, int64_t m, uint16_t* idx) {
  switch (gs.d) {
    case 2: return nearest_d<2>(gs, z, m, idx);
    case 4: return nearest_d<4>(gs, z, m, idx);
    case 8: return nearest_d<8>(gs, z, m, idx);
    default: return grid_nearest_scalar(gs, z, m, idx);
  }
}

void dots_avx2(const float* A, int32_t na, const float* B, int32_t nb, int64_t R, float* out, int64_t ldo) {
  // 3 x 4 register tiles: 12 accumulators, 3 + 1 loads per 12 FMAs.
  int32_t i = 0;
  for (; i + 3 <= na; i += 3) {
    const float* a0 = A + int64_t(i) * R;
    const float* a1 = a0 + R;
    const float* a2 = a1 + R;
    int32_t j = 0;
    for (; j + 4 <= nb; j += 4) {
      const float* b0 = B + int64_t(j) * R;
      const float* b1 = b0 + R;
      const float* b2 = b1 + R;
      const float* b3 = b2 + R;
      __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
      __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
      __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
      for (int64_t r = 0; r < R; r += 8) {
        const __m256 x0 = _mm256_loadu_ps(a0 + r), x1 = _mm256_loadu_ps(a1 + r), x2 = _mm256_loadu_ps(a2 + r);
        __m256 y = _mm256_loadu_ps(b0 + r);
        c00 = _mm256_fmadd_ps(x0, y, c00);
        c10 = _mm256_fmadd_ps(x1, y, c10);
        c20 = _mm256_fmadd_ps(x2, y, c20);
        y = _mm256_loadu_ps(b1 + r);
        c01 = _mm256_fmadd_ps(x0, y, c01);
        c11 = _mm256_fmadd_ps(x1, y, c11);
        c21 = _mm256_fmadd_ps(x2, y, c21);
        y = _mm256_loadu_ps(b2 + r);
        c02 = _mm256_fmadd_ps(x0, y, c02);
        c12 = _mm256_fmadd_ps(x1, y, c12);
        c22 = _mm256_fmadd_ps(x2, y, c22);
        y = _mm256_loadu_ps(b3 + r);
        c03 = _mm256_fmadd_ps(x0, y, c03);
        c13 = _mm256_fmadd_ps(x1, y, c13);
        c23 = _mm256_fmadd_ps(x2, y, c23);
      }
      float* o0 = out + int64_t(i) * ldo + j;
      float* o1 = o0 + ldo;
      float* o2 = o1 + ldo;
      o0[0] = hsum(c00); o0[1] = hsum(c01); o0[2] = hsum(c02); o0[3] = hsum(c03);
      o1[0] = hsum(c10); o1[1] = hsum(c11); o1[2] = hsum(c12); o1[3] = hsum(c13);
      o2[0] = hsum(c20); o2[1] = hsum(c21); o2[2] = hsum(c22); o2[3] = hsum(c23);
    }
    for (; j < nb; ++j) {
      const float* b0 = B + int64_t(j) * R;
      __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0;
      for (int64_t r = 0; r < R; r += 8) {
        const __m256 y = _mm256_loadu_ps(b0 + r);
        c0 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + r), y, c0);
        c1 = _mm256_fmadd_ps(_mm256_loadu_ps(a1 + r), y, c1);
        c2 = _mm256_fmadd_ps(_mm256_loadu_ps(a2 + r), y, c2);
      }
      out[int64_t(i) * ldo + j] = hsum(c0);
      out[int64_t(i + 1) * ldo + j] = hsum(c1);
      out[int64_t(i + 2) * ldo + j] = hsum(c2);
    }
  }
  for (; i < na; ++i) {
    const float* a0 = A + int64_t(i) * R;
    for (int32_t j = 0; j < nb; ++j) {
      const float* b0 = B + int64_t(j) * R;
      __m256 c0 = _mm256_setzero_ps();
      for (int64_t r = 0; r < R; r += 8) c0 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + r), _mm256_loadu_ps(b0 + r), c0);
      out[int64_t(i) * ldo + j] = hsum(c0);
    }
  }
}

}  // namespace quant
}  // namespace hwkv

#endif
