// attn.cpp — attention over views: plan (items, tasks, partial records), parallel run with a log-sum-exp merge,
// and the scalar online-softmax tile kernel (the portable reference).
#include "attn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "dispatch.h"

namespace hwkv {

namespace {
constexpr int64_t kTileQ = 64;          // queries per attn_tile call (bounds the score scratch to kTileQ * page_tokens)
constexpr int64_t kMergeFloats = 1 << 16;  // merge/normalise serially below this many output floats

template <class T>
inline T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}
}  // namespace

void attn_tile_scalar(const float* q, int64_t nq, const float* K, const float* V, int64_t n, int32_t d, int32_t dv,
                      float scale, float* m, float* l, float* acc, float* s, const AttnPrefetch*) {
  for (int64_t j = 0; j < nq; ++j, q += d, acc += dv) {
    float mt = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < n; ++t) {
      const float* k = K + t * d;
      float dot = 0.f;
      for (int32_t i = 0; i < d; ++i) dot += q[i] * k[i];
      s[t] = scale * dot;
      mt = std::max(mt, s[t]);
    }
    if (mt > m[j]) {
      const float alpha = std::exp(m[j] - mt);  // 0 when m = -inf
      l[j] *= alpha;
      for (int32_t i = 0; i < dv; ++i) acc[i] *= alpha;
      m[j] = mt;
    }
    const float mm = m[j];
    float sum = 0.f;
    for (int64_t t = 0; t < n; ++t) {
      s[t] = std::exp(s[t] - mm);
      sum += s[t];
    }
    l[j] += sum;
    for (int64_t t = 0; t < n; ++t) {
      const float p = s[t];
      const float* vt = V + t * dv;
      for (int32_t i = 0; i < dv; ++i) acc[i] += p * vt[i];
    }
  }
}

// ------------------------------------------------------------------------------------------------
// plan
// ------------------------------------------------------------------------------------------------
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
  seen_.assign(static_cast<size_t>(s.block_id_limit()), -1);  // last sequence that listed the block
  work_of_.assign(static_cast<size_t>(s.block_id_limit()), -1);
  work_.clear();
  for (int32_t q = 0; q < b.n_seq; ++q) {
    for (int32_t e = b.view_indptr[q]; e < b.view_indptr[q + 1]; ++e) {
      const int32_t blk = b.view_blocks[e];
      if (!s.is_live(blk))
        return fail(HWKV_ERR_OUT_OF_RANGE, "%s: sequence %d, view entry %d: block %d is not a live block (store has %d live blocks)",
                    fn, q, e - b.view_indptr[q], blk, s.live_blocks());
      if (seen_[blk] == q)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sequence %d lists block %d more than once in its view", fn, q, blk);
      seen_[blk] = q;
      if (work_of_[blk] < 0) {
        work_of_[blk] = static_cast<int32_t>(work_.size());
        work_.push_back(BlockWork{blk, s.len(blk), 0, 0});
      }
    }
  }

  // Count items per block, then fill (counting sort by block).
  count_.assign(work_.size() + 1, 0);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      int64_t acc = 0;
      for (size_t w = 0; w < work_.size(); ++w) {
        work_[w].item_begin = work_[w].item_end = acc;
        acc += count_[w];
      }
      tmp_items_.resize(static_cast<size_t>(acc));
    }
    for (int32_t q = 0; q < b.n_seq; ++q) {
      int64_t o = 0;
      for (int32_t e = b.view_indptr[q]; e < b.view_indptr[q + 1]; ++e) {
        const int32_t blk = b.view_blocks[e];
        const int32_t w = work_of_[blk];
        const int64_t len = work_[w].len;
        if (len > 0) {
          for (int32_t r = b.q_indptr[q]; r < b.q_indptr[q + 1]; ++r) {
            const int64_t loc = int64_t(b.q_pos[r]) - o;
            if (loc < 0) continue;
            if (pass == 0) {
              ++count_[w];
            } else {
              tmp_items_[static_cast<size_t>(work_[w].item_end++)] =
                  Item{r, static_cast<int32_t>(std::min<int64_t>(len, loc + 1)), loc};
            }
          }
        }
        o += len;
      }
    }
  }
  // Drop blocks nobody sees; compact the items of the others. Within a block, most visible keys first (a row
  // sees a block at most once, so (nvis desc, row asc) is a strict order: deterministic).
  items_.clear();
  {
    size_t kept = 0;
    for (size_t w = 0; w < work_.size(); ++w) {
      BlockWork bw = work_[w];
      if (bw.item_begin == bw.item_end) continue;
      const int64_t b0 = static_cast<int64_t>(items_.size());
      items_.insert(items_.end(), tmp_items_.begin() + bw.item_begin, tmp_items_.begin() + bw.item_end);
      std::sort(items_.begin() + b0, items_.end(),
                [](const Item& x, const Item& y) { return x.nvis != y.nvis ? x.nvis > y.nvis : x.row < y.row; });
      bw.item_begin = b0;
      bw.item_end = static_cast<int64_t>(items_.size());
      work_[kept++] = bw;
    }
    work_.resize(kept);
  }

  rope_ = rope;
  n_q_ = n_q;
  nkv_ = s.n_kv_head();
  locs_.resize(items_.size());
  for (size_t i = 0; i < items_.size(); ++i) locs_[i] = items_[i].loc;
  table_.build(rope_, locs_.data(), static_cast<int64_t>(locs_.size()));

  // Tasks. Key ranges are split only when (item chunks x KV heads) gives fewer than kAttnTargetTasks tasks: then
  // every range holds about (sum over chunks of their visible keys) * n_kv_head / kAttnTargetTasks keys (at least
  // kAttnMinKeys, whole pages).
  const int64_t pt = s.page_tokens();
  int64_t n_chunks = 0, sum_vis = 0;
  for (const BlockWork& w : work_)
    for (int64_t i0 = w.item_begin; i0 < w.item_end; i0 += kAttnRowChunk) {
      ++n_chunks;
      sum_vis += items_[static_cast<size_t>(i0)].nvis;
    }
  int64_t key_len = std::numeric_limits<int32_t>::max();
  if (n_chunks * nkv_ < kAttnTargetTasks) {
    key_len = std::max<int64_t>(kAttnMinKeys, ceil_div(sum_vis * nkv_, kAttnTargetTasks));
    key_len = ceil_div(key_len, pt) * pt;
  }
  tasks_.clear();
  max_task_items_ = 0;
  int64_t n_rec = 0;
  for (size_t w = 0; w < work_.size(); ++w) {
    const BlockWork& bw = work_[w];
    for (int64_t i0 = bw.item_begin; i0 < bw.item_end; i0 += kAttnRowChunk) {
      const int64_t i1 = std::min<int64_t>(bw.item_end, i0 + kAttnRowChunk);
      const int64_t maxvis = items_[static_cast<size_t>(i0)].nvis;
      int64_t cut = i1;  // items [i0, cut) have nvis > k0; shrinks as k0 grows (nvis descending)
      for (int64_t k0 = 0; k0 < maxvis; k0 += key_len) {
        while (cut > i0 && items_[static_cast<size_t>(cut - 1)].nvis <= k0) --cut;
        const int64_t k1 = std::min<int64_t>(maxvis, k0 + key_len);
        tasks_.push_back(Task{static_cast<int32_t>(w), static_cast<int32_t>(k0), static_cast<int32_t>(k1), i0, cut, n_rec});
        n_rec += cut - i0;
        max_task_items_ = std::max(max_task_items_, cut - i0);
      }
    }
  }

  // Records -> first record of a row in the output row, the others in extra slots (contiguous per row).
  row_nrec_.assign(static_cast<size_t>(n_q), 0);
  for (const Task& t : tasks_)
    for (int64_t i = t.i0; i < t.i1; ++i) ++row_nrec_[static_cast<size_t>(items_[static_cast<size_t>(i)].row)];
  row_x_ptr_.resize(static_cast<size_t>(n_q) + 1);
  row_x_ptr_[0] = 0;
  for (int32_t r = 0; r < n_q; ++r) row_x_ptr_[r + 1] = row_x_ptr_[r] + std::max(0, row_nrec_[r] - 1);
  n_extra_ = row_x_ptr_[static_cast<size_t>(n_q)];
  rec_extra_.resize(static_cast<size_t>(n_rec));
  row_fill_.assign(static_cast<size_t>(n_q), 0);  // records of the row placed so far
  for (const Task& t : tasks_) {
    for (int64_t i = t.i0; i < t.i1; ++i) {
      const int32_t row = items_[static_cast<size_t>(i)].row;
      const int64_t k = row_fill_[static_cast<size_t>(row)]++;
      rec_extra_[static_cast<size_t>(t.rec0 + (i - t.i0))] = k == 0 ? -1 : row_x_ptr_[static_cast<size_t>(row)] + k - 1;
    }
  }
  return HWKV_OK;
}

int64_t AttnScratch::bytes() const {
  size_t n = m_.capacity() + l_.capacity() + xacc_.capacity() + xm_.capacity() + xl_.capacity();
  for (const PerThread& t : th_)
    n += t.qr.capacity() + t.acc.capacity() + t.m.capacity() + t.l.capacity() + t.s.capacity() + t.kbuf.capacity() +
         t.vbuf.capacity();
  return static_cast<int64_t>(n * sizeof(float));
}

// ------------------------------------------------------------------------------------------------
// run
// ------------------------------------------------------------------------------------------------
struct AttnRunner {
  const BlockStore& s;
  const AttnPlan& plan;
  AttnScratch& sc;
  const Kernels& kr;
  int32_t layer, n_head, nkv, group, hd, hdv, pt;
  float scale;
  const float* q;
  float* out;
  float* lse;

  // The next page's K/V rows of this head, as a prefetch hint for the tile kernel (pages are separate
  // allocations: the hardware prefetchers only pick a page's stream up after its first misses). The kernel spreads
  // the prefetches over its arithmetic, so the next page streams in while this one is computed.
  AttnPrefetch next_page(int32_t block, int32_t page, int32_t kvh, int64_t n) const {
    const int64_t es = static_cast<int64_t>(s.elem_size());
    AttnPrefetch pf;
    pf.k = static_cast<const char*>(s.k_page(block, page, layer, kvh));
    pf.k_bytes = n * hd * es;
    pf.v = static_cast<const char*>(s.v_page(block, page, layer, kvh));
    pf.v_bytes = n * hdv * es;
    return pf;
  }

  static void prefetch_now(const char* p, int64_t bytes) {
#if defined(__GNUC__) || defined(__clang__)
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 2);
#else
    (void)p, (void)bytes;
#endif
  }

  // Job = (task, KV head): partial attention of the task's items, every head of the group, over its key range.
  void job(int64_t j, int thread) {
    const AttnPlan::Task& T = plan.tasks()[static_cast<size_t>(j / nkv)];
    const int32_t kvh = static_cast<int32_t>(j % nkv);
    const AttnPlan::BlockWork& W = plan.blocks()[static_cast<size_t>(T.work)];
    const AttnPlan::Item* items = plan.items().data();
    const Rope& rope = plan.rope();
    const RopeTable& table = plan.table();
    AttnScratch::PerThread& b = sc.th_[static_cast<size_t>(thread)];
    float* qr = b.qr.data();
    float* acc = b.acc.data();
    float* m = b.m.data();
    float* l = b.l.data();
    const int64_t ni = T.i1 - T.i0, nq = ni * group;
    const int64_t h0 = int64_t(kvh) * group;  // first query head of the group

    for (int64_t i = T.i0; i < T.i1; ++i) {  // the group's query heads, rotated by the item's loc
      float* dst = qr + (i - T.i0) * group * hd;
      std::memcpy(dst, q + (int64_t(items[i].row) * n_head + h0) * hd, sizeof(float) * size_t(group) * hd);
      rope_rotate(rope, dst, group, hd, table.cos(i), table.sin(i));
    }
    std::fill(m, m + nq, -std::numeric_limits<float>::infinity());
    std::fill(l, l + nq, 0.f);
    std::fill(acc, acc + nq * hdv, 0.f);

    const int64_t kend = std::min<int64_t>(T.k1, items[T.i0].nvis);
    for (int64_t t0 = T.k0; t0 < kend; t0 += pt) {
      const int32_t page = static_cast<int32_t>(t0 / pt);
      const int32_t n_page = static_cast<int32_t>(std::min<int64_t>(pt, kend - t0));
      if (t0 == T.k0) {  // the job's first page: nothing to overlap with yet, so fetch it all at once
        const AttnPrefetch f0 = next_page(W.block, page, kvh, n_page);
        prefetch_now(f0.k, f0.k_bytes);
        prefetch_now(f0.v, f0.v_bytes);
      }
      AttnPrefetch pf;
      if (t0 + pt < kend) pf = next_page(W.block, page + 1, kvh, std::min<int64_t>(pt, kend - t0 - pt));
      const AttnPrefetch* pfp = t0 + pt < kend ? &pf : nullptr;  // given to the page's first kernel call only
      const float* K = s.k_rows_f32(W.block, page, layer, kvh, 0, n_page, b.kbuf.data());
      const float* V = s.v_rows_f32(W.block, page, layer, kvh, 0, n_page, b.vbuf.data());
      // Items are sorted by nvis (descending): runs of equal visible counts share one kernel call.
      for (int64_t i = T.i0; i < T.i1;) {
        const int64_t n = std::min<int64_t>(n_page, items[i].nvis - t0);
        if (n <= 0) break;
        int64_t e = i + 1;
        while (e < T.i1 && std::min<int64_t>(n_page, items[e].nvis - t0) == n) ++e;
        const int64_t q0 = (i - T.i0) * group, cnt = (e - i) * group;
        for (int64_t a = 0; a < cnt; a += kTileQ) {
          const int64_t c = std::min<int64_t>(kTileQ, cnt - a);
          kr.attn_tile(qr + (q0 + a) * hd, c, K, V, n, hd, hdv, scale, m + q0 + a, l + q0 + a, acc + (q0 + a) * hdv,
                       b.s.data(), pfp);
          pfp = nullptr;
        }
        i = e;
      }
    }

    for (int64_t i = T.i0; i < T.i1; ++i) {  // store the partial states
      const int64_t x = plan.rec_extra(T.rec0 + (i - T.i0));
      const int64_t row = items[i].row;
      float *da, *dm, *dl;
      if (x < 0) {
        da = out + (row * n_head + h0) * hdv;
        dm = sc.m_.data() + row * n_head + h0;
        dl = sc.l_.data() + row * n_head + h0;
      } else {
        da = sc.xacc_.data() + (x * n_head + h0) * hdv;
        dm = sc.xm_.data() + x * n_head + h0;
        dl = sc.xl_.data() + x * n_head + h0;
      }
      const int64_t o = (i - T.i0) * group;
      std::memcpy(da, acc + o * hdv, sizeof(float) * size_t(group) * hdv);
      std::memcpy(dm, m + o, sizeof(float) * size_t(group));
      std::memcpy(dl, l + o, sizeof(float) * size_t(group));
    }
  }

  // Rows [r0, r1): log-sum-exp merge of each (row, head)'s partials, normalisation, lse.
  void merge(int64_t r0, int64_t r1) {
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t nrec = plan.row_records(r);
      const int64_t xb = plan.row_extra_begin(r), xe = plan.row_extra_end(r);
      for (int32_t h = 0; h < n_head; ++h) {
        const int64_t sh = r * n_head + h;
        float* o = out + sh * hdv;
        float M = nrec > 0 ? sc.m_[static_cast<size_t>(sh)] : ninf;
        float L = nrec > 0 ? sc.l_[static_cast<size_t>(sh)] : 0.f;
        if (xb != xe) {
          float Mx = M;
          for (int64_t x = xb; x < xe; ++x) Mx = std::max(Mx, sc.xm_[static_cast<size_t>(x * n_head + h)]);
          if (Mx == ninf) {
            L = 0.f;
          } else {
            const float a0 = std::exp(M - Mx);
            L *= a0;
            for (int32_t i = 0; i < hdv; ++i) o[i] *= a0;
            for (int64_t x = xb; x < xe; ++x) {
              const int64_t xs = x * n_head + h;
              const float a = std::exp(sc.xm_[static_cast<size_t>(xs)] - Mx);
              L += a * sc.xl_[static_cast<size_t>(xs)];
              const float* src = sc.xacc_.data() + xs * hdv;
              for (int32_t i = 0; i < hdv; ++i) o[i] += a * src[i];
            }
            M = Mx;
          }
        }
        if (L > 0.f) {
          for (int32_t i = 0; i < hdv; ++i) o[i] /= L;
          if (lse) lse[sh] = M + std::log(L);
        } else {
          std::fill(o, o + hdv, 0.f);
          if (lse) lse[sh] = ninf;
        }
      }
    }
  }
};

hwkv_status attn_run(const BlockStore& s, const AttnPlan& plan, int32_t layer, const float* q, int32_t n_head, float scale,
                     float* out, float* lse, ThreadPool* pool, AttnScratch* scratch) {
  const char* fn = "attn_views";
  if (layer < 0 || layer >= s.n_layer())
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: layer %d is out of range (store has %d layers)", fn, layer, s.n_layer());
  const int32_t nkv = s.n_kv_head();
  if (n_head < 1 || n_head % nkv != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_head (%d) must be a positive multiple of the store's n_kv_head (%d)", fn,
                n_head, nkv);
  if (plan.n_kv_head() != nkv)
    return fail(HWKV_ERR_INTERNAL, "%s: the plan was built for %d KV heads, the store has %d", fn, plan.n_kv_head(), nkv);
  const int64_t n_q = plan.n_q();
  if (n_q == 0) return HWKV_OK;
  if (!q) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: q is NULL", fn);
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);

  std::unique_ptr<AttnScratch> own;
  if (!scratch) {
    own.reset(new AttnScratch());
    scratch = own.get();
  }
  AttnRunner R{s, plan, *scratch, kernels(), layer, n_head, nkv, n_head / nkv, s.head_dim(), s.head_dim_v(),
               s.page_tokens(), scale, q, out, lse};
  AttnScratch& sc = *scratch;
  const int n_threads = pool ? pool->size() : 1;
  const size_t group = static_cast<size_t>(R.group), hd = static_cast<size_t>(R.hd), hdv = static_cast<size_t>(R.hdv),
               pt = static_cast<size_t>(R.pt), chunk_q = static_cast<size_t>(plan.max_task_items()) * group;
  const bool f16 = s.dtype() == HWKV_F16;
  // Scratch (grow-only: no allocation once warm).
  grow(sc.m_, static_cast<size_t>(n_q * n_head));
  grow(sc.l_, static_cast<size_t>(n_q * n_head));
  grow(sc.xacc_, static_cast<size_t>(plan.n_extra() * n_head) * hdv);
  grow(sc.xm_, static_cast<size_t>(plan.n_extra() * n_head));
  grow(sc.xl_, static_cast<size_t>(plan.n_extra() * n_head));
  if (sc.th_.size() < static_cast<size_t>(n_threads)) sc.th_.resize(static_cast<size_t>(n_threads));
  for (int t = 0; t < n_threads; ++t) {
    AttnScratch::PerThread& b = sc.th_[static_cast<size_t>(t)];
    grow(b.qr, chunk_q * hd);
    grow(b.acc, chunk_q * hdv);
    grow(b.m, chunk_q);
    grow(b.l, chunk_q);
    grow(b.s, std::min<size_t>(chunk_q, kTileQ) * pt);
    if (f16) {
      grow(b.kbuf, pt * hd);
      grow(b.vbuf, pt * hdv);
    }
  }

  const int64_t n_jobs = static_cast<int64_t>(plan.tasks().size()) * nkv;
  if (pool && n_threads > 1 && n_jobs > 1) {
    pool->parallel_for(n_jobs, [&R](int64_t j, int t) { R.job(j, t); });
  } else {
    for (int64_t j = 0; j < n_jobs; ++j) R.job(j, 0);
  }
  // Rows without a partial keep whatever out held: merge writes them (zeros, lse -inf).
  const int64_t work = n_q * n_head * R.hdv;
  if (pool && n_threads > 1 && work > kMergeFloats) {
    const int64_t n_parts = std::min<int64_t>(n_q, int64_t(n_threads) * 4);
    pool->parallel_for(n_parts, [&R, n_q, n_parts](int64_t p, int) { R.merge(n_q * p / n_parts, n_q * (p + 1) / n_parts); });
  } else {
    R.merge(0, n_q);
  }
  return HWKV_OK;
}

hwkv_status attn_views(const BlockStore& s, int32_t layer, const Rope& rope, const hwkv_attn_batch& batch, const float* q,
                       int32_t n_head, float scale, float* out, float* lse) {
  struct State {
    AttnPlan plan;
    AttnScratch scratch;
  };
  static thread_local std::unique_ptr<State> state;
  if (!state) state.reset(new State());
  hwkv_status st = state->plan.build(s, rope, batch);
  if (st == HWKV_OK) st = attn_run(s, state->plan, layer, q, n_head, scale, out, lse, &default_pool(), &state->scratch);
  if (state->scratch.bytes() > (int64_t(64) << 20)) state.reset();  // do not pin a one-off large scratch
  return st;
}

}  // namespace hwkv
