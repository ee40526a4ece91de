// model_kv.cpp — the model engine's access to the block store (see model/kv.h).
//
// The store has no "grow then write one layer" operation yet, so kv_reserve appends zero K/V (no rotation)
// in every layer and kv_write overwrites the rows of one layer in the pages in place (the page layout is
// documented in store.h: per page and layer K [n_kv_head, page_tokens, head_dim], then V).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "dispatch.h"
#include "model/kv.h"

// Must stay token-identical to the definition in api.cpp (the ABI handle of a CPU store).
struct hwkv_store {
  std::unique_ptr<hwkv::BlockStore> impl;
};

namespace hwkv {
namespace model {

BlockStore* kv_unwrap(hwkv_store_t* s) { return s ? s->impl.get() : nullptr; }

hwkv_status kv_reserve(BlockStore& s, int32_t b, int32_t n, std::vector<float>& zeros) {
  const int64_t per_tok = int64_t(s.n_layer()) * s.n_kv_head() * std::max(s.head_dim(), s.head_dim_v());
  // Append in chunks so the zero buffer stays small (<= ~4 MiB) for long prefills.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t(1) << 20) / per_tok));
  if (zeros.size() < static_cast<size_t>(chunk * per_tok)) zeros.assign(static_cast<size_t>(chunk * per_tok), 0.0f);
  const int32_t len0 = s.len(b);
  for (int64_t done = 0; done < n;) {
    const int32_t c = static_cast<int32_t>(std::min<int64_t>(chunk, n - done));
    hwkv_status st = s.append(b, c, zeros.data(), zeros.data(), nullptr);
    if (st != HWKV_OK) {
      char why[512];
      std::snprintf(why, sizeof why, "%s", last_error());
      s.truncate(b, len0);
      return fail(st, "model_forward: cannot grow block %d by %d tokens: %s", b, n, why);
    }
    done += c;
  }
  return HWKV_OK;
}

void kv_write(BlockStore& s, int32_t b, int32_t layer, int32_t start, int32_t n, const float* k, const float* v) {
  const int32_t pt = s.page_tokens(), nkv = s.n_kv_head(), hd = s.head_dim(), hdv = s.head_dim_v();
  const bool f16 = s.dtype() == HWKV_F16;
  const Kernels& K = kernels();
  for (int32_t i = 0; i < n; ++i) {
    const int32_t t = start + i, page = t / pt, slot = t % pt;
    for (int32_t h = 0; h < nkv; ++h) {
      const float* ks = k + (int64_t(i) * nkv + h) * hd;
      const float* vs = v + (int64_t(i) * nkv + h) * hdv;
      void* kd = const_cast<void*>(s.k_page(b, page, layer, h));
      void* vd = const_cast<void*>(s.v_page(b, page, layer, h));
      if (f16) {
        K.f32_to_f16(ks, static_cast<uint16_t*>(kd) + int64_t(slot) * hd, hd);
        K.f32_to_f16(vs, static_cast<uint16_t*>(vd) + int64_t(slot) * hdv, hdv);
      } else {
        std::memcpy(static_cast<float*>(kd) + int64_t(slot) * hd, ks, size_t(hd) * 4);
        std::memcpy(static_cast<float*>(vd) + int64_t(slot) * hdv, vs, size_t(hdv) * 4);
      }
    }
  }
}

void kv_truncate(BlockStore& s, int32_t b, int32_t len) {
  if (s.is_live(b) && s.len(b) > len) s.truncate(b, len);
}

}  // namespace model
}  // namespace hwkv
