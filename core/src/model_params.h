// model_params.h — validation of hwkv_model_params (messages start with "model_create: ") and of a forward
// batch, shared by the CPU core (model_api.cpp, model_llama.cpp) and the CUDA library, which compiles
// model_params.cpp for its host side.
#ifndef HWKV_CORE_MODEL_PARAMS_H
#define HWKV_CORE_MODEL_PARAMS_H

#include <vector>

#include "../include/hwkv_model.h"
#include "common.h"

namespace hwkv {
namespace model {

hwkv_status check_params(const hwkv_model_params* p);

// A forward batch against the model and the store's geometry: store shape, n_seq, NULL arrays, logits mode,
// index arrays, token ids. Sets *argmax (HWKV_LOGITS_ARGMAX asked) and *lmode (the mode without that flag).
hwkv_status check_forward_batch(const char* fn, const hwkv_model_params& P, const hwkv_store_params& sp,
                                const hwkv_forward_batch* b, bool* argmax, int32_t* lmode);

// The views of a checked batch: every block live (check_block(blk) is the store's own check), at most once per
// view, and the write blocks (each view's last) distinct. `stamp` is scratch; `limit` bounds block ids.
template <class CheckBlock>
hwkv_status check_forward_views(const char* fn, const hwkv_forward_batch* b, size_t limit, std::vector<int32_t>& stamp,
                                CheckBlock check_block) {
  const int32_t n_seq = b->n_seq;
  stamp.assign(limit, -1);
  for (int32_t s = 0; s < n_seq; ++s) {
    for (int32_t j = b->view_indptr[s]; j < b->view_indptr[s + 1]; ++j) {
      const int32_t blk = b->view_blocks[j];
      HWKV_TRY(check_block(blk));
      if (stamp[blk] == s)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: block %d appears twice in the view of sequence %d", fn, blk, s);
      stamp[blk] = s;
    }
  }
  stamp.assign(limit, -1);
  for (int32_t s = 0; s < n_seq; ++s) {
    const int32_t wb = b->view_blocks[b->view_indptr[s + 1] - 1];
    if (stamp[wb] >= 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sequences %d and %d both write to block %d (write blocks must differ)",
                  fn, stamp[wb], s, wb);
    stamp[wb] = s;
  }
  return HWKV_OK;
}

}  // namespace model
}  // namespace hwkv

#endif
