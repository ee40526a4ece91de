// attn.cuh — the device entry points of attention over views (attn.cu), shared by attn_views and the model
// engine (model_forward.cu).
//
// A plan depends only on the batch (views, query positions) and the block lengths, not on the layer: the
// model builds one per forward (after growing the write blocks) and runs it for every layer with queries
// and outputs already on the device. attn_views builds one per call and copies q / out / lse itself.
#ifndef HWKV_CUDA_ATTN_CUH
#define HWKV_CUDA_ATTN_CUH

#include <cstdint>

#include "common.cuh"
#include "rope.cuh"
#include "store.cuh"

namespace hwkv_cuda {

struct AttnPlan {
  int32_t n_q = 0, n_head = 0, n_kv = 0, gqa = 1, D = 0, Dv = 0;
  int32_t rows = 0, kstride = 0;
  size_t smem = 0;
  int64_t n_items = 0;
  int64_t n_slots = 0;
  RopeDev rd{};
  // device arrays (stream-ordered allocations, freed with the plan)
  Scratch items, blk_pairs, prow, ploc, ptab, pslot, rslot, ptrs, tab, m, d, acc;
};

// Builds the plan of an already validated batch (live blocks, each at most once per view; n_head a positive
// multiple of the store's n_kv_head; q_pos given). Uploads it to the device (stream()).
hwkv_status attn_plan_build(const char* fn, const hwkv_store* s, const RopeHost& rope, const hwkv_attn_batch& bt,
                            int32_t n_head, AttnPlan* plan);

// Runs a plan for one layer: q rows on the device with q_ld floats between rows ([n_head, D] each, un-rotated),
// out[n_q, n_head, Dv] on the device (contiguous), lse[n_q, n_head] on the device or NULL. Asynchronous on
// stream(); no synchronisation.
hwkv_status attn_plan_run(const char* fn, const hwkv_store* s, const AttnPlan& plan, int32_t layer, const float* q,
                          int64_t q_ld, float scale, float* out, float* lse);

}  // namespace hwkv_cuda

#endif
