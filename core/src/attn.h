// attn.h — Hogwild! attention over block views with query rotation (CPU).
//
// Semantics: hwkv.h, hwkv_api::attn_views. Design: blocks outermost. A plan groups, for every distinct block of
// the batch, the (query row, loc = P - o_j) pairs that see it; the run streams each block's pages once per chunk
// of up to kAttnRowChunk such pairs (so a prompt block shared by all workers is read once per decode step), and
// for each (block, KV head, page) updates the online-softmax state (m, l, acc[head_dim_v]) of every query head of
// the GQA group. The KV-head loop is the unit of future parallelism: states of different KV heads are disjoint.
//
// Engine use (one plan per forward step, reused by every layer):
//   AttnPlan plan;
//   HWKV_TRY(plan.build(store, rope, batch));            // validates the batch, precomputes cos/sin per pair
//   for (layer ...) HWKV_TRY(attn_run(store, plan, layer, q, n_head, scale, out, lse));
#ifndef HWKV_CORE_ATTN_H
#define HWKV_CORE_ATTN_H

#include <cstdint>
#include <vector>

#include "common.h"
#include "rope.h"
#include "store.h"

namespace hwkv {

constexpr int64_t kAttnRowChunk = 32;

class AttnPlan {
 public:
  // Validates batch against the store (live blocks, no block twice in a view, monotone indptrs starting at 0)
  // and against rope (head_dim must match the store). Keeps a copy of rope.
  hwkv_status build(const BlockStore& s, const Rope& rope, const hwkv_attn_batch& batch);

  struct Item {
    int32_t row;   // query row
    int32_t nvis;  // visible keys of the block: min(len, loc + 1) >= 1
    int64_t loc;   // P - o_j >= 0: rotation of the query for this block
  };
  struct BlockWork {
    int32_t block;
    int32_t len;
    int64_t item_begin, item_end;  // range of items()
  };
  int64_t n_q() const { return n_q_; }
  const Rope& rope() const { return rope_; }
  const std::vector<BlockWork>& blocks() const { return work_; }
  const std::vector<Item>& items() const { return items_; }
  const RopeTable& table() const { return table_; }  // cos/sin per item

 private:
  Rope rope_;
  int64_t n_q_ = 0;
  std::vector<BlockWork> work_;
  std::vector<Item> items_;
  RopeTable table_;
};

// One layer: q[n_q, n_head, head_dim] -> out[n_q, n_head, head_dim_v], lse[n_q, n_head] (may be null).
hwkv_status attn_run(const BlockStore& s, const AttnPlan& plan, int32_t layer, const float* q, int32_t n_head, float scale,
                     float* out, float* lse);

// The ABI operation: build + run.
hwkv_status attn_views(const BlockStore& s, int32_t layer, const Rope& rope, const hwkv_attn_batch& batch, const float* q,
                       int32_t n_head, float scale, float* out, float* lse);

}  // namespace hwkv

#endif
