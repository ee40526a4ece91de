// matmul_avx2.cpp — AVX2 + FMA + F16C row kernels of kern::matmul (compiled with -mavx2 -mfma -mf16c).
//
// Dot-product form: W rows and x rows are both contiguous along n_in. A tile of R weight rows x T tokens
// keeps R*T float accumulators in registers; per step of 8 elements it loads R weight vectors (widened
// from F16 / BF16 on the fly) and T activation vectors, so each weight row is read once per T tokens.
// Q8_0 uses the int8 x int8 -> int32 block dot (sign trick + maddubs + madd) with activations quantized
// per 32-value block, then one float FMA per block with scale d_w * d_x.
// F16 with >= 8 tokens (prefill) widens each RP-row slab to f32 once per token block and runs the f32 tile.
#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../../kernels/matmul.h"
#include "../../kernels/matmul_impl.h"

namespace hwkv {
namespace kern {
namespace avx2 {

namespace {

struct LoadF32 {
  static constexpr bool kIsF16 = false;
  static constexpr int kBytes = 4;
  static inline __m256 load(const uint8_t* p, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + i); }
  static inline float one(const uint8_t* p, int64_t i) { return reinterpret_cast<const float*>(p)[i]; }
};
struct LoadF16 {
  static constexpr bool kIsF16 = true;
  static constexpr int kBytes = 2;
  static inline __m256 load(const uint8_t* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(p) + i)));
  }
  static inline float one(const uint8_t* p, int64_t i) { return _cvtsh_ss(reinterpret_cast<const uint16_t*>(p)[i]); }
};
struct LoadBF16 {
  static constexpr bool kIsF16 = false;
  static constexpr int kBytes = 2;
  static inline __m256 load(const uint8_t* p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static inline float one(const uint8_t* p, int64_t i) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]); }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// {hsum(a), hsum(b), hsum(c), hsum(d)}
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b);  // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 cd = _mm256_hadd_ps(c, d);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Stores acc[r][t] (already reduced to scalars or via hsum4) into y[t, r0 + r].
template <int R, int T>
inline void store_tile(__m256 (&acc)[R][T], float* y, int64_t ldy, bool accumulate, const float (&tail)[R][T]) {
  for (int t = 0; t < T; ++t) {
    float* yt = y + t * ldy;
    int r = 0;
    for (; r + 4 <= R; r += 4) {
      __m128 s = hsum4(acc[r][t], acc[r + 1][t], acc[r + 2][t], acc[r + 3][t]);
      s = _mm_add_ps(s, _mm_setr_ps(tail[r][t], tail[r + 1][t], tail[r + 2][t], tail[r + 3][t]));
      if (accumulate) s = _mm_add_ps(s, _mm_loadu_ps(yt + r));
      _mm_storeu_ps(yt + r, s);
    }
    for (; r < R; ++r) {
      const float v = hsum(acc[r][t]) + tail[r][t];
      yt[r] = accumulate ? yt[r] + v : v;
    }
  }
}

// R rows starting at w (row stride ws bytes) x T tokens starting at x (row stride n_in) -> y[t*ldy + r].
// Software prefetch: while a tile streams its R rows (R short interleaved streams, which hardware
// prefetchers pick up late), it prefetches the next tile's rows: pf_step bytes per inner iteration
// starting at pf (pf == nullptr: none). Prefetches never fault, so running past the matrix is harmless.
#ifndef HWKV_MM_PF_BYTES
#define HWKV_MM_PF_BYTES 8192  // prefetch distance: at least this many bytes (whole tiles) ahead
#endif
// Whole tiles of tile_bytes each to look ahead.
inline int64_t pf_tiles(int64_t tile_bytes) { return (HWKV_MM_PF_BYTES + tile_bytes - 1) / tile_bytes; }
inline void prefetch_step(const uint8_t*& pf, int64_t step) {
  if (!pf) return;
  for (int64_t j = 0; j < step; j += 64) _mm_prefetch(reinterpret_cast<const char*>(pf + j), _MM_HINT_T0);
  pf += step;
}

template <class L, int R, int T>
inline void tile_f(const uint8_t* w, int64_t ws, const float* x, int64_t n_in, float* y, int64_t ldy, bool accum,
                   const uint8_t* pf = nullptr, int64_t pf_step = 0) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const int64_t n8 = n_in & ~int64_t(7);
  for (int64_t i = 0; i < n8; i += 8) {
    prefetch_step(pf, pf_step);
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = L::load(w + r * ws, i);
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * n_in + i);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  float tail[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float s = 0.f;
      for (int64_t i = n8; i < n_in; ++i) s += L::one(w + r * ws, i) * x[t * n_in + i];
      tail[r][t] = s;
    }
  store_tile<R, T>(acc, y, ldy, accum, tail);
}

// Widens R rows of F16 weights (stride ws bytes, n_in values) to f32 [R][n_in] with F16C (exact), prefetching
// the same span at pf (the next slab; prefetches never fault).
inline void widen_slab_f16(const uint8_t* w, int64_t ws, int64_t R, int64_t n_in, float* out, const uint8_t* pf) {
  const int64_t n8 = n_in & ~int64_t(7);
  for (int64_t r = 0; r < R; ++r) {
    const uint16_t* src = reinterpret_cast<const uint16_t*>(w + r * ws);
    const uint8_t* p = pf + r * ws;
    float* d = out + r * n_in;
    int64_t i = 0;
    for (; i + 32 <= n8; i += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(p + 2 * i), _MM_HINT_T0);
      for (int k = 0; k < 32; k += 8)
        _mm256_storeu_ps(d + i + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + k))));
    }
    for (; i < n8; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    for (; i < n_in; ++i) d[i] = _cvtsh_ss(src[i]);
  }
}

template <class L, int RD, int RP, int TP>
void rows_f(const MMTask& t, int64_t r0, int64_t r1) {
  const int64_t n_in = t.n_in;
  const int64_t ws = n_in * L::kBytes;
  const uint8_t* W = static_cast<const uint8_t*>(t.W);
  const bool acc = t.accumulate != 0;
  if (t.n_tok == 1) {
    int64_t r = r0;
    const int64_t step = (RD * ws) / std::max<int64_t>(n_in / 8, 1), pfd = pf_tiles(RD * ws);
    for (; r + RD <= r1; r += RD)
      tile_f<L, RD, 1>(W + r * ws, ws, t.x, n_in, t.y + r, t.ldy, acc, W + (r + RD * pfd) * ws, step);
    for (; r < r1; ++r) tile_f<L, 1, 1>(W + r * ws, ws, t.x, n_in, t.y + r, t.ldy, acc);
    return;
  }
  // Token blocks sized so the activation block stays in L2 while the chunk's weight rows are replayed.
  int64_t tb = std::max<int64_t>((192 * 1024) / (n_in * 4), TP);
  tb = tb / TP * TP;
  // F16 with >= 8 tokens: widen each RP-row slab to f32 once per token block (RP x n_in floats, thread-local,
  // e.g. 3 x 2048 x 4 B = 24 KiB) and run the f32 tile on it, instead of converting every weight vector once per
  // TP tokens. (BF16 widening is a shift: not worth a copy.)
  const bool widen = L::kIsF16 && t.n_tok >= 8;
  thread_local std::vector<float> slab;
  if (widen && static_cast<int64_t>(slab.size()) < RP * n_in) slab.resize(static_cast<size_t>(RP * n_in));
  for (int64_t t0 = 0; t0 < t.n_tok; t0 += tb) {
    const int64_t t1 = std::min(t.n_tok, t0 + tb);
    int64_t r = r0;
    for (; r < r1; r += RP) {
      const bool full = r + RP <= r1;
      int64_t tk = t0;
      const float* xb = t.x;
      float* yb = t.y + r;
      if (full && widen) {
        const int64_t pfd = pf_tiles(RP * ws);
        widen_slab_f16(W + r * ws, ws, RP, n_in, slab.data(), W + (r + RP * pfd) * ws);
        const uint8_t* S = reinterpret_cast<const uint8_t*>(slab.data());
        const int64_t wsf = n_in * 4;
        for (; tk + TP <= t1; tk += TP)
          tile_f<LoadF32, RP, TP>(S, wsf, xb + tk * n_in, n_in, yb + tk * t.ldy, t.ldy, acc);
        for (; tk < t1; ++tk) tile_f<LoadF32, RP, 1>(S, wsf, xb + tk * n_in, n_in, yb + tk * t.ldy, t.ldy, acc);
      } else if (full) {
        const int64_t step = (RP * ws) / std::max<int64_t>(n_in / 8, 1), pfd = pf_tiles(RP * ws);
        for (; tk + TP <= t1; tk += TP)
          tile_f<L, RP, TP>(W + r * ws, ws, xb + tk * n_in, n_in, yb + tk * t.ldy, t.ldy, acc,
                            tk == t0 ? W + (r + RP * pfd) * ws : nullptr, step);
        // 1..3 leftover tokens in one tile (each weight row read once more, not once per token), with the
        // prefetch when it is the slab's first pass (batched decode of 2 or 3 workers lands here). Per
        // (row, token) the accumulation order is the same for every tile width: results do not depend on
        // where a token sits in the batch.
        for (; t1 - tk > 3; ++tk) tile_f<L, RP, 1>(W + r * ws, ws, xb + tk * n_in, n_in, yb + tk * t.ldy, t.ldy, acc);
        {
          const uint8_t* pf = tk == t0 ? W + (r + RP * pfd) * ws : nullptr;
          const int64_t left = t1 - tk;
          if (left == 3) tile_f<L, RP, 3>(W + r * ws, ws, xb + tk * n_in, n_in, yb + tk * t.ldy, t.ldy, acc, pf, step);
          else if (left == 2) tile_f<L, RP, 2>(W + r * ws, ws, xb + tk * n_in, n_in, yb + tk * t.ldy, t.ldy, acc, pf, step);
          else if (left == 1) tile_f<L, RP, 1>(W + r * ws, ws, xb + tk * n_in, n_in, yb + tk * t.ldy, t.ldy, acc, pf, step);
        }
      } else {
        for (int64_t rr = r; rr < r1; ++rr) {
          int64_t k = t0;
          for (; k + TP <= t1; k += TP) tile_f<L, 1, TP>(W + rr * ws, ws, xb + k * n_in, n_in, t.y + rr + k * t.ldy, t.ldy, acc);
          for (; k < t1; ++k) tile_f<L, 1, 1>(W + rr * ws, ws, xb + k * n_in, n_in, t.y + rr + k * t.ldy, t.ldy, acc);
        }
      }
    }
  }
}

// ---- Q8_0 ------------------------------------------------------------------------------------------

template <int R, int T>
inline void tile_q8(const uint8_t* w, int64_t ws, const int8_t* xq, const float* xd, int64_t n_in, float* y,
                    int64_t ldy, bool accum, const uint8_t* pf = nullptr, int64_t pf_step = 0) {
  const int64_t nb = n_in / kQ8Block;
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    prefetch_step(pf, pf_step);
    __m256i qw[R], aw[R];
    float dw[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * ws + b * kQ8BlockBytes;
      dw[r] = _cvtsh_ss(load_u16(blk));
      qw[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      aw[r] = _mm256_sign_epi8(qw[r], qw[r]);
    }
    for (int t = 0; t < T; ++t) {
      const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + t * n_in + b * kQ8Block));
      const float dx = xd[t * nb + b];
      for (int r = 0; r < R; ++r) {
        const __m256i p16 = _mm256_maddubs_epi16(aw[r], _mm256_sign_epi8(qx, qw[r]));
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * dx), p, acc[r][t]);
      }
    }
  }
  const float zero[R][T] = {};
  store_tile<R, T>(acc, y, ldy, accum, zero);
}

template <int RD, int RP, int TP>
void rows_q8(const MMTask& t, int64_t r0, int64_t r1) {
  const int64_t n_in = t.n_in;
  const int64_t ws = q8_row_bytes(n_in);
  const int64_t nb = n_in / kQ8Block;
  const uint8_t* W = static_cast<const uint8_t*>(t.W);
  const bool acc = t.accumulate != 0;
  if (t.n_tok == 1) {
    int64_t r = r0;
    const int64_t step = (RD * ws) / std::max<int64_t>(nb, 1), pfd = pf_tiles(RD * ws);
    for (; r + RD <= r1; r += RD)
      tile_q8<RD, 1>(W + r * ws, ws, t.xq, t.xd, n_in, t.y + r, t.ldy, acc, W + (r + RD * pfd) * ws, step);
    for (; r < r1; ++r) tile_q8<1, 1>(W + r * ws, ws, t.xq, t.xd, n_in, t.y + r, t.ldy, acc);
    return;
  }
  int64_t tb = std::max<int64_t>((192 * 1024) / n_in, TP);
  tb = tb / TP * TP;
  for (int64_t t0 = 0; t0 < t.n_tok; t0 += tb) {
    const int64_t t1 = std::min(t.n_tok, t0 + tb);
    for (int64_t r = r0; r < r1; r += RP) {
      if (r + RP <= r1) {
        int64_t k = t0;
        const int64_t step = (RP * ws) / std::max<int64_t>(nb, 1), pfd = pf_tiles(RP * ws);
        for (; k + TP <= t1; k += TP)
          tile_q8<RP, TP>(W + r * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + r + k * t.ldy, t.ldy, acc,
                          k == t0 ? W + (r + RP * pfd) * ws : nullptr, step);
        for (; t1 - k > 3; ++k)
          tile_q8<RP, 1>(W + r * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + r + k * t.ldy, t.ldy, acc);
        // 1..3 leftover tokens in one tile (see rows_f), prefetching on the slab's first pass
        const uint8_t* pf = k == t0 ? W + (r + RP * pfd) * ws : nullptr;
        const int64_t left = t1 - k;
        if (left == 3)
          tile_q8<RP, 3>(W + r * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + r + k * t.ldy, t.ldy, acc, pf, step);
        else if (left == 2)
          tile_q8<RP, 2>(W + r * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + r + k * t.ldy, t.ldy, acc, pf, step);
        else if (left == 1)
          tile_q8<RP, 1>(W + r * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + r + k * t.ldy, t.ldy, acc, pf, step);
      } else {
        for (int64_t rr = r; rr < r1; ++rr) {
          int64_t k = t0;
          for (; k + TP <= t1; k += TP)
            tile_q8<1, TP>(W + rr * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + rr + k * t.ldy, t.ldy, acc);
          for (; k < t1; ++k)
            tile_q8<1, 1>(W + rr * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + rr + k * t.ldy, t.ldy, acc);
        }
      }
    }
  }
}

}  // namespace

#ifndef HWKV_MM_RD
#define HWKV_MM_RD 4
#endif
#ifndef HWKV_MM_RP
#define HWKV_MM_RP 3
#endif
#ifndef HWKV_MM_TP
#define HWKV_MM_TP 4
#endif
#ifndef HWKV_MM_QRD
#define HWKV_MM_QRD 2
#endif
#ifndef HWKV_MM_QRP
#define HWKV_MM_QRP 2
#endif
#ifndef HWKV_MM_QTP
#define HWKV_MM_QTP 4
#endif

void rows(const MMTask& t, int64_t r0, int64_t r1) {
  switch (t.wtype) {
    case HWKV_WT_F32: rows_f<LoadF32, HWKV_MM_RD, HWKV_MM_RP, HWKV_MM_TP>(t, r0, r1); break;
    case HWKV_WT_F16: rows_f<LoadF16, HWKV_MM_RD, HWKV_MM_RP, HWKV_MM_TP>(t, r0, r1); break;
    case HWKV_WT_BF16: rows_f<LoadBF16, HWKV_MM_RD, HWKV_MM_RP, HWKV_MM_TP>(t, r0, r1); break;
    case HWKV_WT_Q8_0: rows_q8<HWKV_MM_QRD, HWKV_MM_QRP, HWKV_MM_QTP>(t, r0, r1); break;
    default: break;
  }
}

void quantize_q8(const float* x, int64_t n, int8_t* q, float* d) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16),
           v3 = _mm256_loadu_ps(xb + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float db = amax / 127.f;
    const float id = db != 0.f ? 1.f / db : 0.f;
    d[b] = db;
    const __m256 s = _mm256_set1_ps(id);
    // cvtps rounds with the current mode (nearest-even), like nearbyint in the scalar path.
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, s)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, s)),
                  i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, s)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, s));
    // packs work per 128-bit lane: fix the order with a dword permute at the end.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    const __m256i o = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQ8Block), o);
  }
}

}  // namespace avx2
}  // namespace kern
}  // namespace hwkv

#endif
