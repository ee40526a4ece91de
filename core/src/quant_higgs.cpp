// quant_higgs.cpp — HIGGS quantizer (core/include/hwkv_quant.h): grid search, signs, encode, decode.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "../include/hwkv_quant.h"
#include "dispatch.h"
#include "pack.h"
#include "quant_internal.h"

namespace hwkv {
namespace quant {

bool simd_avx2_active() { return std::strcmp(kernels().name, "avx2") == 0; }

void grid_prepare(const float* grid, int32_t n, int32_t d, GridSearch* gs) {
  gs->n = n;
  gs->d = d;
  if (d == 1) {
    gs->order.resize(static_cast<size_t>(n));
    std::iota(gs->order.begin(), gs->order.end(), uint16_t{0});
    std::stable_sort(gs->order.begin(), gs->order.end(), [&](uint16_t a, uint16_t b) { return grid[a] < grid[b]; });
    gs->thr.resize(static_cast<size_t>(n - 1));
    for (int32_t i = 0; i + 1 < n; ++i) gs->thr[i] = 0.5f * (grid[gs->order[i]] + grid[gs->order[i + 1]]);
    return;
  }
  gs->nb = (n + 7) / 8;
  gs->soa.assign(static_cast<size_t>(gs->nb) * d * 8, 0.0f);
  gs->hn.assign(static_cast<size_t>(gs->nb) * 8, std::numeric_limits<float>::infinity());
  for (int32_t i = 0; i < n; ++i) {
    const float* g = grid + static_cast<int64_t>(i) * d;
    float s = g[0] * g[0];
    for (int32_t k = 1; k < d; ++k) s = s + g[k] * g[k];
    gs->hn[i] = 0.5f * s;
    for (int32_t k = 0; k < d; ++k) gs->soa[(static_cast<size_t>(i / 8) * d + k) * 8 + (i % 8)] = g[k];
  }
}

void grid_nearest_scalar(const GridSearch& gs, const float* z, int64_t m, uint16_t* idx) {
  const int32_t d = gs.d;
  if (d == 1) {
    const float* t0 = gs.thr.data();
    const float* t1 = t0 + gs.thr.size();
    for (int64_t i = 0; i < m; ++i) idx[i] = gs.order[static_cast<size_t>(std::lower_bound(t0, t1, z[i]) - t0)];
    return;
  }
  const int32_t n = gs.n;
  for (int64_t p = 0; p < m; ++p) {
    const float* zp = z + p * d;
    float best = -std::numeric_limits<float>::infinity();
    int32_t bi = 0;
    for (int32_t i = 0; i < n; ++i) {
      const float* g = gs.soa.data() + static_cast<size_t>(i / 8) * d * 8 + (i % 8);
      float s = zp[0] * g[0];
      for (int32_t k = 1; k < d; ++k) s = s + zp[k] * g[k * 8];
      s = s - gs.hn[i];
      if (s > best) {
        best = s;
        bi = i;
      }
    }
    idx[p] = static_cast<uint16_t>(bi);
  }
}

void grid_nearest(const GridSearch& gs, const float* z, int64_t m, uint16_t* idx) {
#if defined(HWKV_QUANT_AVX2)
  if (gs.d > 1 && simd_avx2_active()) return grid_nearest_avx2(gs, z, m, idx);
#endif
  grid_nearest_scalar(gs, z, m, idx);
}

hwkv_status higgs_encode(const hwkv_higgs_params* p, const float* grid, const float* x, int64_t n_tok,
                         uint32_t* codes, int64_t n_words, uint16_t* scales) {
  const char* fn = "higgs_encode";
  bool skip;
  HWKV_TRY(check_higgs_encode(fn, p, grid, x, n_tok, codes, n_words, scales, &skip));
  if (skip) return HWKV_OK;
  const int32_t C = p->channels, g = p->group, d = p->dim, bits = code_bits(p->n_points);
  const int64_t n_codes = n_tok * (C / d);
  const int32_t G = C / g;
  // Validate everything (finite, norm within fp16) before writing anything.
  std::vector<uint16_t> sc(static_cast<size_t>(n_tok * G));
  HWKV_TRY(higgs_scales(fn, p, x, n_tok, sc.data()));
  GridSearch gs;
  grid_prepare(grid, p->n_points, d, &gs);
  std::vector<float> signs;
  if (p->use_signs) {
    signs.resize(static_cast<size_t>(C));
    make_signs(p->seed, C, signs.data());
  }
  std::vector<uint16_t> idx(static_cast<size_t>(n_codes));
  std::vector<float> buf(static_cast<size_t>(g));
  const Kernels& k = kernels();
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int32_t j = 0; j < G; ++j) {
      const int64_t off = t * C + int64_t(j) * g;
      uint16_t* out = idx.data() + off / d;
      const float S = f16_to_f32_one(sc[static_cast<size_t>(t * G + j)]);
      if (S == 0.0f) {
        std::memset(out, 0, sizeof(uint16_t) * static_cast<size_t>(g / d));
        continue;
      }
      const float* xg = x + off;
      if (p->use_signs) {
        const float* s = signs.data() + int64_t(j) * g;
        for (int32_t c = 0; c < g; ++c) buf[c] = xg[c] * s[c];
      } else {
        std::memcpy(buf.data(), xg, sizeof(float) * static_cast<size_t>(g));
      }
      k.fwht_row(buf.data(), g, 1.0f / S);
      grid_nearest(gs, buf.data(), g / d, out);
    }
  }
  k.pack_bits(idx.data(), n_codes, bits, codes);
  std::memcpy(scales, sc.data(), sizeof(uint16_t) * sc.size());
  return HWKV_OK;
}

hwkv_status higgs_decode(const hwkv_higgs_params* p, const float* grid, const uint32_t* codes, int64_t n_words,
                         const uint16_t* scales, int64_t n_tok, float* y, int32_t accumulate) {
  const char* fn = "higgs_decode";
  bool skip;
  HWKV_TRY(check_higgs_decode(fn, p, grid, codes, n_words, scales, n_tok, y, &skip));
  if (skip) return HWKV_OK;
  const int32_t C = p->channels, g = p->group, d = p->dim, bits = code_bits(p->n_points);
  const int64_t n_codes = n_tok * (C / d);
  const int32_t G = C / g;
  std::vector<uint16_t> idx(static_cast<size_t>(n_codes));
  const Kernels& k = kernels();
  k.unpack_bits(codes, n_codes, bits, idx.data());
  std::vector<float> signs;
  if (p->use_signs) {
    signs.resize(static_cast<size_t>(C));
    make_signs(p->seed, C, signs.data());
  }
  std::vector<float> buf(static_cast<size_t>(g));
  const float inv_g = 1.0f / static_cast<float>(g);
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int32_t j = 0; j < G; ++j) {
      const int64_t off = t * C + int64_t(j) * g;
      float* yg = y + off;
      const float S = f16_to_f32_one(scales[t * G + j]);
      if (S == 0.0f) {
        if (!accumulate) std::memset(yg, 0, sizeof(float) * static_cast<size_t>(g));
        continue;
      }
      const uint16_t* in = idx.data() + off / d;
      for (int32_t q = 0; q < g / d; ++q) {
        const float* gp = grid + int64_t(in[q]) * d;
        for (int32_t e = 0; e < d; ++e) buf[q * d + e] = gp[e];
      }
      k.fwht_row(buf.data(), g, S * inv_g);
      if (p->use_signs) {
        const float* s = signs.data() + int64_t(j) * g;
        if (accumulate)
          for (int32_t c = 0; c < g; ++c) yg[c] += buf[c] * s[c];
        else
          for (int32_t c = 0; c < g; ++c) yg[c] = buf[c] * s[c];
      } else {
        if (accumulate)
          for (int32_t c = 0; c < g; ++c) yg[c] += buf[c];
        else
          std::memcpy(yg, buf.data(), sizeof(float) * static_cast<size_t>(g));
      }
    }
  }
  return HWKV_OK;
}

hwkv_status nearest(const float* grid, int32_t n_points, int32_t dim, const float* z, int64_t m, uint16_t* idx) {
  const char* fn = "grid_nearest";
  bool skip;
  HWKV_TRY(check_nearest(fn, grid, n_points, dim, z, m, idx, &skip));
  if (skip) return HWKV_OK;
  GridSearch gs;
  grid_prepare(grid, n_points, dim, &gs);
  grid_nearest(gs, z, m, idx);
  return HWKV_OK;
}


}  // namespace quant
}  // namespace hwkv
