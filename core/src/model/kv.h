// model/kv.h — what the model engine needs from the KV block store (model_kv.cpp).
//
// The forward pass grows every write block by its token count in all layers first (kv_reserve =
// BlockStore::extend, contents undefined until written), then per layer writes the new K/V rows (kv_write =
// BlockStore::write; keys already rotated to their block-local positions by the engine), then runs attention.
// On failure the caller truncates back (kv_truncate). The store behind an ABI handle: store_from_handle (store.h).
#ifndef HWKV_CORE_MODEL_KV_H
#define HWKV_CORE_MODEL_KV_H

#include <cstdint>

#include "../../include/hwkv.h"
#include "../store.h"

namespace hwkv {
namespace model {

// Grow block b by n tokens in every layer (all-or-nothing).
hwkv_status kv_reserve(BlockStore& s, int32_t b, int32_t n);
// Write tokens [start, start + n) of one layer: k[n, n_kv_head, head_dim], v[n, n_kv_head, head_dim_v], stored as
// given (keys already rotated). Precondition: start + n <= len(b).
hwkv_status kv_write(BlockStore& s, int32_t b, int32_t layer, int32_t start, int32_t n, const float* k, const float* v);
void kv_truncate(BlockStore& s, int32_t b, int32_t len);

}  // namespace model
}  // namespace hwkv

#endif
