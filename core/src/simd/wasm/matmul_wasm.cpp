// matmul_wasm.cpp — WebAssembly SIMD128 row kernels of kern::matmul (compiled with -msimd128).
//
// Same structure as the AVX2 kernels (R weight rows x T tokens register tiles, dot-product form), with
// 4-wide f32 vectors and separate mul + add (no FMA in SIMD128). Q8_0 widens int8 to int16 and uses
// i32x4.dot_i16x8_s: exact int32 block sums.
//
// F16, few tokens (decode): the 2^112 rescale of the integer widening is folded into the activations.
// x is prepared once per call as x * 2^112 in even/odd order per 8-value group ([x0 x2 x4 x6 | x1 x3 x5 x7]);
// a 128-bit load of 8 halves then widens in 5 integer ops (odd halves: >>s 3 and a mask; even ones:
// << 16 first) to w * 2^-112, and w*2^-112 * x*2^112 is the exact real product w*x, so every rounded
// product is bit-identical to widening first (checked for all finite halves, subnormals included).
// |x| >= 2^16 (x * 2^112 would overflow) falls back to the widen-then-multiply tile.
// F16, >= 8 tokens (prefill): each RP-row slab is widened to f32 once per token block and the f32 tile runs
// on it.
// Streaming: WASM has no prefetch instruction, and the short interleaved row streams of a tile are picked
// up late by hardware prefetchers; F16/BF16 tiles touch (one byte per cache line) the weights of the tile
// >= kPfBytes ahead, which roughly doubles the cold-weight F16 rate (a plain load of an in-bounds
// address; F32 is bandwidth-bound without it).
#if defined(HWKV_HAVE_WASM_SIMD) && HWKV_HAVE_WASM_SIMD

#include <wasm_simd128.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../../kernels/matmul.h"
#include "../../kernels/matmul_impl.h"

namespace hwkv {
namespace kern {
namespace wasm {

namespace {

// Loaders return 8 consecutive weights as two f32x4 (lo, hi).
struct LoadF32 {
  static constexpr int kBytes = 4;
  static constexpr bool kIsF16 = false;
  static constexpr bool kTouch = false;  // touching ahead did not pay off for f32 (bandwidth-bound already)
  static inline void load8(const uint8_t* p, int64_t i, v128_t& lo, v128_t& hi) {
    const float* f = reinterpret_cast<const float*>(p) + i;
    lo = wasm_v128_load(f);
    hi = wasm_v128_load(f + 4);
  }
  static inline float one(const uint8_t* p, int64_t i) { return reinterpret_cast<const float*>(p)[i]; }
};
// F16 -> F32 in 3 ops per 4 values: interleave the halves into the upper 16 bits of each lane (sign at
// bit 31, exponent at 26..30), arithmetic shift right by 3 (exponent and mantissa land in f32 position,
// the sign is smeared over bits 28..31), clear bits 28..30, and rescale by 2^112 (the sign rides along).
// Exact for normals, subnormals and zero; inf/nan become large finite values (never present in weights).
struct LoadF16 {
  static constexpr int kBytes = 2;
  static constexpr bool kIsF16 = true;
  static constexpr bool kTouch = true;
  static inline v128_t fix(v128_t hi16) {
    const v128_t v = wasm_v128_and(wasm_i32x4_shr(hi16, 3), wasm_i32x4_splat(static_cast<int32_t>(0x8fffffffu)));
    return wasm_f32x4_mul(v, wasm_f32x4_splat(5.192296858534828e+33f));
  }
  static inline void load8(const uint8_t* p, int64_t i, v128_t& lo, v128_t& hi) {
    const v128_t h = wasm_v128_load(reinterpret_cast<const uint16_t*>(p) + i);
    const v128_t z = wasm_i16x8_splat(0);
    lo = fix(wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11));
    hi = fix(wasm_i16x8_shuffle(z, h, 4, 12, 5, 13, 6, 14, 7, 15));
  }
  static inline float one(const uint8_t* p, int64_t i) { return f16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]); }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  static constexpr bool kIsF16 = false;
  static constexpr bool kTouch = true;
  static inline void load8(const uint8_t* p, int64_t i, v128_t& lo, v128_t& hi) {
    const v128_t h = wasm_v128_load(reinterpret_cast<const uint16_t*>(p) + i);
    const v128_t z = wasm_i16x8_splat(0);
    lo = wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11);
    hi = wasm_i16x8_shuffle(z, h, 4, 12, 5, 13, 6, 14, 7, 15);
  }
  static inline float one(const uint8_t* p, int64_t i) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]); }
};

// Weight bytes to touch ahead of the current tile, at least (see the header). The touched address never
// leaves the chunk's own rows: near its end a tile touches its own data instead.
constexpr int64_t kPfBytes = 4096;
inline void touch(const uint8_t* p) { (void)*reinterpret_cast<const volatile uint8_t*>(p); }
// Touch `bytes` (a compile-time multiple of the tile's step) starting at pf, one byte per 64.
template <int kStep>
inline void touch_step(const uint8_t*& pf) {
  for (int j = 0; j < kStep; j += 64) touch(pf + j);
  pf += kStep;
}
// Touch pointer of the tile of R rows at row r (stride ws) in a chunk ending at row r1: the same bytes of the
// tile whole tiles ahead (>= kPfBytes), so every row stream is covered before it is read.
inline const uint8_t* pf_ptr(const uint8_t* W, int64_t r, int64_t R, int64_t ws, int64_t r1) {
  const int64_t tile = R * ws, ahead = (kPfBytes + tile - 1) / tile * R;  // rows
  return r + ahead + R <= r1 ? W + (r + ahead) * ws : W + r * ws;
}

inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

template <int R, int T>
inline void store_tile(v128_t (&acc)[R][T], float* y, int64_t ldy, bool accumulate, const float (&tail)[R][T]) {
  for (int t = 0; t < T; ++t) {
    float* yt = y + t * ldy;
    for (int r = 0; r < R; ++r) {
      const float v = hsum(acc[r][t]) + tail[r][t];
      yt[r] = accumulate ? yt[r] + v : v;
    }
  }
}

template <class L, int R, int T>
inline void tile_f(const uint8_t* w, int64_t ws, const float* x, int64_t n_in, float* y, int64_t ldy, bool accum,
                   const uint8_t* pf) {
  v128_t acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = wasm_f32x4_splat(0.f);
  const int64_t n8 = n_in & ~int64_t(7);
  for (int64_t i = 0; i < n8; i += 8) {
    touch_step<L::kTouch ? R * 8 * L::kBytes : 0>(pf);
    v128_t wl[R], wh[R];
    for (int r = 0; r < R; ++r) L::load8(w + r * ws, i, wl[r], wh[r]);
    for (int t = 0; t < T; ++t) {
      const v128_t xl = wasm_v128_load(x + t * n_in + i);
      const v128_t xh = wasm_v128_load(x + t * n_in + i + 4);
      for (int r = 0; r < R; ++r)
        acc[r][t] = wasm_f32x4_add(acc[r][t], wasm_f32x4_add(wasm_f32x4_mul(wl[r], xl), wasm_f32x4_mul(wh[r], xh)));
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

// F16 tile on prepared activations xp ([T][ldx], x * 2^112 in even/odd order, see the header); the
// n_in % 8 tail uses the original x.
template <int R, int T>
inline void tile_f16eo(const uint8_t* w, int64_t ws, const float* xp, int64_t ldx, const float* x, int64_t n_in,
                       float* y, int64_t ldy, bool accum, const uint8_t* pf) {
  constexpr bool kTwo = T == 1;  // decode: separate even/odd accumulators (shorter dependency chains)
  v128_t ae[R][T], ao[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) ae[r][t] = ao[r][t] = wasm_f32x4_splat(0.f);
  const v128_t mo = wasm_i32x4_splat(static_cast<int32_t>(0x8fffe000u));
  const v128_t me = wasm_i32x4_splat(static_cast<int32_t>(0x8fffffffu));
  const int64_t n8 = n_in & ~int64_t(7);
  for (int64_t i = 0; i < n8; i += 8) {
    touch_step<R * 16>(pf);
    v128_t we[R], wo[R];
    for (int r = 0; r < R; ++r) {
      const v128_t v = wasm_v128_load(w + r * ws + 2 * i);
      wo[r] = wasm_v128_and(wasm_i32x4_shr(v, 3), mo);
      we[r] = wasm_v128_and(wasm_i32x4_shr(wasm_i32x4_shl(v, 16), 3), me);
    }
    for (int t = 0; t < T; ++t) {
      const v128_t xe = wasm_v128_load(xp + t * ldx + i), xo = wasm_v128_load(xp + t * ldx + i + 4);
      for (int r = 0; r < R; ++r) {
        if (kTwo) {
          ae[r][t] = wasm_f32x4_add(ae[r][t], wasm_f32x4_mul(we[r], xe));
          ao[r][t] = wasm_f32x4_add(ao[r][t], wasm_f32x4_mul(wo[r], xo));
        } else {
          ae[r][t] = wasm_f32x4_add(ae[r][t], wasm_f32x4_add(wasm_f32x4_mul(we[r], xe), wasm_f32x4_mul(wo[r], xo)));
        }
      }
    }
  }
  float tail[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      if (kTwo) ae[r][t] = wasm_f32x4_add(ae[r][t], ao[r][t]);
      float s = 0.f;
      for (int64_t i = n8; i < n_in; ++i) s += LoadF16::one(w + r * ws, i) * x[t * n_in + i];
      tail[r][t] = s;
    }
  store_tile<R, T>(ae, y, ldy, accum, tail);
}

// Prepares xp[t][0..n8) = x[t] * 2^112 in even/odd order. False when some |x| >= 2^16 (the product would
// overflow; the caller falls back to widening the weights).
inline bool prep_f16_x(const float* x, int64_t n_tok, int64_t n_in, float* xp, int64_t ldx) {
  const int64_t n8 = n_in & ~int64_t(7);
  const v128_t s = wasm_f32x4_splat(5.192296858534828e+33f);  // 2^112
  v128_t m = wasm_f32x4_splat(0.f);
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xt = x + t * n_in;
    float* d = xp + t * ldx;
    for (int64_t i = 0; i < n8; i += 8) {
      const v128_t a = wasm_v128_load(xt + i), b = wasm_v128_load(xt + i + 4);
      m = wasm_f32x4_max(m, wasm_f32x4_max(wasm_f32x4_abs(a), wasm_f32x4_abs(b)));  // NaN propagates: fallback
      wasm_v128_store(d + i, wasm_f32x4_mul(wasm_i32x4_shuffle(a, b, 0, 2, 4, 6), s));
      wasm_v128_store(d + i + 4, wasm_f32x4_mul(wasm_i32x4_shuffle(a, b, 1, 3, 5, 7), s));
    }
    for (int64_t i = n8; i < n_in; ++i) m = wasm_f32x4_max(m, wasm_f32x4_splat(std::fabs(xt[i])));
  }
  // m = per-lane max |x| (any NaN makes the comparison false)
  return wasm_i32x4_all_true(wasm_f32x4_lt(m, wasm_f32x4_splat(65536.f)));
}

// Widens rows [0, R) of a F16/BF16 slab (stride ws bytes, n_in values) to f32 [R][n_in].
template <class L>
inline void widen_slab(const uint8_t* w, int64_t ws, int64_t R, int64_t n_in, float* out) {
  const int64_t n8 = n_in & ~int64_t(7);
  for (int64_t r = 0; r < R; ++r) {
    const uint8_t* src = w + r * ws;
    float* d = out + r * n_in;
    for (int64_t i = 0; i < n8; i += 8) {
      v128_t lo, hi;
      L::load8(src, i, lo, hi);
      wasm_v128_store(d + i, lo);
      wasm_v128_store(d + i + 4, hi);
    }
    for (int64_t i = n8; i < n_in; ++i) d[i] = L::one(src, i);
  }
}

template <class L, int RD, int RP, int TP>
void rows_f(const MMTask& t, int64_t r0, int64_t r1) {
  const int64_t n_in = t.n_in;
  const int64_t ws = n_in * L::kBytes;
  const uint8_t* W = static_cast<const uint8_t*>(t.W);
  const bool acc = t.accumulate != 0;
  // F16 with few tokens: the prepared-activation tile (exact; see the header).
  if (L::kBytes == 2 && L::kIsF16 && t.n_tok < 8) {
    thread_local std::vector<float> xp;
    const int64_t ldx = (n_in & ~int64_t(7)) + 8;
    if (static_cast<int64_t>(xp.size()) < t.n_tok * ldx) xp.resize(static_cast<size_t>(t.n_tok * ldx));
    if (prep_f16_x(t.x, t.n_tok, n_in, xp.data(), ldx)) {
      const float* xpd = xp.data();
      int64_t r = r0;
      if (t.n_tok == 1) {
        for (; r + RD <= r1; r += RD)
          tile_f16eo<RD, 1>(W + r * ws, ws, xpd, ldx, t.x, n_in, t.y + r, t.ldy, acc, pf_ptr(W, r, RD, ws, r1));
        for (; r < r1; ++r) tile_f16eo<1, 1>(W + r * ws, ws, xpd, ldx, t.x, n_in, t.y + r, t.ldy, acc, W + r * ws);
        return;
      }
      for (; r < r1; r += RP) {
        if (r + RP <= r1) {
          int64_t k = 0;
          for (; k + TP <= t.n_tok; k += TP)
            tile_f16eo<RP, TP>(W + r * ws, ws, xpd + k * ldx, ldx, t.x + k * n_in, n_in, t.y + r + k * t.ldy, t.ldy, acc,
                               k == 0 ? pf_ptr(W, r, RP, ws, r1) : W + r * ws);
          for (; k < t.n_tok; ++k)
            tile_f16eo<RP, 1>(W + r * ws, ws, xpd + k * ldx, ldx, t.x + k * n_in, n_in, t.y + r + k * t.ldy, t.ldy, acc,
                              W + r * ws);
        } else {
          for (int64_t rr = r; rr < r1; ++rr)
            for (int64_t k = 0; k < t.n_tok; ++k)
              tile_f16eo<1, 1>(W + rr * ws, ws, xpd + k * ldx, ldx, t.x + k * n_in, n_in, t.y + rr + k * t.ldy, t.ldy,
                               acc, W + rr * ws);
        }
      }
      return;
    }
  }
  if (t.n_tok == 1) {
    int64_t r = r0;
    for (; r + RD <= r1; r += RD) tile_f<L, RD, 1>(W + r * ws, ws, t.x, n_in, t.y + r, t.ldy, acc, pf_ptr(W, r, RD, ws, r1));
    for (; r < r1; ++r) tile_f<L, 1, 1>(W + r * ws, ws, t.x, n_in, t.y + r, t.ldy, acc, W + r * ws);
    return;
  }
  // F16 with >= 8 tokens: widen each RP-row slab once per token block, run the f32 tile on it (BF16 widens in
  // two shuffles per 8 values: widening per tile measured as fast as the slab there).
  const bool widen = L::kIsF16 && t.n_tok >= 8;
  thread_local std::vector<float> slab;
  if (widen && static_cast<int64_t>(slab.size()) < RP * n_in) slab.resize(static_cast<size_t>(RP * n_in));
  const int64_t wsf = n_in * 4;
  int64_t tb = std::max<int64_t>((192 * 1024) / (n_in * 4), TP);
  tb = tb / TP * TP;
  for (int64_t t0 = 0; t0 < t.n_tok; t0 += tb) {
    const int64_t t1 = std::min(t.n_tok, t0 + tb);
    for (int64_t r = r0; r < r1; r += RP) {
      if (r + RP <= r1) {
        int64_t k = t0;
        if (widen) {
          widen_slab<L>(W + r * ws, ws, RP, n_in, slab.data());
          const uint8_t* S = reinterpret_cast<const uint8_t*>(slab.data());
          for (; k + TP <= t1; k += TP)
            tile_f<LoadF32, RP, TP>(S, wsf, t.x + k * n_in, n_in, t.y + r + k * t.ldy, t.ldy, acc, S);
          for (; k < t1; ++k) tile_f<LoadF32, RP, 1>(S, wsf, t.x + k * n_in, n_in, t.y + r + k * t.ldy, t.ldy, acc, S);
          continue;
        }
        for (; k + TP <= t1; k += TP)
          tile_f<L, RP, TP>(W + r * ws, ws, t.x + k * n_in, n_in, t.y + r + k * t.ldy, t.ldy, acc,
                            k == t0 ? pf_ptr(W, r, RP, ws, r1) : W + r * ws);
        for (; k < t1; ++k)
          tile_f<L, RP, 1>(W + r * ws, ws, t.x + k * n_in, n_in, t.y + r + k * t.ldy, t.ldy, acc, W + r * ws);
      } else {
        for (int64_t rr = r; rr < r1; ++rr) {
          int64_t k = t0;
          for (; k + TP <= t1; k += TP)
            tile_f<L, 1, TP>(W + rr * ws, ws, t.x + k * n_in, n_in, t.y + rr + k * t.ldy, t.ldy, acc, W + rr * ws);
          for (; k < t1; ++k)
            tile_f<L, 1, 1>(W + rr * ws, ws, t.x + k * n_in, n_in, t.y + rr + k * t.ldy, t.ldy, acc, W + rr * ws);
        }
      }
    }
  }
}

// ---- Q8_0 ------------------------------------------------------------------------------------------

template <int R, int T>
inline void tile_q8(const uint8_t* w, int64_t ws, const int8_t* xq, const float* xd, int64_t n_in, float* y,
                    int64_t ldy, bool accum) {
  const int64_t nb = n_in / kQ8Block;
  v128_t acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = wasm_f32x4_splat(0.f);
  for (int64_t b = 0; b < nb; ++b) {
    v128_t w16[R][4];
    float dw[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * ws + b * kQ8BlockBytes;
      dw[r] = f16_to_f32(load_u16(blk));
      const v128_t a = wasm_v128_load(blk + 2), c = wasm_v128_load(blk + 18);
      w16[r][0] = wasm_i16x8_extend_low_i8x16(a);
      w16[r][1] = wasm_i16x8_extend_high_i8x16(a);
      w16[r][2] = wasm_i16x8_extend_low_i8x16(c);
      w16[r][3] = wasm_i16x8_extend_high_i8x16(c);
    }
    for (int t = 0; t < T; ++t) {
      const int8_t* q = xq + t * n_in + b * kQ8Block;
      const v128_t a = wasm_v128_load(q), c = wasm_v128_load(q + 16);
      const v128_t x0 = wasm_i16x8_extend_low_i8x16(a), x1 = wasm_i16x8_extend_high_i8x16(a);
      const v128_t x2 = wasm_i16x8_extend_low_i8x16(c), x3 = wasm_i16x8_extend_high_i8x16(c);
      const float dx = xd[t * nb + b];
      for (int r = 0; r < R; ++r) {
        const v128_t s = wasm_i32x4_add(
            wasm_i32x4_add(wasm_i32x4_dot_i16x8(w16[r][0], x0), wasm_i32x4_dot_i16x8(w16[r][1], x1)),
            wasm_i32x4_add(wasm_i32x4_dot_i16x8(w16[r][2], x2), wasm_i32x4_dot_i16x8(w16[r][3], x3)));
        acc[r][t] = wasm_f32x4_add(acc[r][t], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), wasm_f32x4_splat(dw[r] * dx)));
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
    for (; r + RD <= r1; r += RD) tile_q8<RD, 1>(W + r * ws, ws, t.xq, t.xd, n_in, t.y + r, t.ldy, acc);
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
        for (; k + TP <= t1; k += TP)
          tile_q8<RP, TP>(W + r * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + r + k * t.ldy, t.ldy, acc);
        for (; k < t1; ++k)
          tile_q8<RP, 1>(W + r * ws, ws, t.xq + k * n_in, t.xd + k * nb, n_in, t.y + r + k * t.ldy, t.ldy, acc);
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

void rows(const MMTask& t, int64_t r0, int64_t r1) {
  switch (t.wtype) {
    case HWKV_WT_F32: rows_f<LoadF32, 4, 4, 2>(t, r0, r1); break;
    case HWKV_WT_F16: rows_f<LoadF16, 4, 4, 2>(t, r0, r1); break;
    case HWKV_WT_BF16: rows_f<LoadBF16, 4, 4, 2>(t, r0, r1); break;
    case HWKV_WT_Q8_0: rows_q8<2, 2, 2>(t, r0, r1); break;
    default: break;
  }
}

void quantize_q8(const float* x, int64_t n, int8_t* q, float* d) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    v128_t v[8];
    v128_t m = wasm_f32x4_splat(0.f);
    for (int k = 0; k < 8; ++k) {
      v[k] = wasm_v128_load(xb + 4 * k);
      m = wasm_f32x4_max(m, wasm_f32x4_abs(v[k]));
    }
    const float amax = std::max(std::max(wasm_f32x4_extract_lane(m, 0), wasm_f32x4_extract_lane(m, 1)),
                                std::max(wasm_f32x4_extract_lane(m, 2), wasm_f32x4_extract_lane(m, 3)));
    const float db = amax / 127.f;
    const float id = db != 0.f ? 1.f / db : 0.f;
    d[b] = db;
    const v128_t s = wasm_f32x4_splat(id);
    v128_t i32[8];
    for (int k = 0; k < 8; ++k) i32[k] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(v[k], s)));
    const v128_t h0 = wasm_i16x8_narrow_i32x4(i32[0], i32[1]), h1 = wasm_i16x8_narrow_i32x4(i32[2], i32[3]);
    const v128_t h2 = wasm_i16x8_narrow_i32x4(i32[4], i32[5]), h3 = wasm_i16x8_narrow_i32x4(i32[6], i32[7]);
    wasm_v128_store(q + b * kQ8Block, wasm_i8x16_narrow_i16x8(h0, h1));
    wasm_v128_store(q + b * kQ8Block + 16, wasm_i8x16_narrow_i16x8(h2, h3));
  }
}

}  // namespace wasm
}  // namespace kern
}  // namespace hwkv

#endif
