// attn.cpp — attention over views: plan, run, and the scalar online-softmax tile kernel.
#include "attn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "dispatch.h"

namespace hwkv {

void attn_tile_scalar(const float* q, const float* K, const float* V, int64_t n, int32_t d, int32_t dv, float scale,
                      float* m, float* l, float* acc, float* s) {
  float mt = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n; ++t) {
    const float* k = K + t * d;
    float dot = 0.f;
    for (int32_t i = 0; i < d; ++i) dot += q[i] * k[i];
    s[t] = scale * dot;
    mt = std::max(mt, s[t]);
  }
  if (mt > *m) {
    const float alpha = std::exp(*m - mt);  // 0 when *m = -inf
    *l *= alpha;
    for (int32_t i = 0; i < dv; ++i) acc[i] *= alpha;
    *m = mt;
  }
  const float mm = *m;
  float sum = 0.f;
  for (int64_t t = 0; t < n; ++t) {
    s[t] = std::exp(s[t] - mm);
    sum += s[t];
  }
  *l += sum;
  for (int64_t t = 0; t < n; ++t) {
    const float p = s[t];
    const float* vt = V + t * dv;
    for (int32_t i = 0; i < dv; ++i) acc[i] += p * vt[i];
  }
}

hwkv_status AttnPlan::build(const BlockStore& s, const Rope& rope, const hwkv_attn_batch& b) {
  const char* fn = "attn_views";
  if (rope.head_dim != s.head_dim())
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope head_dim (%d) differs from the store's head_dim (%d)", fn, rope.head_dim,
                s.head_dim());
  if (b.n_seq < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch n_seq must be >= 1, got %d", fn, b.n_seq);
  if (!b.view_indptr) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch view_indptr is NULL", fn);
  if (!b.q_indptr) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch q_indptr is NULL", fn);
  if (b.view_indptr[0] != 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: view_indptr[0] must be 0, got %d", fn, b.view_indptr[0]);
  if (b.q_indptr[0] != 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: q_indptr[0] must be 0, got %d", fn, b.q_indptr[0]);
  for (int32_t i = 0; i < b.n_seq; ++i) {
    if (b.view_indptr[i + 1] < b.view_indptr[i])
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: view_indptr must be non-decreasing (view_indptr[%d] = %d < view_indptr[%d] = %d)",
                  fn, i + 1, b.view_indptr[i + 1], i, b.view_indptr[i]);
    if (b.q_indptr[i + 1] < b.q_indptr[i])
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: q_indptr must be non-decreasing (q_indptr[%d] = %d < q_indptr[%d] = %d)", fn,
                  i + 1, b.q_indptr[i + 1], i, b.q_indptr[i]);
  }
  const int32_t n_entries = b.view_indptr[b.n_seq];
  const int32_t n_q = b.q_indptr[b.n_seq];
  if (n_entries > 0 && !b.view_blocks) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch view_blocks is NULL", fn);
  if (n_q > 0 && !b.q_pos) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch q_pos is NULL", fn);

  // Validate views; map block id -> work index (order of first appearance).
  std::vector<int32_t> seen(static_cast<size_t>(s.block_id_limit()), -1);  // last sequence that listed the block
  std::vector<int32_t> work_of(static_cast<size_t>(s.block_id_limit()), -1);
  work_.clear();
  for (int32_t q = 0; q < b.n_seq; ++q) {
    for (int32_t e = b.view_indptr[q]; e < b.view_indptr[q + 1]; ++e) {
      const int32_t blk = b.view_blocks[e];
      if (!s.is_live(blk))
        return fail(HWKV_ERR_OUT_OF_RANGE, "%s: sequence %d, view entry %d: block %d is not a live block (store has %d live blocks)",
                    fn, q, e - b.view_indptr[q], blk, s.live_blocks());
      if (seen[blk] == q)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sequence %d lists block %d more than once in its view", fn, q, blk);
      seen[blk] = q;
      if (work_of[blk] < 0) {
        work_of[blk] = static_cast<int32_t>(work_.size());
        work_.push_back(BlockWork{blk, s.len(blk), 0, 0});
      }
    }
  }

  // Count items per block, then fill (counting sort by block).
  std::vector<int64_t> count(work_.size() + 1, 0);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      int64_t acc = 0;
      for (size_t w = 0; w < work_.size(); ++w) {
        work_[w].item_begin = work_[w].item_end = acc;
        acc += count[w];
      }
      items_.resize(static_cast<size_t>(acc));
    }
    for (int32_t q = 0; q < b.n_seq; ++q) {
      int64_t o = 0;
      for (int32_t e = b.view_indptr[q]; e < b.view_indptr[q + 1]; ++e) {
        const int32_t blk = b.view_blocks[e];
        const int32_t w = work_of[blk];
        const int64_t len = work_[w].len;
        if (len > 0) {
          for (int32_t r = b.q_indptr[q]; r < b.q_indptr[q + 1]; ++r) {
            const int64_t loc = int64_t(b.q_pos[r]) - o;
            if (loc < 0) continue;
            if (pass == 0) {
              ++count[w];
            } else {
              items_[static_cast<size_t>(work_[w].item_end++)] =
                  Item{r, static_cast<int32_t>(std::min<int64_t>(len, loc + 1)), loc};
            }
          }
        }
        o += len;
      }
    }
  }
  // Drop blocks nobody sees.
  work_.erase(std::remove_if(work_.begin(), work_.end(), [](const BlockWork& w) { return w.item_begin == w.item_end; }),
              work_.end());

  rope_ = rope;
  n_q_ = n_q;
  std::vector<int64_t> locs(items_.size());
  for (size_t i = 0; i < items_.size(); ++i) locs[i] = items_[i].loc;
  table_.build(rope_, locs.data(), static_cast<int64_t>(locs.size()));
  return HWKV_OK;
}

hwkv_status attn_run(const BlockStore& s, const AttnPlan& plan, int32_t layer, const float* q, int32_t n_head, float scale,
                     float* out, float* lse) {
  const char* fn = "attn_views";
  if (layer < 0 || layer >= s.n_layer())
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: layer %d is out of range (store has %d layers)", fn, layer, s.n_layer());
  const int32_t nkv = s.n_kv_head();
  if (n_head < 1 || n_head % nkv != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_head (%d) must be a positive multiple of the store's n_kv_head (%d)", fn,
                n_head, nkv);
  const int64_t n_q = plan.n_q();
  if (n_q == 0) return HWKV_OK;
  if (!q) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: q is NULL", fn);
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);

  const Kernels& kr = kernels();
  const int32_t hd = s.head_dim(), hdv = s.head_dim_v(), pt = s.page_tokens();
  const int32_t group = n_head / nkv;
  const Rope& rope = plan.rope();
  const RopeTable& table = plan.table();
  const float ninf = -std::numeric_limits<float>::infinity();

  std::vector<float> m(static_cast<size_t>(n_q * n_head), ninf), l(static_cast<size_t>(n_q * n_head), 0.f);
  std::vector<float> qr(static_cast<size_t>(kAttnRowChunk * n_head * hd));
  std::vector<float> scores(static_cast<size_t>(pt));
  const bool f16 = s.dtype() == HWKV_F16;
  std::vector<float> kbuf(f16 ? static_cast<size_t>(pt) * hd : 0), vbuf(f16 ? static_cast<size_t>(pt) * hdv : 0);
  std::fill(out, out + n_q * n_head * hdv, 0.f);

  const std::vector<AttnPlan::Item>& items = plan.items();
  for (const AttnPlan::BlockWork& w : plan.blocks()) {
    for (int64_t i0 = w.item_begin; i0 < w.item_end; i0 += kAttnRowChunk) {
      const int64_t i1 = std::min<int64_t>(w.item_end, i0 + kAttnRowChunk);
      int32_t maxvis = 0;
      for (int64_t i = i0; i < i1; ++i) {  // rotate the queries of this chunk by their loc
        const AttnPlan::Item& it = items[static_cast<size_t>(i)];
        float* dst = qr.data() + (i - i0) * n_head * hd;
        std::memcpy(dst, q + int64_t(it.row) * n_head * hd, sizeof(float) * size_t(n_head) * hd);
        rope_rotate(rope, dst, n_head, hd, table.cos(i), table.sin(i));
        maxvis = std::max(maxvis, it.nvis);
      }
      for (int32_t kvh = 0; kvh < nkv; ++kvh) {
        for (int32_t page = 0; int64_t(page) * pt < maxvis; ++page) {
          const int32_t t0 = page * pt;
          const int32_t n_page = std::min(pt, maxvis - t0);
          const float* K = s.k_rows_f32(w.block, page, layer, kvh, 0, n_page, kbuf.data());
          const float* V = s.v_rows_f32(w.block, page, layer, kvh, 0, n_page, vbuf.data());
          for (int64_t i = i0; i < i1; ++i) {
            const AttnPlan::Item& it = items[static_cast<size_t>(i)];
            if (it.nvis <= t0) continue;
            const int32_t n = std::min(n_page, it.nvis - t0);
            for (int32_t g = 0; g < group; ++g) {
              const int32_t h = kvh * group + g;
              const int64_t sh = int64_t(it.row) * n_head + h;
              kr.attn_tile(qr.data() + ((i - i0) * n_head + h) * hd, K, V, n, hd, hdv, scale, &m[sh], &l[sh], out + sh * hdv,
                           scores.data());
            }
          }
        }
      }
    }
  }

  for (int64_t sh = 0; sh < n_q * n_head; ++sh) {
    float* o = out + sh * hdv;
    if (l[sh] > 0.f) {
      const float inv = l[sh];
      for (int32_t i = 0; i < hdv; ++i) o[i] /= inv;
      if (lse) lse[sh] = m[sh] + std::log(l[sh]);
    } else {
      std::fill(o, o + hdv, 0.f);
      if (lse) lse[sh] = ninf;
    }
  }
  return HWKV_OK;
}

hwkv_status attn_views(const BlockStore& s, int32_t layer, const Rope& rope, const hwkv_attn_batch& batch, const float* q,
                       int32_t n_head, float scale, float* out, float* lse) {
  AttnPlan plan;
  HWKV_TRY(plan.build(s, rope, batch));
  return attn_run(s, plan, layer, q, n_head, scale, out, lse);
}

}  // namespace hwkv
