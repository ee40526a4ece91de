// model/kv.h — what the model engine needs from the KV block store and attention (model_kv.cpp).
//
// The forward pass grows every write block by its token count in all layers first (kv_reserve, contents
// undefined until written), then per layer writes the new K/V rows (kv_write; keys already rotated to their
// block-local positions), then runs attention. On failure the caller truncates back (kv_truncate).
#ifndef HWKV_CORE_MODEL_KV_H
#define HWKV_CORE_MODEL_KV_H

#include <cstdint>
#include <vector>

#include "../../include/hwkv.h"
#include "../store.h"

namespace hwkv {
namespace model {

// The BlockStore behind an ABI handle (never null for a non-null handle).
BlockStore* kv_unwrap(hwkv_store_t* s);

// Grow block b by n tokens in every layer (all-or-nothing). zeros: scratch the adapter may use.
hwkv_status kv_reserve(BlockStore& s, int32_t b, int32_t n, std::vector<float>& zeros);
// Write tokens [start, start + n) of one layer: k[n, n_kv_head, head_dim], v[n, n_kv_head, head_dim_v].
// Precondition: start + n <= len(b).
void kv_write(BlockStore& s, int32_t b, int32_t layer, int32_t start, int32_t n, const float* k, const float* v);
void kv_truncate(BlockStore& s, int32_t b, int32_t len);

}  // namespace model
}  // namespace hwkv

#endif
