// codec_params.h — the KV codec's host-side rules shared by the CPU block store (store.cpp) and the CUDA one
// (cuda/codec.cu, which compiles codec_params.cpp: cuda/core_host.cuh): validation of a hwkv_store_codec with
// store_create_codec's messages, the quantizer parameters of each layer, the AQUA predictor layout, which
// chunks compaction encodes, and the byte / token accounting of store_codec_stats.
#ifndef HWKV_CORE_CODEC_PARAMS_H
#define HWKV_CORE_CODEC_PARAMS_H

#include <cstdint>
#include <vector>

#include "../include/hwkv.h"
#include "../include/hwkv_quant.h"

namespace hwkv {
namespace codec {

// Uniform values: per token, groups of the largest divisor of C (= n_kv_head * head_dim_v) <= 128.
int32_t uniform_vgroup(int32_t C);
// HIGGS group: the largest power of two <= 1024 dividing C.
int32_t higgs_group_for(int32_t C);

// Everything store_create_codec checks before it copies anything (type, cache_bytes, sinks / buffer,
// chunk_tokens, uniform bits, the quantizer sizes, grid given). The rope and predictors of AQUA are checked by
// check_aqua (after the backend has validated the rope against the store).
hwkv_status check_codec(const char* fn, const hwkv_store_params& p, const hwkv_store_codec& c);
// AQUA predictors: count (Ck + Cv + (n_layer-1) * (Ck*Ck + Ck + Cv*(Ck+Cv) + Cv)) and finite values.
hwkv_status check_aqua_predictors(const char* fn, const hwkv_store_params& p, const hwkv_store_codec& c);

// One AQUA layer l >= 1 of the predictors as given (nn.Linear layout [out, in]): wk [Ck, Ck], bk [Ck],
// wv [Cv, Ck + Cv] (columns K̂_l then V̂_{l-1}), bv [Cv]. Layer 0: bk [Ck], bv [Cv] (the means), wk = wv = null.
struct AquaView {
  const float *wk = nullptr, *bk = nullptr, *wv = nullptr, *bv = nullptr;
};
AquaView aqua_layer(const hwkv_store_params& p, const float* predictors, int32_t l);
// wv [Cv, Ck + Cv] split into wvk [Cv, Ck] and wvv [Cv, Cv] (how both stores keep it).
void split_wv(const float* wv, int32_t Ck, int32_t Cv, float* wvk, float* wvv);

// The codec as a store keeps it: pointers cleared, layer0_exact only for AQUA, grid0 fields zero when no
// separate layer-0 grid is used (has_grid0 = grid0 given, grid0_dim != 0, not layer0_exact).
bool uses_grid0(const hwkv_store_codec& c);
hwkv_store_codec kept_codec(const hwkv_store_codec& c);
// sinks rounded up to a whole page
int32_t sink_tokens(const hwkv_store_params& p, const hwkv_store_codec& c);

// Quantizer parameters of layer L (kept codec k): uniform keys per channel over the chunk, values per token in
// groups of uniform_vgroup; HIGGS keys / values with the layer-0 grid at L == 0 when the codec has one, seeds
// k.seed (keys) and k.seed + 1 (values).
void uniform_params(const hwkv_store_params& p, const hwkv_store_codec& k, hwkv_uniform_params* kp,
                    hwkv_uniform_params* vp);
// *g0 = true: the layer-0 grid (grid0_n points of grid0_dim) applies.
void higgs_params(const hwkv_store_params& p, const hwkv_store_codec& k, int32_t L, bool value, hwkv_higgs_params* hp,
                  bool* g0);

// First pages p0 of the chunks compaction encodes in a block of len tokens with these pages (page < 0 =
// compressed): chunk-aligned from the sinks, ending at least `buffer` tokens before len, all pages exact.
void compact_candidates(const hwkv_store_params& p, const hwkv_store_codec& k, int32_t sink_tokens,
                        const std::vector<int32_t>& pages, int64_t len, std::vector<int32_t>* p0s);

// store_codec_stats over the live blocks: Blocks iterates blocks with .live, .len, .pages, .comp (CompRef-like:
// .c with ->bytes), kept_bytes(chunk) the bytes of its kept decoded pages.
template <class Blocks, class KeptBytes>
void count_chunks(const Blocks& blocks, int64_t page_tokens, KeptBytes kept_bytes, hwkv_store_codec_stats* out) {
  for (const auto& blk : blocks) {
    if (!blk.live || blk.comp.empty()) continue;
    const void* last = nullptr;
    for (size_t pg = 0; pg < blk.pages.size(); ++pg) {
      if (blk.pages[pg] >= 0) continue;
      const int64_t left = int64_t(blk.len) - int64_t(pg) * page_tokens;
      out->tokens_compressed += left < page_tokens ? left : page_tokens;
      const auto* c = blk.comp[pg].c.get();
      if (c != last) {
        out->bytes_compressed += c->bytes;
        out->bytes_scratch += kept_bytes(*c);
        ++out->chunks;
        last = c;
      }
    }
  }
}
// values_compressed from tokens_compressed
int64_t values_compressed(const hwkv_store_params& p, int64_t tokens_compressed);

}  // namespace codec
}  // namespace hwkv

#endif
