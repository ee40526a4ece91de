// codec_params.cpp — the KV codec's host-side rules shared by the CPU and CUDA block stores (codec_params.h).
#include "codec_params.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "quant_internal.h"

namespace hwkv {
namespace codec {

int32_t uniform_vgroup(int32_t C) {
  for (int32_t g = std::min(C, 128); g > 1; --g)
    if (C % g == 0) return g;
  return 1;
}

int32_t higgs_group_for(int32_t C) {
  int32_t g = 1;
  while (g * 2 <= 1024 && C % (g * 2) == 0) g *= 2;
  return g;
}

hwkv_status check_codec(const char* fn, const hwkv_store_params& p, const hwkv_store_codec& c) {
  if (c.type != HWKV_KV_UNIFORM && c.type != HWKV_KV_HIGGS && c.type != HWKV_KV_AQUA)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: codec type must be 0 (exact), 1 (uniform), 2 (higgs) or 3 (aqua), got %d", fn, c.type);
  if (c.cache_bytes < 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: cache_bytes must be >= 0 (0 = keep no decoded chunks), got %lld", fn, (long long)c.cache_bytes);
  if (c.sinks < 0 || c.buffer < 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sinks and buffer must be >= 0, got %d and %d", fn, c.sinks, c.buffer);
  if (c.chunk_tokens < 1 || c.chunk_tokens % p.page_tokens != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: chunk_tokens (%d) must be a positive multiple of page_tokens (%d)", fn,
                c.chunk_tokens, p.page_tokens);
  const int32_t Ck = p.n_kv_head * p.head_dim, Cv = p.n_kv_head * p.head_dim_v;
  int64_t nw, ns;
  if (c.type == HWKV_KV_UNIFORM) {
    if (c.bits < 1 || c.bits > 8) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: uniform bits must be in 1..8, got %d", fn, c.bits);
    hwkv_uniform_params kp = {Ck, c.bits, HWKV_UNIFORM_PER_CHANNEL, c.chunk_tokens};
    hwkv_uniform_params vp = {Cv, c.bits, HWKV_UNIFORM_PER_TOKEN, uniform_vgroup(Cv)};
    HWKV_TRY(quant::uniform_size(&kp, c.chunk_tokens, &nw, &ns));
    HWKV_TRY(quant::uniform_size(&vp, c.chunk_tokens, &nw, &ns));
    return HWKV_OK;
  }
  const char* tn = c.type == HWKV_KV_AQUA ? "aqua" : "higgs";
  if (!c.grid) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: %s codec needs a grid", fn, tn);
  const bool l0x = c.type == HWKV_KV_AQUA && c.layer0_exact != 0;
  for (int pass = 0; pass < 2; ++pass) {
    const int32_t d = pass ? c.grid0_dim : c.grid_dim, n = pass ? c.grid0_n : c.grid_n;
    if (pass && (!c.grid0 || d == 0 || l0x)) break;
    for (int32_t C : {Ck, Cv}) {
      hwkv_higgs_params hp = {C, higgs_group_for(C), d, n, 1, c.seed};
      HWKV_TRY(quant::higgs_size(&hp, c.chunk_tokens, &nw, &ns));
    }
  }
  return HWKV_OK;
}

hwkv_status check_aqua_predictors(const char* fn, const hwkv_store_params& p, const hwkv_store_codec& c) {
  const int32_t L = p.n_layer, Ck = p.n_kv_head * p.head_dim, Cv = p.n_kv_head * p.head_dim_v;
  const int64_t per = int64_t(Ck) * Ck + Ck + int64_t(Cv) * (Ck + Cv) + Cv;
  const int64_t want = Ck + Cv + int64_t(L - 1) * per;
  if (!c.predictors) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: the aqua codec needs predictors (%lld floats)", fn, (long long)want);
  if (c.n_predictors != want)
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "%s: predictors hold %lld floats, expected %lld = Ck + Cv + (n_layer-1)*(Ck*Ck + Ck + Cv*(Ck+Cv) + Cv) for "
                "n_layer %d, Ck %d, Cv %d",
                fn, (long long)c.n_predictors, (long long)want, L, Ck, Cv);
  for (int64_t i = 0; i < want; ++i)
    if (!std::isfinite(c.predictors[i]))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: predictor value %lld (layer %lld) is not finite", fn, (long long)i,
                  (long long)(i < Ck + Cv ? 0 : 1 + (i - Ck - Cv) / per));
  return HWKV_OK;
}

AquaView aqua_layer(const hwkv_store_params& p, const float* predictors, int32_t l) {
  const int64_t Ck = int64_t(p.n_kv_head) * p.head_dim, Cv = int64_t(p.n_kv_head) * p.head_dim_v;
  AquaView v;
  if (l == 0) {
    v.bk = predictors;
    v.bv = predictors + Ck;
    return v;
  }
  const int64_t per = Ck * Ck + Ck + Cv * (Ck + Cv) + Cv;
  const float* w = predictors + Ck + Cv + int64_t(l - 1) * per;
  v.wk = w;
  v.bk = w + Ck * Ck;
  v.wv = v.bk + Ck;
  v.bv = v.wv + Cv * (Ck + Cv);
  return v;
}

void split_wv(const float* wv, int32_t Ck, int32_t Cv, float* wvk, float* wvv) {
  for (int32_t o = 0; o < Cv; ++o) {
    std::memcpy(wvk + int64_t(o) * Ck, wv + int64_t(o) * (Ck + Cv), size_t(Ck) * 4);
    std::memcpy(wvv + int64_t(o) * Cv, wv + int64_t(o) * (Ck + Cv) + Ck, size_t(Cv) * 4);
  }
}

bool uses_grid0(const hwkv_store_codec& c) {
  const bool l0x = c.type == HWKV_KV_AQUA && c.layer0_exact != 0;
  return c.type != HWKV_KV_UNIFORM && c.grid0 && c.grid0_dim && !l0x;
}

hwkv_store_codec kept_codec(const hwkv_store_codec& c) {
  hwkv_store_codec k = c;
  const bool g0 = uses_grid0(c);
  k.grid = nullptr;
  k.grid0 = nullptr;
  k.predictors = nullptr;
  k.rope = nullptr;
  if (c.type != HWKV_KV_AQUA) k.layer0_exact = 0;
  if (!g0) k.grid0_dim = k.grid0_n = 0;
  return k;
}

int32_t sink_tokens(const hwkv_store_params& p, const hwkv_store_codec& c) {
  return static_cast<int32_t>(ceil_div(c.sinks, p.page_tokens) * p.page_tokens);
}

void uniform_params(const hwkv_store_params& p, const hwkv_store_codec& k, hwkv_uniform_params* kp,
                    hwkv_uniform_params* vp) {
  const int32_t Ck = p.n_kv_head * p.head_dim, Cv = p.n_kv_head * p.head_dim_v;
  *kp = hwkv_uniform_params{Ck, k.bits, HWKV_UNIFORM_PER_CHANNEL, k.chunk_tokens};
  *vp = hwkv_uniform_params{Cv, k.bits, HWKV_UNIFORM_PER_TOKEN, uniform_vgroup(Cv)};
}

void higgs_params(const hwkv_store_params& p, const hwkv_store_codec& k, int32_t L, bool value, hwkv_higgs_params* hp,
                  bool* g0) {
  const int32_t C = p.n_kv_head * (value ? p.head_dim_v : p.head_dim);
  *g0 = L == 0 && k.grid0_dim != 0;
  const int32_t d = *g0 ? k.grid0_dim : k.grid_dim, np = *g0 ? k.grid0_n : k.grid_n;
  *hp = hwkv_higgs_params{C, higgs_group_for(C), d, np, 1, k.seed + (value ? 1u : 0u)};
}

void compact_candidates(const hwkv_store_params& p, const hwkv_store_codec& k, int32_t sink_tokens,
                        const std::vector<int32_t>& pages, int64_t len, std::vector<int32_t>* p0s) {
  p0s->clear();
  const int64_t pt = p.page_tokens, chunk = k.chunk_tokens, cp = chunk / pt;
  for (int64_t c0 = sink_tokens; c0 + chunk <= len - k.buffer; c0 += chunk) {
    const int32_t p0 = static_cast<int32_t>(c0 / pt);
    bool exact = true;
    for (int64_t i = 0; i < cp; ++i) exact = exact && pages[p0 + i] >= 0;
    if (exact) p0s->push_back(p0);  // else already compressed (or partly, after a truncate)
  }
}

int64_t values_compressed(const hwkv_store_params& p, int64_t tokens_compressed) {
  return tokens_compressed * p.n_layer * p.n_kv_head * (int64_t(p.head_dim) + p.head_dim_v);
}

}  // namespace codec
}  // namespace hwkv
