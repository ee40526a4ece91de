// attn.h — Hogwild! attention over block views with query rotation (CPU).
//
// Semantics: hwkv.h, hwkv_api::attn_views. Design: blocks outermost. A plan groups, for every distinct block of
// the batch, the (query row, loc = P - o_j) pairs ("items") that see it, sorted by visible key count
// (descending), and cuts the work into tasks:
//
//   task = (block, chunk of up to kAttnRowChunk items, key range [k0, k1) of whole pages)  x  KV head
//
// A task streams its pages of ONE KV head once and runs every query of the chunk against them: all query heads
// of the GQA group of all items (so a prompt block shared by all Hogwild! workers is read once per decode step,
// for every worker, every head of the group). Its online-softmax state (m, l, acc[head_dim_v]) per query is a
// partial result; partials of the same (row, head) from different blocks / key ranges are combined afterwards by
// a log-sum-exp merge. Key ranges are split only when the batch has too few (item chunk x KV head) tasks to
// keep the threads busy (decode of one or a few rows at long context), so ONE decode row uses every thread. The
// decomposition depends on the batch and the store geometry only, never on the thread count, so results are
// bitwise identical for every pool size (and between the serial ABI path and the engine).
//
// Engine use (one plan per forward step, reused by every layer; scratch reused across steps):
//   AttnPlan plan;  AttnScratch scratch;
//   HWKV_TRY(plan.build(store, rope, batch));            // validates the batch, precomputes cos/sin per item
//   for (layer ...) HWKV_TRY(attn_run(store, plan, layer, q, n_head, scale, out, lse, pool, &scratch));
// attn_run does not allocate once the scratch has grown to the step's size.
#ifndef HWKV_CORE_ATTN_H
#define HWKV_CORE_ATTN_H

#include <cstdint>
#include <vector>

#include "common.h"
#include "kernels/threadpool.h"
#include "rope.h"
#include "store.h"

namespace hwkv {

constexpr int64_t kAttnRowChunk = 32;    // items per task (queries per task = items x GQA group)
constexpr int64_t kAttnTargetTasks = 64; // split keys while (item chunk x KV head) tasks are fewer than this
constexpr int64_t kAttnMinKeys = 512;    // never split a block's keys into ranges shorter than this

class AttnPlan {
 public:
  // Validates batch against the store (live blocks, no block twice in a view, monotone indptrs starting at 0)
  // and against rope (head_dim must match the store). Keeps a copy of rope. Reuses its buffers across builds.
  hwkv_status build(const BlockStore& s, const Rope& rope, const hwkv_attn_batch& batch);

  struct Item {
    int32_t row;   // query row
    int32_t nvis;  // visible keys of the block: min(len, loc + 1) >= 1
    int64_t loc;   // P - o_j >= 0: rotation of the query for this block
  };
  struct BlockWork {
    int32_t block;
    int32_t len;
    int64_t item_begin, item_end;  // range of items(), sorted by nvis descending
  };
  struct Task {
    int32_t work;        // index into blocks()
    int32_t k0, k1;      // key range [k0, k1) of the block; k0 is a multiple of page_tokens
    int64_t i0, i1;      // items [i0, i1): every one sees at least one key of the range (nvis > k0)
    int64_t rec0;        // records rec0 .. rec0 + (i1 - i0) - 1, one per item
  };
  int64_t n_q() const { return n_q_; }
  int32_t n_kv_head() const { return nkv_; }
  const Rope& rope() const { return rope_; }
  const std::vector<BlockWork>& blocks() const { return work_; }
  const std::vector<Item>& items() const { return items_; }
  const std::vector<Task>& tasks() const { return tasks_; }
  const RopeTable& table() const { return table_; }  // cos/sin per item
  // Partial results: record r holds one (row, block, key range) partial for every head of the row. The first
  // record of a row lives in the output row itself (rec_extra(r) == -1), the others in extra slots
  // 0 .. n_extra()-1; a row's extra slots are [row_extra_begin(row), row_extra_end(row)) (merge order).
  int64_t rec_extra(int64_t r) const { return rec_extra_[static_cast<size_t>(r)]; }
  int64_t n_extra() const { return n_extra_; }
  int64_t max_task_items() const { return max_task_items_; }  // sizes the per-thread scratch
  int32_t row_records(int64_t row) const { return row_nrec_[static_cast<size_t>(row)]; }
  int64_t row_extra_begin(int64_t row) const { return row_x_ptr_[static_cast<size_t>(row)]; }
  int64_t row_extra_end(int64_t row) const { return row_x_ptr_[static_cast<size_t>(row) + 1]; }

 private:
  Rope rope_;
  int64_t n_q_ = 0;
  int32_t nkv_ = 1;
  std::vector<BlockWork> work_;
  std::vector<Item> items_;
  std::vector<Task> tasks_;
  RopeTable table_;
  std::vector<int64_t> rec_extra_, row_x_ptr_;
  std::vector<int32_t> row_nrec_, row_fill_;
  int64_t n_extra_ = 0, max_task_items_ = 0;
  // build temporaries (kept to avoid reallocating every step)
  std::vector<int32_t> seen_, work_of_;
  std::vector<int64_t> count_, locs_;
  std::vector<Item> tmp_items_;
};

// Reusable buffers of attn_run (grow-only; members are internal to attn.cpp). One per concurrent caller.
struct AttnScratch {
  int64_t bytes() const;

  struct PerThread {
    std::vector<float> qr, acc, m, l, s, kbuf, vbuf;
  };
  std::vector<float> m_, l_;               // [n_q, n_head] state of each row's first record
  std::vector<float> xacc_, xm_, xl_;      // extra records [n_extra, n_head, (head_dim_v)]
  std::vector<PerThread> th_;
};

// One layer: q[n_q, n_head, head_dim] -> out[n_q, n_head, head_dim_v], lse[n_q, n_head] (may be null).
// pool == nullptr runs on the calling thread; scratch == nullptr uses a temporary one (allocates).
hwkv_status attn_run(const BlockStore& s, const AttnPlan& plan, int32_t layer, const float* q, int32_t n_head, float scale,
                     float* out, float* lse, ThreadPool* pool = nullptr, AttnScratch* scratch = nullptr);

// The ABI operation: build + run on the process-wide default pool, with a per-calling-thread plan and scratch
// (kept between calls, released after a call that needed more than 64 MiB of scratch).
hwkv_status attn_views(const BlockStore& s, int32_t layer, const Rope& rope, const hwkv_attn_batch& batch, const float* q,
                       int32_t n_head, float scale, float* out, float* lse);

}  // namespace hwkv

#endif
