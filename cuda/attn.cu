// attn.cu — attention over views with per-(sequence, block) query rotation (Hogwild!), split-K, LSE merge.
//
// Plan (host, per call):
//   pair   = (query row i, block b of its view) with something visible: loc = P_i - o_b >= 0 and len_b > 0.
//            The query is rotated by R(loc) (cos/sin rows in double on the host, one per distinct loc).
//   rows   = for each distinct block b: its pairs x the GQA group (n_head / n_kv_head query heads per
//            kv head), so every query that sees b is a row of b, whichever sequence it belongs to.
//   chunks = each block's keys are split into chunks (split-K) when there are too few CTAs to fill the
//            GPU; every (pair, chunk) gets a slot holding a partial state (m, d, acc[Dv]).
// Kernel 1 (attn_partial_kernel): one CTA per (block chunk, row group of up to `rows` rows, kv head):
//   streams the chunk's K/V tiles of that kv head from the pages once, scores them against every row
//   (mask l <= loc), and keeps an online softmax per row; writes the partial state of each row's slot.
//   So a block shared by several sequences is read once per call for all of them (per row group).
// Kernel 2 (attn_merge_kernel): one CTA per (query row, head) merges the slots of all its pairs and
//   chunks by log-sum-exp: M = max m, d = sum d_s e^(m_s - M), out = sum acc_s e^(m_s - M) / d,
//   lse = M + log d (natural log), -inf and out = 0 when nothing is visible.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "attn.cuh"
#include "ops.cuh"
#include "rope.cuh"
#include "store.cuh"

namespace hwkv_cuda {

namespace {

constexpr int kKT = 32;        // keys per shared-memory tile (one per lane)
constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;

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

struct AttnArgs {
  PageGeo geo;
  RopeDev rd;
  int32_t layer;
  int32_t n_head;
  int32_t gqa;
  int32_t rows;     // rows per CTA (shared-memory capacity)
  int32_t kstride;  // odd row stride of the K tile
  float scale;
  int64_t q_ld;     // floats between consecutive query rows (n_head * D when contiguous)
  const WorkItem* items;
  const int32_t* blk_pairs;
  const int32_t* pair_row;
  const int32_t* pair_loc;
  const int32_t* pair_tab;
  const int32_t* pair_slot;
  const float* const* pages;
  const float* tab;
  const float* q;
  float* part_m;
  float* part_d;
  float* part_acc;
};

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

size_t attn_smem_bytes(int rows, int D, int Dv, int kstride) {
  return sizeof(float) * (static_cast<size_t>(rows) * D + static_cast<size_t>(kKT) * kstride +
                          static_cast<size_t>(kKT) * Dv + static_cast<size_t>(rows) * kKT +
                          static_cast<size_t>(rows) * Dv + 2 * static_cast<size_t>(rows)) +
         sizeof(int32_t) * 5 * static_cast<size_t>(rows);
}

__global__ void __launch_bounds__(kThreads) attn_partial_kernel(AttnArgs a) {
  extern __shared__ float smem[];
  const PageGeo& geo = a.geo;
  const int D = geo.D, Dv = geo.Dv, R = a.rows;
  float* q_s = smem;                      // [R][D]
  float* k_s = q_s + R * D;               // [KT][kstride]
  float* v_s = k_s + kKT * a.kstride;     // [KT][Dv]
  float* p_s = v_s + kKT * Dv;            // [R][KT]
  float* acc_s = p_s + R * kKT;           // [R][Dv]
  float* m_s = acc_s + R * Dv;            // [R]
  float* d_s = m_s + R;                   // [R]
  int32_t* loc_s = reinterpret_cast<int32_t*>(d_s + R);
  int32_t* head_s = loc_s + R;
  int32_t* qrow_s = head_s + R;
  int32_t* tab_s = qrow_s + R;
  int32_t* slot_s = tab_s + R;

  const WorkItem it = a.items[blockIdx.x];
  const int32_t g = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int rows_here = min(R, it.n_rows - it.row0);

  for (int r = tid; r < rows_here; r += kThreads) {
    const int32_t rr = it.row0 + r;
    const int32_t pp = a.blk_pairs[it.pairs_off + rr / a.gqa];
    loc_s[r] = a.pair_loc[pp];
    head_s[r] = g * a.gqa + rr % a.gqa;
    qrow_s[r] = a.pair_row[pp];
    tab_s[r] = a.pair_tab[pp];
    slot_s[r] = a.pair_slot[pp] + it.chunk;
    m_s[r] = -INFINITY;
    d_s[r] = 0.0f;
  }
  for (int i = tid; i < rows_here * Dv; i += kThreads) acc_s[i] = 0.0f;
  __syncthreads();

  // Rotated queries: q_s[r] = R(loc_r) q[qrow_r, head_r].
  const int32_t units = rope_units(a.rd);
  for (int i = tid; i < rows_here * units; i += kThreads) {
    const int r = i / units, u = i - r * units;
    const float* src = a.q + static_cast<int64_t>(qrow_s[r]) * a.q_ld + static_cast<int64_t>(head_s[r]) * D;
    rope_unit(a.rd, u, src, q_s + r * D, a.tab + static_cast<int64_t>(tab_s[r]) * 2 * a.rd.half);
  }
  int32_t max_loc = -1;
  for (int r = 0; r < rows_here; ++r) max_loc = max(max_loc, loc_s[r]);
  const int32_t kend = min(it.key_end, max_loc + 1);  // keys past every row's loc are masked for all
  __syncthreads();

  const int T = geo.T;
  for (int32_t t0 = it.key_start; t0 < kend; t0 += kKT) {
    const int nk = min(kKT, kend - t0);
    for (int i = tid; i < nk * D; i += kThreads) {
      const int kk = i / D, dd = i - kk * D;
      const int32_t l = t0 + kk;
      const float* page = a.pages[it.page_off + l / T];
      k_s[kk * a.kstride + dd] = page[geo.k_off(a.layer, g, l % T) + dd];
    }
    for (int i = tid; i < nk * Dv; i += kThreads) {
      const int kk = i / Dv, dd = i - kk * Dv;
      const int32_t l = t0 + kk;
      const float* page = a.pages[it.page_off + l / T];
      v_s[kk * Dv + dd] = page[geo.v_off(a.layer, g, l % T) + dd];
    }
    __syncthreads();

    for (int r = warp; r < rows_here; r += kWarps) {
      float s = -INFINITY;
      if (lane < nk && t0 + lane <= loc_s[r]) {
        const float* qr = q_s + r * D;
        const float* kr = k_s + lane * a.kstride;
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot = fmaf(qr[d], kr[d], dot);
        s = dot * a.scale;
      }
      const float mx = warp_max(s);
      const float m_old = m_s[r];
      const float m_new = fmaxf(m_old, mx);
      if (m_new == -INFINITY) continue;  // warp-uniform: nothing visible yet in this row
      const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
      const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
      const float psum = warp_sum(p);
      p_s[r * kKT + lane] = p;
      __syncwarp();
      float* acc = acc_s + r * Dv;
      const float* pr = p_s + r * kKT;
      for (int dv = lane; dv < Dv; dv += 32) {
        float x = acc[dv] * alpha;
        for (int kk = 0; kk < nk; ++kk) x = fmaf(pr[kk], v_s[kk * Dv + dv], x);
        acc[dv] = x;
      }
      __syncwarp();
      if (lane == 0) {
        m_s[r] = m_new;
        d_s[r] = d_s[r] * alpha + psum;
      }
      __syncwarp();
    }
    __syncthreads();
  }

  for (int i = tid; i < rows_here * Dv; i += kThreads) {
    const int r = i / Dv, dv = i - r * Dv;
    a.part_acc[(static_cast<int64_t>(slot_s[r]) * a.n_head + head_s[r]) * Dv + dv] = acc_s[i];
  }
  for (int r = tid; r < rows_here; r += kThreads) {
    const int64_t o = static_cast<int64_t>(slot_s[r]) * a.n_head + head_s[r];
    a.part_m[o] = m_s[r];
    a.part_d[o] = d_s[r];
  }
}

// One CTA per (query row, head): log-sum-exp merge of the row's slots.
__global__ void attn_merge_kernel(int32_t n_head, int32_t Dv, const int32_t* __restrict__ row_slot,
                                  const float* __restrict__ part_m, const float* __restrict__ part_d,
                                  const float* __restrict__ part_acc, float* __restrict__ out,
                                  float* __restrict__ lse) {
  const int64_t i = blockIdx.x;
  const int32_t h = blockIdx.y;
  const int32_t s0 = row_slot[i], s1 = row_slot[i + 1];
  float M = -INFINITY;
  for (int32_t sl = s0; sl < s1; ++sl) M = fmaxf(M, part_m[static_cast<int64_t>(sl) * n_head + h]);
  float* o = out + (i * n_head + h) * Dv;
  if (M == -INFINITY) {
    for (int dv = threadIdx.x; dv < Dv; dv += blockDim.x) o[dv] = 0.0f;
    if (threadIdx.x == 0 && lse) lse[i * n_head + h] = -INFINITY;
    return;
  }
  float dsum = 0.0f;
  for (int32_t sl = s0; sl < s1; ++sl) {
    const int64_t k = static_cast<int64_t>(sl) * n_head + h;
    const float m = part_m[k];
    if (m != -INFINITY) dsum += part_d[k] * expf(m - M);
  }
  for (int dv = threadIdx.x; dv < Dv; dv += blockDim.x) {
    float x = 0.0f;
    for (int32_t sl = s0; sl < s1; ++sl) {
      const int64_t k = static_cast<int64_t>(sl) * n_head + h;
      const float m = part_m[k];
      if (m != -INFINITY) x += part_acc[k * Dv + dv] * expf(m - M);
    }
    o[dv] = x / dsum;
  }
  if (threadIdx.x == 0 && lse) lse[i * n_head + h] = M + logf(dsum);
}

int sm_count_cached() {
  static std::atomic<int> n{0};
  int v = n.load(std::memory_order_relaxed);
  if (v == 0) {
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device_id()) != cudaSuccess || v <= 0) {
      (void)cudaGetLastError();
      v = 108;
    }
    n.store(v, std::memory_order_relaxed);
  }
  return v;
}

}  // namespace

hwkv_status attn_plan_build(const char* fn, const hwkv_store* s, const RopeHost& r, const hwkv_attn_batch& bt,
                            int32_t n_head, AttnPlan* plan) {
  const int32_t n_seq = bt.n_seq;
  const int32_t* vip = bt.view_indptr;
  const int32_t* qip = bt.q_indptr;
  const int32_t n_q = qip[n_seq];
  const PageGeo& geo = s->geo;
  const int32_t n_kv = s->p.n_kv_head;
  const int32_t D = geo.D, Dv = geo.Dv, gqa = n_head / n_kv;
  plan->n_q = n_q;
  plan->n_head = n_head;
  plan->n_kv = n_kv;
  plan->gqa = gqa;
  plan->D = D;
  plan->Dv = Dv;
  plan->rd = rope_dev(&r, D);

  // ---- pairs (row order), distinct locs, per-block pair lists ----
  std::vector<int32_t> pair_row, pair_loc, pair_tab, pair_blk;
  std::vector<int32_t> row_pair(static_cast<size_t>(n_q) + 1, 0);
  std::unordered_map<int32_t, int32_t> loc_row;
  std::vector<float> tab;
  std::vector<int32_t> blk_index(s->blocks.size(), -1);  // store block -> distinct index
  std::vector<int32_t> blk_ids;                           // distinct index -> store block
  std::vector<int64_t> offs;
  for (int32_t sq = 0; sq < n_seq; ++sq) {
    const int32_t nb = vip[sq + 1] - vip[sq];
    const int32_t* vb = bt.view_blocks + vip[sq];
    offs.assign(static_cast<size_t>(nb), 0);
    int64_t o = 0;
    for (int32_t j = 0; j < nb; ++j) {
      offs[j] = o;
      o += s->blocks[vb[j]].len;
    }
    for (int32_t i = qip[sq]; i < qip[sq + 1]; ++i) {
      row_pair[i] = static_cast<int32_t>(pair_row.size());
      const int64_t P = bt.q_pos[i];
      for (int32_t j = 0; j < nb; ++j) {
        const int32_t b = vb[j];
        if (s->blocks[b].len == 0 || P - offs[j] < 0) continue;
        const int32_t loc = static_cast<int32_t>(P - offs[j]);
        auto ins = loc_row.emplace(loc, static_cast<int32_t>(loc_row.size()));
        if (ins.second) rope_table_row(r, static_cast<double>(loc), tab);
        if (blk_index[b] < 0) {
          blk_index[b] = static_cast<int32_t>(blk_ids.size());
          blk_ids.push_back(b);
        }
        pair_row.push_back(i);
        pair_loc.push_back(loc);
        pair_tab.push_back(ins.first->second);
        pair_blk.push_back(blk_index[b]);
      }
    }
  }
  row_pair[n_q] = static_cast<int32_t>(pair_row.size());
  const int32_t n_pairs = static_cast<int32_t>(pair_row.size());
  const int32_t n_blk = static_cast<int32_t>(blk_ids.size());

  std::vector<int32_t> blk_pair_ptr(static_cast<size_t>(n_blk) + 1, 0);
  for (int32_t p = 0; p < n_pairs; ++p) ++blk_pair_ptr[pair_blk[p] + 1];
  for (int32_t b = 0; b < n_blk; ++b) blk_pair_ptr[b + 1] += blk_pair_ptr[b];
  std::vector<int32_t> blk_pairs(static_cast<size_t>(n_pairs));
  {
    std::vector<int32_t> fill(blk_pair_ptr.begin(), blk_pair_ptr.end() - 1);
    for (int32_t p = 0; p < n_pairs; ++p) blk_pairs[fill[pair_blk[p]]++] = p;
  }

  // ---- rows per CTA from shared memory ----
  int dev = device_id();
  HWKV_TRY(use_device(fn));
  int smem_optin = 0;
  HWKV_CU(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const int kstride = D | 1;
  int rows = 0;
  int max_rows_needed = 1;
  for (int32_t b = 0; b < n_blk; ++b)
    max_rows_needed = std::max(max_rows_needed, (blk_pair_ptr[b + 1] - blk_pair_ptr[b]) * gqa);
  for (int cand = 64; cand >= 1; cand /= 2) {
    if (attn_smem_bytes(cand, D, Dv, kstride) <= 100 * 1024) {
      rows = cand;
      break;
    }
  }
  if (rows == 0 && attn_smem_bytes(1, D, Dv, kstride) <= static_cast<size_t>(smem_optin)) rows = 1;
  if (rows == 0)
    return fail(HWKV_ERR_UNSUPPORTED, "%s: head_dim %d / head_dim_v %d need more shared memory than the device has",
                fn, D, Dv);
  while (rows > 8 && rows / 2 >= max_rows_needed) rows /= 2;
  plan->rows = rows;
  plan->kstride = kstride;
  plan->smem = attn_smem_bytes(rows, D, Dv, kstride);

  // ---- split-K chunking ----
  int64_t base_ctas = 0;
  for (int32_t b = 0; b < n_blk; ++b)
    base_ctas += ceil_div(static_cast<int64_t>(blk_pair_ptr[b + 1] - blk_pair_ptr[b]) * gqa, rows) * n_kv;
  const int64_t target = 4LL * sm_count_cached();
  std::vector<int32_t> chunk_keys(static_cast<size_t>(n_blk)), n_chunk(static_cast<size_t>(n_blk));
  auto plan_chunks = [&](int64_t splits) {
    int64_t slots = 0;
    for (int32_t b = 0; b < n_blk; ++b) {
      const int32_t len = s->blocks[blk_ids[b]].len;
      int64_t ck = ceil_div(len, splits);
      ck = ceil_div(ck, kKT) * kKT;
      if (ck < 64) ck = 64;
      if (ck > len) ck = len;
      chunk_keys[b] = static_cast<int32_t>(ck);
      n_chunk[b] = static_cast<int32_t>(ceil_div(len, ck));
      slots += static_cast<int64_t>(n_chunk[b]) * (blk_pair_ptr[b + 1] - blk_pair_ptr[b]);
    }
    return slots;
  };
  int64_t splits = (base_ctas == 0 || base_ctas >= target) ? 1 : ceil_div(target, base_ctas);
  int64_t n_slots = plan_chunks(splits);
  const int64_t part_budget = 256LL << 20;
  while (splits > 1 && n_slots * n_head * (Dv + 2) * 4 > part_budget) {
    splits = splits / 2;
    n_slots = plan_chunks(splits);
  }

  // ---- slots (pair order => each row's slots are contiguous) ----
  std::vector<int32_t> pair_slot(static_cast<size_t>(n_pairs));
  int64_t run = 0;
  for (int32_t p = 0; p < n_pairs; ++p) {
    pair_slot[p] = static_cast<int32_t>(run);
    run += n_chunk[pair_blk[p]];
  }
  if (run > INT32_MAX) return fail(HWKV_ERR_UNSUPPORTED, "%s: batch too large (%lld partial states)", fn, (long long)run);
  std::vector<int32_t> row_slot(static_cast<size_t>(n_q) + 1);
  for (int32_t i = 0; i <= n_q; ++i)
    row_slot[i] = row_pair[i] < n_pairs ? pair_slot[row_pair[i]] : static_cast<int32_t>(run);
  plan->n_slots = run;

  // ---- work items and page pointers ----
  std::vector<WorkItem> items;
  std::vector<const float*> ptrs;
  for (int32_t b = 0; b < n_blk; ++b) {
    const StoreBlock& blk = s->blocks[blk_ids[b]];
    const int32_t page_off = static_cast<int32_t>(ptrs.size());
    for (int32_t pg : blk.pages) ptrs.push_back(s->page_ptr[pg]);
    const int32_t n_rows = (blk_pair_ptr[b + 1] - blk_pair_ptr[b]) * gqa;
    for (int32_t c = 0; c < n_chunk[b]; ++c) {
      for (int32_t r0 = 0; r0 < n_rows; r0 += rows) {
        WorkItem w;
        w.pairs_off = blk_pair_ptr[b];
        w.n_rows = n_rows;
        w.row0 = r0;
        w.key_start = c * chunk_keys[b];
        w.key_end = std::min(blk.len, (c + 1) * chunk_keys[b]);
        w.page_off = page_off;
        w.chunk = c;
        w.pad = 0;
        items.push_back(w);
      }
    }
  }
  if (items.size() > 0x7fffffffu || n_kv > 65535)
    return fail(HWKV_ERR_UNSUPPORTED, "%s: batch too large for one launch", fn);
  if (n_head > 65535) return fail(HWKV_ERR_UNSUPPORTED, "%s: n_head %d too large for one launch", fn, n_head);
  plan->n_items = static_cast<int64_t>(items.size());

  // ---- device buffers ----
  const size_t ms_bytes = static_cast<size_t>(run) * n_head * sizeof(float);
  HWKV_TRY(plan->items.alloc(fn, items.size() * sizeof(WorkItem)));
  HWKV_TRY(plan->blk_pairs.alloc(fn, blk_pairs.size() * sizeof(int32_t)));
  HWKV_TRY(plan->prow.alloc(fn, pair_row.size() * sizeof(int32_t)));
  HWKV_TRY(plan->ploc.alloc(fn, pair_loc.size() * sizeof(int32_t)));
  HWKV_TRY(plan->ptab.alloc(fn, pair_tab.size() * sizeof(int32_t)));
  HWKV_TRY(plan->pslot.alloc(fn, pair_slot.size() * sizeof(int32_t)));
  HWKV_TRY(plan->rslot.alloc(fn, row_slot.size() * sizeof(int32_t)));
  HWKV_TRY(plan->ptrs.alloc(fn, ptrs.size() * sizeof(float*)));
  HWKV_TRY(plan->tab.alloc(fn, tab.size() * sizeof(float)));
  HWKV_TRY(plan->m.alloc(fn, ms_bytes));
  HWKV_TRY(plan->d.alloc(fn, ms_bytes));
  HWKV_TRY(plan->acc.alloc(fn, ms_bytes * Dv));
  HWKV_TRY(h2d(fn, plan->items.ptr(), items.data(), items.size() * sizeof(WorkItem)));
  HWKV_TRY(h2d(fn, plan->blk_pairs.ptr(), blk_pairs.data(), blk_pairs.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, plan->prow.ptr(), pair_row.data(), pair_row.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, plan->ploc.ptr(), pair_loc.data(), pair_loc.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, plan->ptab.ptr(), pair_tab.data(), pair_tab.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, plan->pslot.ptr(), pair_slot.data(), pair_slot.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, plan->rslot.ptr(), row_slot.data(), row_slot.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, plan->ptrs.ptr(), ptrs.data(), ptrs.size() * sizeof(float*)));
  HWKV_TRY(h2d(fn, plan->tab.ptr(), tab.data(), tab.size() * sizeof(float)));
  if (plan->n_items > 0)
    HWKV_CU(cudaFuncSetAttribute(attn_partial_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(plan->smem)));
  return HWKV_OK;
}

hwkv_status attn_plan_run(const char* fn, const hwkv_store* s, const AttnPlan& plan, int32_t layer, const float* q,
                          int64_t q_ld, float scale, float* out, float* lse) {
  if (plan.n_q == 0) return HWKV_OK;
  if (plan.n_items > 0) {
    AttnArgs a;
    a.geo = s->geo;
    a.rd = plan.rd;
    a.layer = layer;
    a.n_head = plan.n_head;
    a.gqa = plan.gqa;
    a.rows = plan.rows;
    a.kstride = plan.kstride;
    a.scale = scale;
    a.q_ld = q_ld;
    a.items = plan.items.as<WorkItem>();
    a.blk_pairs = plan.blk_pairs.as<int32_t>();
    a.pair_row = plan.prow.as<int32_t>();
    a.pair_loc = plan.ploc.as<int32_t>();
    a.pair_tab = plan.ptab.as<int32_t>();
    a.pair_slot = plan.pslot.as<int32_t>();
    a.pages = plan.ptrs.as<const float*>();
    a.tab = plan.tab.as<float>();
    a.q = q;
    a.part_m = plan.m.as<float>();
    a.part_d = plan.d.as<float>();
    a.part_acc = plan.acc.as<float>();
    const dim3 grid(static_cast<unsigned>(plan.n_items), static_cast<unsigned>(plan.n_kv));
    attn_partial_kernel<<<grid, kThreads, plan.smem, stream()>>>(a);
    HWKV_CU_LAUNCH(attn_partial_kernel);
  }
  const int32_t Dv = plan.Dv;
  const dim3 mgrid(static_cast<unsigned>(plan.n_q), static_cast<unsigned>(plan.n_head));
  const int mthreads = Dv >= 128 ? 128 : 32 * static_cast<int>(ceil_div(Dv, 32));
  attn_merge_kernel<<<mgrid, mthreads, 0, stream()>>>(plan.n_head, Dv, plan.rslot.as<int32_t>(), plan.m.as<float>(),
                                                      plan.d.as<float>(), plan.acc.as<float>(), out, lse);
  HWKV_CU_LAUNCH(attn_merge_kernel);
  return HWKV_OK;
}

hwkv_status attn_views(hwkv_store_t* s, int32_t layer, const hwkv_rope_params* rope, const hwkv_attn_batch* batch,
                       const float* q, int32_t n_head, float scale, float* out, float* lse) {
  const char* fn = "attn_views";
  return guarded(fn, [&]() -> hwkv_status {
    // Same checks, order and wording as the CPU core (core/src/api.cpp, core/src/attn.cpp).
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    if (!rope) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope is NULL (attention needs the RoPE parameters)", fn);
    if (!batch) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch is NULL", fn);
    RopeHost r;
    HWKV_TRY(store_rope(fn, s, rope, &r));
    const hwkv_attn_batch& bt = *batch;
    const int32_t n_seq = bt.n_seq;
    if (n_seq < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch n_seq must be >= 1, got %d", fn, n_seq);
    if (!bt.view_indptr) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch view_indptr is NULL", fn);
    if (!bt.q_indptr) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch q_indptr is NULL", fn);
    const int32_t* vip = bt.view_indptr;
    const int32_t* qip = bt.q_indptr;
    if (vip[0] != 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: view_indptr[0] must be 0, got %d", fn, vip[0]);
    if (qip[0] != 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: q_indptr[0] must be 0, got %d", fn, qip[0]);
    for (int32_t i = 0; i < n_seq; ++i) {
      if (vip[i + 1] < vip[i])
        return fail(HWKV_ERR_INVALID_ARGUMENT,
                    "%s: view_indptr must be non-decreasing (view_indptr[%d] = %d < view_indptr[%d] = %d)", fn, i + 1,
                    vip[i + 1], i, vip[i]);
      if (qip[i + 1] < qip[i])
        return fail(HWKV_ERR_INVALID_ARGUMENT,
                    "%s: q_indptr must be non-decreasing (q_indptr[%d] = %d < q_indptr[%d] = %d)", fn, i + 1,
                    qip[i + 1], i, qip[i]);
    }
    const int32_t n_vb = vip[n_seq];
    const int32_t n_q = qip[n_seq];
    if (n_vb > 0 && !bt.view_blocks) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch view_blocks is NULL", fn);
    if (n_q > 0 && !bt.q_pos) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch q_pos is NULL", fn);
    // Views: live blocks, each at most once per view.
    std::vector<int32_t> seen(s->blocks.size(), -1);
    for (int32_t sq = 0; sq < n_seq; ++sq) {
      for (int32_t e = vip[sq]; e < vip[sq + 1]; ++e) {
        const int32_t b = bt.view_blocks[e];
        if (!is_live(s, b))
          return fail(HWKV_ERR_OUT_OF_RANGE,
                      "%s: sequence %d, view entry %d: block %d is not a live block (store has %d live blocks)", fn, sq,
                      e - vip[sq], b, s->blocks_live);
        if (seen[b] == sq)
          return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sequence %d lists block %d more than once in its view", fn, sq, b);
        seen[b] = sq;
      }
    }
    HWKV_TRY(check_layer(fn, s, layer));
    const int32_t n_kv = s->p.n_kv_head;
    if (n_head < 1 || n_head % n_kv != 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_head (%d) must be a positive multiple of the store's n_kv_head (%d)",
                  fn, n_head, n_kv);
    if (n_q == 0) return HWKV_OK;
    if (!q) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: q is NULL", fn);
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);

    AttnPlan plan;
    HWKV_TRY(attn_plan_build(fn, s, r, bt, n_head, &plan));
    const int32_t D = s->geo.D, Dv = s->geo.Dv;
    const size_t q_bytes = static_cast<size_t>(n_q) * n_head * D * sizeof(float);
    const size_t out_bytes = static_cast<size_t>(n_q) * n_head * Dv * sizeof(float);
    const size_t lse_bytes = static_cast<size_t>(n_q) * n_head * sizeof(float);
    Scratch d_q, d_out, d_lse;
    HWKV_TRY(d_q.alloc(fn, q_bytes));
    HWKV_TRY(d_out.alloc(fn, out_bytes));
    HWKV_TRY(d_lse.alloc(fn, lse_bytes));
    HWKV_TRY(h2d(fn, d_q.ptr(), q, q_bytes));
    HWKV_TRY(attn_plan_run(fn, s, plan, layer, d_q.as<float>(), static_cast<int64_t>(n_head) * D, scale,
                           d_out.as<float>(), d_lse.as<float>()));
    HWKV_TRY(d2h(fn, out, d_out.ptr(), out_bytes));
    if (lse) HWKV_TRY(d2h(fn, lse, d_lse.ptr(), lse_bytes));
    return sync(fn);
  });
}

}  // namespace hwkv_cuda
