// model_kv.cpp — the model engine's access to the block store (see model/kv.h): thin wrappers over
// BlockStore::extend / write / truncate that name the engine's ABI function in error messages.
#include <cstdio>

#include "model/kv.h"

namespace hwkv {
namespace model {

hwkv_status kv_reserve(BlockStore& s, int32_t b, int32_t n) {
  const hwkv_status st = s.extend(b, n);
  if (st != HWKV_OK) {
    char why[512];
    std::snprintf(why, sizeof why, "%s", last_error());
    return fail(st, "model_forward: cannot grow block %d by %d tokens: %s", b, n, why);
  }
  return HWKV_OK;
}

hwkv_status kv_write(BlockStore& s, int32_t b, int32_t layer, int32_t start, int32_t n, const float* k, const float* v) {
  return s.write(b, layer, start, n, k, v, nullptr, nullptr);
}

void kv_truncate(BlockStore& s, int32_t b, int32_t len) {
  if (s.is_live(b) && s.len(b) > len) s.truncate(b, len);
}

}  // namespace model
}  // namespace hwkv
