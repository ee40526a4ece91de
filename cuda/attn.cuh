// attn.cuh — the device entry points of attention over views (attn.cu), shared by attn_views and the model
// engine (model_forward.cu).
//
// A plan depends only on the batch (views, query positions) and the block lengths, not on the layer: the
// model builds one per forward (after growing the write blocks) and runs it for every layer with queries
// and outputs already on the device. attn_views builds one per call and copies q / out / lse itself.
#ifndef HWKV_CUDA_ATTN_CUH
#define HWKV_CUDA_ATTN_CUH

#include <cstdint>
#include <vector>

#include "common.cuh"
#include "rope.cuh"
#include "store.cuh"

namespace hwkv_cuda {

struct WorkItem {
  int32_t pairs_off;  // offset of this block's pair list in blk_pairs
  int32_t n_rows;     // rows of this block (pairs * gqa)
  int32_t row0;       // first row of this CTA
  int32_t key_start;  // chunk [key_start, key_end) of the block
  int32_t key_end;
  int32_t page_off;   // offset of this block's page pointers
  int32_t chunk;      // chunk index (slot = pair_slot + chunk)
  int32_t pad;
};

struct AttnPlan {
  int32_t n_q = 0, n_head = 0, n_kv = 0, gqa = 1, D = 0, Dv = 0;
  int32_t rows = 0, kstride = 0;
  int32_t kind = 0;  // 0: generic kernel (any head_dim), 1: decode kernel (head_dim = head_dim_v in {64, 128}),
                     // 2: tensor-core decode kernel (F16 store, head_dim 64/128, HWKV_CUDA_ATTN=mma)
  size_t smem = 0;
  int64_t n_items = 0;
  int64_t n_slots = 0;
  RopeDev rd{};
  // Host arrays (attn_plan_build), laid out into one upload by attn_plan_layout with capacities (AttnCaps:
  // exact for a one-off call, with headroom when a CUDA graph replays the same layout for later steps;
  // padding work items have n_rows = 0 and do nothing), then bound to device memory by attn_plan_bind.
  std::vector<WorkItem> h_items;
  std::vector<int32_t> h_blk_pairs, h_prow, h_ploc, h_ptab, h_pslot, h_rslot;
  std::vector<const float*> h_ptrs;
  std::vector<float> h_tab;
  size_t o_items = 0, o_bp = 0, o_row = 0, o_loc = 0, o_tab = 0, o_slot = 0, o_rslot = 0, o_ptrs = 0, o_ftab = 0;
  int64_t grid_items = 0;  // CTAs along x: n_items, or the capacity (padding items return at once)
  // attn_plan_upload's own device memory (attn_views); the model engine uses its step buffer instead.
  Scratch blob, part;
  std::vector<unsigned char> host;
  const WorkItem* d_items = nullptr;
  const int32_t *d_blk_pairs = nullptr, *d_prow = nullptr, *d_ploc = nullptr, *d_ptab = nullptr,
                *d_pslot = nullptr, *d_rslot = nullptr;
  const float* const* d_ptrs = nullptr;
  const float* d_tab = nullptr;
  float *d_m = nullptr, *d_d = nullptr, *d_acc = nullptr;
};

// Capacities of a plan's arrays (elements) and partial-state slots.
struct AttnCaps {
  size_t items = 0, pairs = 0, rslot = 0, ptrs = 0, tab = 0, slots = 0;
  bool operator==(const AttnCaps& o) const {
    return items == o.items && pairs == o.pairs && rslot == o.rslot && ptrs == o.ptrs && tab == o.tab &&
           slots == o.slots;
  }
};
AttnCaps attn_plan_needs(const AttnPlan& p);
AttnCaps attn_caps_headroom(const AttnCaps& need);
bool attn_caps_fit(const AttnCaps& need, const AttnCaps& cap);
// Appends the plan's arrays to hb (16-byte aligned regions of the given capacities; offsets kept in the plan).
size_t attn_plan_layout(AttnPlan* plan, const AttnCaps& cap, std::vector<unsigned char>& hb);
size_t attn_part_bytes(const AttnPlan& plan, size_t slots);
// Device pointers: base = device copy of the blob attn_plan_layout appended to (at its offsets), part =
// attn_part_bytes(plan, slots) bytes for the partial states.
void attn_plan_bind(AttnPlan* plan, const unsigned char* base, void* part, size_t slots);
// attn_views: layout with exact capacities into the plan's own stream-ordered allocations.
hwkv_status attn_plan_upload(const char* fn, AttnPlan* plan);

// Builds the plan of an already validated batch (live blocks, each at most once per view; n_head a positive
// multiple of the store's n_kv_head; q_pos given): host arrays only (see attn_plan_upload / layout / bind).
hwkv_status attn_plan_build(const char* fn, const hwkv_store* s, const RopeHost& rope, const hwkv_attn_batch& bt,
                            int32_t n_head, AttnPlan* plan);

// Runs a plan for one layer: q rows on the device with q_ld floats between rows ([n_head, D] each, un-rotated),
// out[n_q, n_head, Dv] on the device (contiguous), lse[n_q, n_head] on the device or NULL. Asynchronous on
// stream(); no synchronisation.
hwkv_status attn_plan_run(const char* fn, const hwkv_store* s, const AttnPlan& plan, int32_t layer, const float* q,
                          int64_t q_ld, float scale, float* out, float* lse);

}  // namespace hwkv_cuda

#endif
