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
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "attn.cuh"
#include "codec.cuh"
#include "ops.cuh"
#include "rope.cuh"
#include "store.cuh"

namespace hwkv_cuda {

namespace {

constexpr int kKT = 32;        // keys per shared-memory tile (one per lane)
constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;


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
  if (it.n_rows == 0) return;  // padding item
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
      k_s[kk * a.kstride + dd] = kv_get(page, geo.k_off(a.layer, g, l % T) + dd, geo.f16);
    }
    for (int i = tid; i < nk * Dv; i += kThreads) {
      const int kk = i / Dv, dd = i - kk * Dv;
      const int32_t l = t0 + kk;
      const float* page = a.pages[it.page_off + l / T];
      v_s[kk * Dv + dd] = kv_get(page, geo.v_off(a.layer, g, l % T) + dd, geo.f16);
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

// ---- Decode kernel: the same work items as attn_partial_kernel, for head_dim = head_dim_v in {64, 128}
// and at most kDecRows rows per CTA (a row = one query head of one (query, block) pair). 4 warps; warp w owns
// rows w*R/4 .. (w+1)*R/4 - 1 (its queries rotated once into shared memory). The CTA walks the chunk in
// 32-key tiles, double-buffered: while the warps score tile i, the K and V rows of tile i+1 are already on
// their way into shared memory by 16-byte asynchronous copies (rows padded by 16 bytes so that one-key-per-
// lane reads are conflict-free). Each warp scores one key per lane against its rows (queries read as float4
// broadcasts), keeps an online softmax per row and accumulates P.V with the lane owning D/32 output dims, then
// writes its rows' partial states to their slots. So every K/V byte of a chunk is read once per CTA for all of
// its rows: all the workers and all the GQA heads that see the block.
constexpr int kDecWarps = 4;
constexpr int kDecThreads = kDecWarps * 32;
constexpr int kDecRows = 16;

__host__ __device__ constexpr int dec_row_bytes(int D, int es) { return D * es + 16; }

__host__ __device__ inline size_t decode_smem_bytes(int R, int D, int es) {
  return sizeof(float) * (static_cast<size_t>(R) * D + static_cast<size_t>(R) * 32) + sizeof(int32_t) * 5 * R +
         static_cast<size_t>(2) * 2 * 32 * dec_row_bytes(D, es);
}

struct F8 {
  float v[8];
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned sa = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(gmem));
}

// 8 consecutive elements of a staged row as floats.
template <bool F16>
__device__ __forceinline__ F8 load8(const unsigned char* p) {
  F8 r;
  if (F16) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(h[i]);
      r.v[2 * i] = f.x;
      r.v[2 * i + 1] = f.y;
    }
  } else {
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    r.v[0] = a.x; r.v[1] = a.y; r.v[2] = a.z; r.v[3] = a.w;
    r.v[4] = b.x; r.v[5] = b.y; r.v[6] = b.z; r.v[7] = b.w;
  }
  return r;
}

// N (2 or 4) consecutive elements of a staged row as floats.
template <bool F16, int N>
__device__ __forceinline__ void loadn(const unsigned char* p, float* out) {
  if (F16) {
    if (N == 4) {
      const uint2 u = *reinterpret_cast<const uint2*>(p);
      const __half2* h = reinterpret_cast<const __half2*>(&u);
      const float2 a = __half22float2(h[0]), b = __half22float2(h[1]);
      out[0] = a.x; out[1] = a.y; out[2] = b.x; out[3] = b.y;
    } else {
      const float2 a = __half22float2(*reinterpret_cast<const __half2*>(p));
      out[0] = a.x; out[1] = a.y;
    }
  } else {
    if (N == 4) {
      const float4 a = *reinterpret_cast<const float4*>(p);
      out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
    } else {
      const float2 a = *reinterpret_cast<const float2*>(p);
      out[0] = a.x; out[1] = a.y;
    }
  }
}

template <bool F16, int R, int D>
__global__ void __launch_bounds__(kDecThreads) attn_decode_kernel(AttnArgs a) {
  constexpr int RW = R / kDecWarps;  // rows per warp
  constexpr int DL = D / 32;         // output dims per lane
  constexpr int ES = F16 ? 2 : 4;
  constexpr int STRB = dec_row_bytes(D, ES);
  constexpr int CH = D * ES / 16;  // 16-byte pieces per row
  extern __shared__ __align__(16) float dec_smem[];
  float* q_s = dec_smem;       // [R][D]
  float* p_s = q_s + R * D;    // [R][32]
  int32_t* loc_s = reinterpret_cast<int32_t*>(p_s + R * 32);
  int32_t* head_s = loc_s + R;
  int32_t* slot_s = head_s + R;
  int32_t* qrow_s = slot_s + R;
  int32_t* tab_s = qrow_s + R;
  unsigned char* tiles = reinterpret_cast<unsigned char*>(tab_s + R);  // [2 buffers][K, V][32][STRB]

  const PageGeo& geo = a.geo;
  const WorkItem it = a.items[blockIdx.x];
  if (it.n_rows == 0) return;  // padding item
  const int32_t g = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int rows_here = min(R, it.n_rows - it.row0);

  if (tid < R) {
    if (tid < rows_here) {
      const int32_t rr = it.row0 + tid;
      const int32_t pp = a.blk_pairs[it.pairs_off + rr / a.gqa];
      loc_s[tid] = a.pair_loc[pp];
      head_s[tid] = g * a.gqa + rr % a.gqa;
      slot_s[tid] = a.pair_slot[pp] + it.chunk;
      qrow_s[tid] = a.pair_row[pp];
      tab_s[tid] = a.pair_tab[pp];
    } else {
      loc_s[tid] = -1;  // padding row: sees nothing
      head_s[tid] = 0;
      slot_s[tid] = 0;
      qrow_s[tid] = 0;
      tab_s[tid] = 0;
    }
  }
  __syncthreads();
  const int r0 = warp * RW;  // this warp's first row
  {
    const int32_t units = rope_units(a.rd);
#pragma unroll
    for (int rr = 0; rr < RW; ++rr) {
      const int r = r0 + rr;
      float* dst = q_s + r * D;
      if (r < rows_here) {
        const float* src = a.q + static_cast<int64_t>(qrow_s[r]) * a.q_ld + static_cast<int64_t>(head_s[r]) * D;
        for (int u = lane; u < units; u += 32)
          rope_unit(a.rd, u, src, dst, a.tab + static_cast<int64_t>(tab_s[r]) * 2 * a.rd.half);
      } else {
        for (int d = lane; d < D; d += 32) dst[d] = 0.0f;
      }
    }
  }
  int32_t max_loc = -1;
#pragma unroll
  for (int r = 0; r < R; ++r) max_loc = max(max_loc, loc_s[r]);
  const int32_t kend = min(it.key_end, max_loc + 1);
  int32_t my_loc[RW];
#pragma unroll
  for (int rr = 0; rr < RW; ++rr) my_loc[rr] = loc_s[r0 + rr];
  const bool warp_active = r0 < rows_here;

  float m[RW], dsum[RW], acc[RW][DL];
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    m[r] = -INFINITY;
    dsum[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < DL; ++j) acc[r][j] = 0.0f;
  }
  const int T = geo.T;
  float* pw = p_s + r0 * 32;

  // K and V rows of tile starting at key t0 -> buffer b (all 128 threads; consecutive threads copy consecutive
  // 16-byte pieces of a row).
  auto stage = [&](int32_t t0, int b) {
    const int nk = min(32, kend - t0);
    unsigned char* kt = tiles + static_cast<size_t>(b) * 2 * 32 * STRB;
    unsigned char* vt = kt + 32 * STRB;
    for (int c = tid; c < nk * CH; c += kDecThreads) {
      const int kk = c / CH, j = c - kk * CH;
      const int32_t key = t0 + kk;
      const unsigned char* page = reinterpret_cast<const unsigned char*>(a.pages[it.page_off + key / T]);
      cp_async16(kt + kk * STRB + j * 16, page + geo.k_off(a.layer, g, key % T) * ES + j * 16);
      cp_async16(vt + kk * STRB + j * 16, page + geo.v_off(a.layer, g, key % T) * ES + j * 16);
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  };

  const int32_t n_tiles = kend > it.key_start ? (kend - it.key_start + 31) / 32 : 0;
  if (n_tiles > 0) stage(it.key_start, 0);
  for (int32_t ti = 0; ti < n_tiles; ++ti) {
    const int32_t t0 = it.key_start + ti * 32;
    if (ti + 1 < n_tiles) {
      stage(t0 + 32, (ti + 1) & 1);
      asm volatile("cp.async.wait_group 1;\n" ::: "memory");
    } else {
      asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    }
    __syncthreads();  // tile ti is in shared memory for every warp
    if (warp_active) {
      const unsigned char* kt = tiles + static_cast<size_t>(ti & 1) * 2 * 32 * STRB;
      const unsigned char* vt = kt + 32 * STRB;
      const int nk = min(32, kend - t0);
      const int32_t key = t0 + lane;
      const bool valid = lane < nk;
      float s[RW];
#pragma unroll
      for (int r = 0; r < RW; ++r) s[r] = 0.0f;
      if (valid) {
        const unsigned char* krow = kt + lane * STRB;
#pragma unroll 4
        for (int d0 = 0; d0 < D; d0 += 8) {
          const F8 k = load8<F16>(krow + d0 * ES);
#pragma unroll
          for (int r = 0; r < RW; ++r) {
            const float4 qa = *reinterpret_cast<const float4*>(q_s + (r0 + r) * D + d0);
            const float4 qb = *reinterpret_cast<const float4*>(q_s + (r0 + r) * D + d0 + 4);
            float x = s[r];
            x = fmaf(qa.x, k.v[0], x);
            x = fmaf(qa.y, k.v[1], x);
            x = fmaf(qa.z, k.v[2], x);
            x = fmaf(qa.w, k.v[3], x);
            x = fmaf(qb.x, k.v[4], x);
            x = fmaf(qb.y, k.v[5], x);
            x = fmaf(qb.z, k.v[6], x);
            x = fmaf(qb.w, k.v[7], x);
            s[r] = x;
          }
        }
      }
#pragma unroll
      for (int r = 0; r < RW; ++r) {
        const float sc = (valid && key <= my_loc[r]) ? s[r] * a.scale : -INFINITY;
        const float mx = warp_max(sc);
        const float m_new = fmaxf(m[r], mx);
        float p = 0.0f;
        if (m_new != -INFINITY) {  // warp-uniform
          const float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - m_new);
          p = sc == -INFINITY ? 0.0f : expf(sc - m_new);
          dsum[r] = dsum[r] * alpha + warp_sum(p);
          m[r] = m_new;
#pragma unroll
          for (int j = 0; j < DL; ++j) acc[r][j] *= alpha;
        }
        pw[r * 32 + lane] = p;
      }
      __syncwarp();
      for (int kk = 0; kk < nk; ++kk) {
        float v[DL];
        loadn<F16, DL>(vt + kk * STRB + lane * DL * ES, v);
#pragma unroll
        for (int r = 0; r < RW; ++r) {
          const float pr = pw[r * 32 + kk];
#pragma unroll
          for (int j = 0; j < DL; ++j) acc[r][j] = fmaf(pr, v[j], acc[r][j]);
        }
      }
    }
    __syncthreads();  // everyone is done with buffer ti & 1 before tile ti + 2 is staged into it
  }

  // This warp's rows -> their slots.
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    if (r0 + r >= rows_here) continue;
    const int64_t o = static_cast<int64_t>(slot_s[r0 + r]) * a.n_head + head_s[r0 + r];
#pragma unroll
    for (int j = 0; j < DL; ++j) a.part_acc[o * D + lane * DL + j] = acc[r][j];
    if (lane == 0) {
      a.part_m[o] = m[r];
      a.part_d[o] = dsum[r];
    }
  }
}

// ---- Tensor-core decode kernel (plan kind 2: F16 store, head_dim 64/128, up to 16 rows per CTA;
// HWKV_CUDA_ATTN=mma). Rows are the M = 16 of mma.sync m16n8k16 (f16 in, f32 accumulate); each of the 4
// warps takes 16 keys of every 64-key tile (double-buffered by cp.async as in the FMA kernel) and keeps its
// own online softmax for all 16 rows; the warps' states are merged by LSE at the end into the row's slot.
// S = Q K^T: Q (rotated, f32) is split as hi + lo in f16 (two MMAs), K is the stored f16; P V: P in [0, 1]
// split likewise, V the stored f16. So the products keep ~21 mantissa bits: FP32-like accuracy.
constexpr int kMmaKT = 64;

__host__ __device__ inline size_t decode_mma_smem_bytes(int D) {
  const size_t tiles = static_cast<size_t>(2) * 2 * kMmaKT * dec_row_bytes(D, 2);
  const size_t merge = sizeof(float) * (static_cast<size_t>(kDecWarps) * 16 * D + 2 * kDecWarps * 16);
  return sizeof(float) * 16 * D + sizeof(int32_t) * 5 * 16 + (tiles > merge ? tiles : merge);
}

__device__ __forceinline__ void mma_f16_16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// (x0, x1) -> packed f16 hi and lo halves with x = hi + lo (to f16 precision each).
__device__ __forceinline__ void split_h2(float x0, float x1, uint32_t* hi, uint32_t* lo) {
  const __half h0 = __float2half_rn(x0), h1 = __float2half_rn(x1);
  const __half2 h = __halves2half2(h0, h1);
  const __half2 l = __floats2half2_rn(x0 - __half2float(h0), x1 - __half2float(h1));
  *hi = *reinterpret_cast<const uint32_t*>(&h);
  *lo = *reinterpret_cast<const uint32_t*>(&l);
}

__device__ __forceinline__ uint32_t pack_h2(__half a, __half b) {
  const __half2 h = __halves2half2(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

template <int D>
__global__ void __launch_bounds__(kDecThreads) attn_decode_mma_kernel(AttnArgs a) {
  constexpr int R = 16;
  constexpr int STRB = dec_row_bytes(D, 2);
  constexpr int CH = D * 2 / 16;  // 16-byte pieces per row
  constexpr int KS = D / 16;      // k-steps of Q K^T
  constexpr int NT = D / 8;       // n-tiles of P V
  extern __shared__ __align__(16) float mma_smem[];
  float* q_s = mma_smem;  // [16][D]
  int32_t* loc_s = reinterpret_cast<int32_t*>(q_s + R * D);
  int32_t* head_s = loc_s + R;
  int32_t* slot_s = head_s + R;
  int32_t* qrow_s = slot_s + R;
  int32_t* tab_s = qrow_s + R;
  unsigned char* tiles = reinterpret_cast<unsigned char*>(tab_s + R);  // [2][K, V][64][STRB]; later the merge

  const PageGeo& geo = a.geo;
  const WorkItem it = a.items[blockIdx.x];
  if (it.n_rows == 0) return;  // padding item
  const int32_t gk = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int rows_here = min(R, it.n_rows - it.row0);

  if (tid < R) {
    if (tid < rows_here) {
      const int32_t rr = it.row0 + tid;
      const int32_t pp = a.blk_pairs[it.pairs_off + rr / a.gqa];
      loc_s[tid] = a.pair_loc[pp];
      head_s[tid] = gk * a.gqa + rr % a.gqa;
      slot_s[tid] = a.pair_slot[pp] + it.chunk;
      qrow_s[tid] = a.pair_row[pp];
      tab_s[tid] = a.pair_tab[pp];
    } else {
      loc_s[tid] = -1;
      head_s[tid] = 0;
      slot_s[tid] = 0;
      qrow_s[tid] = 0;
      tab_s[tid] = 0;
    }
  }
  __syncthreads();
  {
    const int32_t units = rope_units(a.rd);
    for (int rr = 0; rr < R / kDecWarps; ++rr) {
      const int r = warp * (R / kDecWarps) + rr;
      float* dst = q_s + r * D;
      if (r < rows_here) {
        const float* src = a.q + static_cast<int64_t>(qrow_s[r]) * a.q_ld + static_cast<int64_t>(head_s[r]) * D;
        for (int u = lane; u < units; u += 32)
          rope_unit(a.rd, u, src, dst, a.tab + static_cast<int64_t>(tab_s[r]) * 2 * a.rd.half);
      } else {
        for (int d = lane; d < D; d += 32) dst[d] = 0.0f;
      }
    }
  }
  __syncthreads();
  // Q as the A operand: k-step s, regs (row g, d 16s+2t..+1), (row g+8, same), (row g, 16s+2t+8..+9), (row g+8, same)
  uint32_t qh[KS][4], ql[KS][4];
#pragma unroll
  for (int st = 0; st < KS; ++st) {
    const int d0 = 16 * st + 2 * t;
    split_h2(q_s[g * D + d0], q_s[g * D + d0 + 1], &qh[st][0], &ql[st][0]);
    split_h2(q_s[(g + 8) * D + d0], q_s[(g + 8) * D + d0 + 1], &qh[st][1], &ql[st][1]);
    split_h2(q_s[g * D + d0 + 8], q_s[g * D + d0 + 9], &qh[st][2], &ql[st][2]);
    split_h2(q_s[(g + 8) * D + d0 + 8], q_s[(g + 8) * D + d0 + 9], &qh[st][3], &ql[st][3]);
  }
  int32_t max_loc = -1;
#pragma unroll
  for (int r = 0; r < R; ++r) max_loc = max(max_loc, loc_s[r]);
  const int32_t kend = min(it.key_end, max_loc + 1);
  const int32_t loc_a = loc_s[g], loc_b = loc_s[g + 8];

  float m_a = -INFINITY, m_b = -INFINITY, d_a = 0.0f, d_b = 0.0f;
  float o[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  const int T = geo.T;

  // K and V rows of the tile at key t0 -> buffer b; rows past the end are zeroed (P V multiplies them by 0).
  auto stage = [&](int32_t t0, int b) {
    const int nk = min(kMmaKT, kend - t0);
    unsigned char* kt = tiles + static_cast<size_t>(b) * 2 * kMmaKT * STRB;
    unsigned char* vt = kt + kMmaKT * STRB;
    for (int c = tid; c < kMmaKT * CH; c += kDecThreads) {
      const int kk = c / CH, j = c - kk * CH;
      if (kk < nk) {
        const int32_t key = t0 + kk;
        const unsigned char* page = reinterpret_cast<const unsigned char*>(a.pages[it.page_off + key / T]);
        cp_async16(kt + kk * STRB + j * 16, page + geo.k_off(a.layer, gk, key % T) * 2 + j * 16);
        cp_async16(vt + kk * STRB + j * 16, page + geo.v_off(a.layer, gk, key % T) * 2 + j * 16);
      } else {
        *reinterpret_cast<uint4*>(kt + kk * STRB + j * 16) = make_uint4(0u, 0u, 0u, 0u);
        *reinterpret_cast<uint4*>(vt + kk * STRB + j * 16) = make_uint4(0u, 0u, 0u, 0u);
      }
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  };

  const int32_t n_tiles = kend > it.key_start ? (kend - it.key_start + kMmaKT - 1) / kMmaKT : 0;
  if (n_tiles > 0) stage(it.key_start, 0);
  for (int32_t ti = 0; ti < n_tiles; ++ti) {
    const int32_t t0 = it.key_start + ti * kMmaKT;
    if (ti + 1 < n_tiles) {
      stage(t0 + kMmaKT, (ti + 1) & 1);
      asm volatile("cp.async.wait_group 1;\n" ::: "memory");
    } else {
      asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    }
    __syncthreads();
    const int32_t kw0 = t0 + warp * 16;  // this warp's first key
    if (kw0 < kend) {                     // warp-uniform
      const unsigned char* kt = tiles + static_cast<size_t>(ti & 1) * 2 * kMmaKT * STRB;
      const unsigned char* vt = kt + kMmaKT * STRB;
      float sc[2][4];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
        const unsigned char* krow = kt + (warp * 16 + j * 8 + g) * STRB;
#pragma unroll
        for (int st = 0; st < KS; ++st) {
          const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + (16 * st + 2 * t) * 2);
          const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + (16 * st + 2 * t + 8) * 2);
          mma_f16_16816(sc[j], qh[st], b0, b1);
          mma_f16_16816(sc[j], ql[st], b0, b1);
        }
      }
      // mask + scale; c0, c1: row g, keys kw0 + 8j + 2t (+1); c2, c3: row g + 8, same keys
      float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int32_t key = kw0 + 8 * j + 2 * t + (e & 1);
          const int32_t loc = e < 2 ? loc_a : loc_b;
          const float x = (key < kend && key <= loc) ? sc[j][e] * a.scale : -INFINITY;
          sc[j][e] = x;
          if (e < 2) mx_a = fmaxf(mx_a, x);
          else mx_b = fmaxf(mx_b, x);
        }
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
      const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
      const float al_a = (m_a == -INFINITY || mn_a == -INFINITY) ? (mn_a == -INFINITY ? 1.0f : 0.0f) : expf(m_a - mn_a);
      const float al_b = (m_b == -INFINITY || mn_b == -INFINITY) ? (mn_b == -INFINITY ? 1.0f : 0.0f) : expf(m_b - mn_b);
      float s_a = 0.0f, s_b = 0.0f;
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float mn = e < 2 ? mn_a : mn_b;
          const float p = sc[j][e] == -INFINITY ? 0.0f : expf(sc[j][e] - mn);
          sc[j][e] = p;
          if (e < 2) s_a += p;
          else s_b += p;
        }
      s_a += __shfl_xor_sync(0xffffffffu, s_a, 1);
      s_a += __shfl_xor_sync(0xffffffffu, s_a, 2);
      s_b += __shfl_xor_sync(0xffffffffu, s_b, 1);
      s_b += __shfl_xor_sync(0xffffffffu, s_b, 2);
      d_a = d_a * al_a + s_a;
      d_b = d_b * al_b + s_b;
      m_a = mn_a;
      m_b = mn_b;
      // P as the A operand (16 rows x the warp's 16 keys)
      uint32_t ph[4], pl[4];
      // scaled by 2^10 (exact) so that the lo halves of small probabilities stay out of f16's subnormals
      constexpr float kPs = 1024.0f;
      split_h2(sc[0][0] * kPs, sc[0][1] * kPs, &ph[0], &pl[0]);
      split_h2(sc[0][2] * kPs, sc[0][3] * kPs, &ph[1], &pl[1]);
      split_h2(sc[1][0] * kPs, sc[1][1] * kPs, &ph[2], &pl[2]);
      split_h2(sc[1][2] * kPs, sc[1][3] * kPs, &ph[3], &pl[3]);
      const __half* v0 = reinterpret_cast<const __half*>(vt + (warp * 16 + 2 * t) * STRB);
      const __half* v1 = reinterpret_cast<const __half*>(vt + (warp * 16 + 2 * t + 1) * STRB);
      const __half* v8 = reinterpret_cast<const __half*>(vt + (warp * 16 + 2 * t + 8) * STRB);
      const __half* v9 = reinterpret_cast<const __half*>(vt + (warp * 16 + 2 * t + 9) * STRB);
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        o[n][0] *= al_a;
        o[n][1] *= al_a;
        o[n][2] *= al_b;
        o[n][3] *= al_b;
        const int dd = n * 8 + g;
        const uint32_t b0 = pack_h2(v0[dd], v1[dd]);
        const uint32_t b1 = pack_h2(v8[dd], v9[dd]);
        mma_f16_16816(o[n], ph, b0, b1);
        mma_f16_16816(o[n], pl, b0, b1);
      }
    }
    __syncthreads();  // buffer ti & 1 is free before tile ti + 2 is staged into it
  }

  // Merge the 4 warps' states per row (LSE) and write the row's slot.
  float* mw = reinterpret_cast<float*>(tiles);  // [warps][16]
  float* dw = mw + kDecWarps * 16;               // [warps][16]
  float* ow = dw + kDecWarps * 16;               // [warps][16][D]
  if (t == 0) {
    mw[warp * 16 + g] = m_a;
    mw[warp * 16 + g + 8] = m_b;
    dw[warp * 16 + g] = d_a;
    dw[warp * 16 + g + 8] = d_b;
  }
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    float* ra = ow + (warp * 16 + g) * D + n * 8 + 2 * t;
    float* rb = ow + (warp * 16 + g + 8) * D + n * 8 + 2 * t;
    ra[0] = o[n][0] * (1.0f / 1024.0f);  // undo the P scale (exact)
    ra[1] = o[n][1] * (1.0f / 1024.0f);
    rb[0] = o[n][2] * (1.0f / 1024.0f);
    rb[1] = o[n][3] * (1.0f / 1024.0f);
  }
  __syncthreads();
  for (int i = tid; i < rows_here * D; i += kDecThreads) {
    const int r = i / D, d = i - r * D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecWarps; ++w) M = fmaxf(M, mw[w * 16 + r]);
    float acc = 0.0f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kDecWarps; ++w) {
        const float mv = mw[w * 16 + r];
        if (mv != -INFINITY) acc = fmaf(ow[(w * 16 + r) * D + d], expf(mv - M), acc);
      }
    }
    const int64_t so = static_cast<int64_t>(slot_s[r]) * a.n_head + head_s[r];
    a.part_acc[so * D + d] = acc;
  }
  if (tid < rows_here) {
    const int r = tid;
    float M = -INFINITY;
    for (int w = 0; w < kDecWarps; ++w) M = fmaxf(M, mw[w * 16 + r]);
    float dsum = 0.0f;
    if (M != -INFINITY)
      for (int w = 0; w < kDecWarps; ++w) {
        const float mv = mw[w * 16 + r];
        if (mv != -INFINITY) dsum = fmaf(dw[w * 16 + r], expf(mv - M), dsum);
      }
    const int64_t so = static_cast<int64_t>(slot_s[r]) * a.n_head + head_s[r];
    a.part_m[so] = M;
    a.part_d[so] = dsum;
  }
}

// One CTA per (query row, head): log-sum-exp merge of the row's slots. The slots' weights e^(m_s - M) are
// formed in parallel into shared memory (kMergeCache at a time), so the per-dimension sums are independent
// loads rather than a chain of dependent ones.
constexpr int kMergeCache = 256;
__global__ void attn_merge_kernel(int32_t n_head, int32_t Dv, const int32_t* __restrict__ row_slot,
                                  const float* __restrict__ part_m, const float* __restrict__ part_d,
                                  const float* __restrict__ part_acc, float* __restrict__ out,
                                  float* __restrict__ lse) {
  __shared__ float w_s[kMergeCache];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // the next kernel (the Wo GEMV) may be launched early (HWKV_CUDA_PDL, model_forward.cu); it waits for us
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  const int32_t h = blockIdx.y;
  const int32_t s0 = row_slot[i], s1 = row_slot[i + 1];
  const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, warp = tid >> 5, nw = (nt + 31) / 32;
  // M = max over slots
  float M = -INFINITY;
  for (int32_t sl = s0 + tid; sl < s1; sl += nt) M = fmaxf(M, part_m[static_cast<int64_t>(sl) * n_head + h]);
  M = warp_max(M);
  if (lane == 0) red[warp] = M;
  __syncthreads();
  M = -INFINITY;
  for (int w = 0; w < nw; ++w) M = fmaxf(M, red[w]);
  __syncthreads();
  float* o = out + (i * n_head + h) * Dv;
  if (M == -INFINITY) {
    for (int dv = tid; dv < Dv; dv += nt) o[dv] = 0.0f;
    if (tid == 0 && lse) lse[i * n_head + h] = -INFINITY;
    return;
  }
  // d = sum d_s e^(m_s - M)
  float dsum = 0.0f;
  for (int32_t sl = s0 + tid; sl < s1; sl += nt) {
    const int64_t k = static_cast<int64_t>(sl) * n_head + h;
    const float m = part_m[k];
    if (m != -INFINITY) dsum += part_d[k] * expf(m - M);
  }
  dsum = warp_sum(dsum);
  if (lane == 0) red[warp] = dsum;
  __syncthreads();
  dsum = 0.0f;
  for (int w = 0; w < nw; ++w) dsum += red[w];
  float x[2] = {0.0f, 0.0f};  // dims tid and tid + nt (Dv <= 2 * nt)
  for (int32_t c0 = s0; c0 < s1; c0 += kMergeCache) {
    const int32_t cn = min(kMergeCache, s1 - c0);
    __syncthreads();
    for (int j = tid; j < cn; j += nt) {
      const float m = part_m[static_cast<int64_t>(c0 + j) * n_head + h];
      w_s[j] = m == -INFINITY ? 0.0f : expf(m - M);
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int dv = tid + q * nt;
      if (dv >= Dv) continue;
      float acc = x[q];
#pragma unroll 4
      for (int j = 0; j < cn; ++j) {
        const float wj = w_s[j];
        if (wj != 0.0f) acc = fmaf(part_acc[(static_cast<int64_t>(c0 + j) * n_head + h) * Dv + dv], wj, acc);
      }
      x[q] = acc;
    }
  }
  for (int q = 0; q < 2; ++q) {
    const int dv = tid + q * nt;
    if (dv < Dv) o[dv] = x[q] / dsum;
  }
  for (int dv = tid + 2 * nt; dv < Dv; dv += nt) {  // Dv > 2 * nt: plain loop
    float acc = 0.0f;
    for (int32_t sl = s0; sl < s1; ++sl) {
      const int64_t k = static_cast<int64_t>(sl) * n_head + h;
      const float m = part_m[k];
      if (m != -INFINITY) acc += part_acc[k * Dv + dv] * expf(m - M);
    }
    o[dv] = acc / dsum;
  }
  if (tid == 0 && lse) lse[i * n_head + h] = M + logf(dsum);
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


size_t decode_smem_size(int rows, int D, bool f16) { return decode_smem_bytes(rows, D, f16 ? 2 : 4); }

template <bool F16, int R, int D>
hwkv_status decode_attr(const char* fn, size_t smem) {
  static bool done = false;  // one device per process (hwkv_cuda_api picks it)
  if (!done) {
    HWKV_CU(cudaFuncSetAttribute(attn_decode_kernel<F16, R, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem)));
    done = true;
  }
  return HWKV_OK;
}

template <bool F16, int R, int D>
hwkv_status decode_go(const char* fn, const AttnPlan& p, dim3 grid, const AttnArgs& a) {
  attn_decode_kernel<F16, R, D><<<grid, kDecThreads, p.smem, stream()>>>(a);
  HWKV_CU_LAUNCH(attn_decode_kernel);
  return HWKV_OK;
}


template <int D>
hwkv_status mma_attr(const char* fn, size_t smem) {
  static bool done = false;
  if (!done) {
    HWKV_CU(cudaFuncSetAttribute(attn_decode_mma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem)));
    done = true;
  }
  return HWKV_OK;
}

// Which decode kernel serves F16 stores with more than 4 rows per block (Hogwild! workers x GQA heads):
// the tensor-core one (kind 2) or the FMA one (kind 1). HWKV_CUDA_ATTN=mma / fma forces one; by default
// (auto) kind 2 is taken when the longest block of the call has at least HWKV_CUDA_ATTN_MMA_KEYS keys
// (default 16384). Measured on an H100 (bench/RESULTS.md, 2026-11-26 08:49): 8B shape, W = 4 (16 rows),
// kind 2 was 11% faster at 32K context and 5% slower at 8K, where the step is short and the FMA kernel's
// lighter per-tile work wins; the threshold sits between the two.
// Read at every plan (cheap next to building the plan), so a process may switch (the tests do).
int attn_mma_policy() {  // 0 auto, 1 always, -1 never
  const char* e = std::getenv("HWKV_CUDA_ATTN");
  if (e && std::strcmp(e, "mma") == 0) return 1;
  if (e && std::strcmp(e, "fma") == 0) return -1;
  return 0;
}
int64_t attn_mma_min_keys() {
  const char* e = std::getenv("HWKV_CUDA_ATTN_MMA_KEYS");
  const long long x = e ? std::atoll(e) : 0;
  return x > 0 ? static_cast<int64_t>(x) : static_cast<int64_t>(16384);
}
bool attn_use_mma(int max_rows, int64_t max_block_keys) {
  if (max_rows <= 4) return false;
  const int pol = attn_mma_policy();
  if (pol != 0) return pol > 0;
  return max_block_keys >= attn_mma_min_keys();
}

hwkv_status set_smem_attr(const char* fn, const AttnPlan& plan, bool f16) {
  if (plan.kind == 2) return plan.D == 64 ? mma_attr<64>(fn, plan.smem) : mma_attr<128>(fn, plan.smem);
  if (plan.kind == 0) {
    HWKV_CU(cudaFuncSetAttribute(attn_partial_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(plan.smem)));
    return HWKV_OK;
  }
  if (f16) {
    if (plan.D == 64) return plan.rows == 4 ? decode_attr<true, 4, 64>(fn, plan.smem) : plan.rows == 8 ? decode_attr<true, 8, 64>(fn, plan.smem) : decode_attr<true, 16, 64>(fn, plan.smem);
    return plan.rows == 4 ? decode_attr<true, 4, 128>(fn, plan.smem) : plan.rows == 8 ? decode_attr<true, 8, 128>(fn, plan.smem) : decode_attr<true, 16, 128>(fn, plan.smem);
  }
  if (plan.D == 64) return plan.rows == 4 ? decode_attr<false, 4, 64>(fn, plan.smem) : plan.rows == 8 ? decode_attr<false, 8, 64>(fn, plan.smem) : decode_attr<false, 16, 64>(fn, plan.smem);
  return plan.rows == 4 ? decode_attr<false, 4, 128>(fn, plan.smem) : plan.rows == 8 ? decode_attr<false, 8, 128>(fn, plan.smem) : decode_attr<false, 16, 128>(fn, plan.smem);
}

hwkv_status launch_decode(const char* fn, const AttnPlan& plan, bool f16, dim3 grid, const AttnArgs& a) {
  if (f16) {
    if (plan.D == 64) return plan.rows == 4 ? decode_go<true, 4, 64>(fn, plan, grid, a) : plan.rows == 8 ? decode_go<true, 8, 64>(fn, plan, grid, a) : decode_go<true, 16, 64>(fn, plan, grid, a);
    return plan.rows == 4 ? decode_go<true, 4, 128>(fn, plan, grid, a) : plan.rows == 8 ? decode_go<true, 8, 128>(fn, plan, grid, a) : decode_go<true, 16, 128>(fn, plan, grid, a);
  }
  if (plan.D == 64) return plan.rows == 4 ? decode_go<false, 4, 64>(fn, plan, grid, a) : plan.rows == 8 ? decode_go<false, 8, 64>(fn, plan, grid, a) : decode_go<false, 16, 64>(fn, plan, grid, a);
  return plan.rows == 4 ? decode_go<false, 4, 128>(fn, plan, grid, a) : plan.rows == 8 ? decode_go<false, 8, 128>(fn, plan, grid, a) : decode_go<false, 16, 128>(fn, plan, grid, a);
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

  HWKV_TRY(use_device(fn));
  // ---- kernel and rows per CTA ----
  int max_rows_needed = 1;
  for (int32_t b = 0; b < n_blk; ++b)
    max_rows_needed = std::max(max_rows_needed, (blk_pair_ptr[b + 1] - blk_pair_ptr[b]) * gqa);
  const bool decode = D == Dv && (D == 64 || D == 128);
  int rows = 0;
  const int kstride = D | 1;
  int64_t max_block_keys = 0;
  for (int32_t b = 0; b < n_blk; ++b) max_block_keys = std::max<int64_t>(max_block_keys, s->blocks[blk_ids[b]].len);
  if (decode && s->geo.f16 != 0 && attn_use_mma(max_rows_needed, max_block_keys)) {
    rows = 16;
    plan->kind = 2;
    plan->smem = decode_mma_smem_bytes(D);
  } else if (decode) {
    rows = max_rows_needed <= 4 ? 4 : (max_rows_needed <= 8 ? 8 : kDecRows);
    plan->kind = 1;
    plan->smem = decode_smem_size(rows, D, s->geo.f16 != 0);
  } else {
    static int smem_optin = 0;
    if (smem_optin == 0) HWKV_CU(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_id()));
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
    plan->kind = 0;
    plan->smem = attn_smem_bytes(rows, D, Dv, kstride);
  }
  plan->rows = rows;
  plan->kstride = kstride;

  // ---- split-K chunking ----
  // One chunk length for every block, chosen so that all (chunk, row group, kv head) CTAs together number
  // about 4 per SM: the work is the keys each CTA streams, so a long shared block is cut into as many chunks
  // as it needs however many short blocks the views also hold. Chunks are whole 32-key tiles, >= 64 keys.
  const int64_t min_chunk = 64;
  int64_t key_ctas = 0;  // sum over blocks of len * row groups * n_kv
  for (int32_t b = 0; b < n_blk; ++b)
    key_ctas += static_cast<int64_t>(s->blocks[blk_ids[b]].len) *
                ceil_div(static_cast<int64_t>(blk_pair_ptr[b + 1] - blk_pair_ptr[b]) * gqa, rows) * n_kv;
  const int64_t target = 4LL * sm_count_cached();
  std::vector<int32_t> chunk_keys(static_cast<size_t>(n_blk)), n_chunk(static_cast<size_t>(n_blk));
  auto plan_chunks = [&](int64_t chunk) {
    int64_t slots = 0;
    for (int32_t b = 0; b < n_blk; ++b) {
      const int32_t len = s->blocks[blk_ids[b]].len;
      int64_t ck = std::max<int64_t>(ceil_div(chunk, kKT) * kKT, min_chunk);
      if (ck > len) ck = len;
      chunk_keys[b] = static_cast<int32_t>(ck);
      n_chunk[b] = static_cast<int32_t>(ceil_div(len, ck));
      slots += static_cast<int64_t>(n_chunk[b]) * (blk_pair_ptr[b + 1] - blk_pair_ptr[b]);
    }
    return slots;
  };
  int64_t chunk = std::max<int64_t>(ceil_div(key_ctas, target), 1);
  int64_t n_slots = plan_chunks(chunk);
  const int64_t part_budget = 256LL << 20;
  while (n_slots * n_head * (Dv + 2) * 4 > part_budget) {
    chunk *= 2;
    const int64_t before = n_slots;
    n_slots = plan_chunks(chunk);
    if (n_slots == before) break;
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
    for (size_t pg = 0; pg < blk.pages.size(); ++pg) ptrs.push_back(block_page_ptr(s, blk, pg));
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

  plan->h_items.swap(items);
  plan->h_blk_pairs.swap(blk_pairs);
  plan->h_prow.swap(pair_row);
  plan->h_ploc.swap(pair_loc);
  plan->h_ptab.swap(pair_tab);
  plan->h_pslot.swap(pair_slot);
  plan->h_rslot.swap(row_slot);
  plan->h_ptrs.swap(ptrs);
  plan->h_tab.swap(tab);
  if (plan->n_items > 0) HWKV_TRY(set_smem_attr(fn, *plan, s->geo.f16 != 0));
  return HWKV_OK;
}

AttnCaps attn_plan_needs(const AttnPlan& p) {
  AttnCaps c;
  c.items = p.h_items.size();
  c.pairs = p.h_prow.size();
  c.rslot = p.h_rslot.size();
  c.ptrs = p.h_ptrs.size();
  c.tab = p.h_tab.size();
  c.slots = static_cast<size_t>(p.n_slots);
  return c;
}

AttnCaps attn_caps_headroom(const AttnCaps& n) {
  auto g = [](size_t v) { return v + v / 4 + 64; };
  AttnCaps c;
  c.items = g(n.items);
  c.pairs = g(n.pairs);
  c.rslot = n.rslot;
  c.ptrs = g(n.ptrs);
  c.tab = g(n.tab);
  c.slots = g(n.slots);
  return c;
}

bool attn_caps_fit(const AttnCaps& need, const AttnCaps& cap) {
  return need.items <= cap.items && need.pairs <= cap.pairs && need.rslot == cap.rslot && need.ptrs <= cap.ptrs &&
         need.tab <= cap.tab && need.slots <= cap.slots;
}

size_t attn_plan_layout(AttnPlan* plan, const AttnCaps& cap, std::vector<unsigned char>& hb) {
  auto put = [&hb](const void* src, size_t bytes, size_t cap_bytes) {
    const size_t off = (hb.size() + 15) & ~static_cast<size_t>(15);
    hb.resize(off + cap_bytes);  // zero-filled past the data (padding work items have n_rows = 0)
    if (bytes) std::memcpy(hb.data() + off, src, bytes);
    if (cap_bytes > bytes) std::memset(hb.data() + off + bytes, 0, cap_bytes - bytes);
    return off;
  };
  const size_t start = hb.size();
  plan->o_items = put(plan->h_items.data(), plan->h_items.size() * sizeof(WorkItem), cap.items * sizeof(WorkItem));
  const size_t pb = cap.pairs * sizeof(int32_t);
  plan->o_bp = put(plan->h_blk_pairs.data(), plan->h_blk_pairs.size() * sizeof(int32_t), pb);
  plan->o_row = put(plan->h_prow.data(), plan->h_prow.size() * sizeof(int32_t), pb);
  plan->o_loc = put(plan->h_ploc.data(), plan->h_ploc.size() * sizeof(int32_t), pb);
  plan->o_tab = put(plan->h_ptab.data(), plan->h_ptab.size() * sizeof(int32_t), pb);
  plan->o_slot = put(plan->h_pslot.data(), plan->h_pslot.size() * sizeof(int32_t), pb);
  plan->o_rslot = put(plan->h_rslot.data(), plan->h_rslot.size() * sizeof(int32_t), cap.rslot * sizeof(int32_t));
  plan->o_ptrs = put(plan->h_ptrs.data(), plan->h_ptrs.size() * sizeof(float*), cap.ptrs * sizeof(float*));
  plan->o_ftab = put(plan->h_tab.data(), plan->h_tab.size() * sizeof(float), cap.tab * sizeof(float));
  plan->grid_items = static_cast<int64_t>(cap.items);
  return hb.size() - start;
}

size_t attn_part_bytes(const AttnPlan& plan, size_t slots) {
  const size_t ms = (slots * plan.n_head * sizeof(float) + 15) & ~static_cast<size_t>(15);
  return ms * (2 + static_cast<size_t>(plan.Dv));
}

void attn_plan_bind(AttnPlan* plan, const unsigned char* base, void* part, size_t slots) {
  plan->d_items = reinterpret_cast<const WorkItem*>(base + plan->o_items);
  plan->d_blk_pairs = reinterpret_cast<const int32_t*>(base + plan->o_bp);
  plan->d_prow = reinterpret_cast<const int32_t*>(base + plan->o_row);
  plan->d_ploc = reinterpret_cast<const int32_t*>(base + plan->o_loc);
  plan->d_ptab = reinterpret_cast<const int32_t*>(base + plan->o_tab);
  plan->d_pslot = reinterpret_cast<const int32_t*>(base + plan->o_slot);
  plan->d_rslot = reinterpret_cast<const int32_t*>(base + plan->o_rslot);
  plan->d_ptrs = reinterpret_cast<const float* const*>(base + plan->o_ptrs);
  plan->d_tab = reinterpret_cast<const float*>(base + plan->o_ftab);
  const size_t ms = (slots * plan->n_head * sizeof(float) + 15) & ~static_cast<size_t>(15);
  unsigned char* pb = static_cast<unsigned char*>(part);
  plan->d_m = reinterpret_cast<float*>(pb);
  plan->d_d = reinterpret_cast<float*>(pb + ms);
  plan->d_acc = reinterpret_cast<float*>(pb + 2 * ms);
}

hwkv_status attn_plan_upload(const char* fn, AttnPlan* plan) {
  const AttnCaps cap = attn_plan_needs(*plan);
  plan->host.clear();
  attn_plan_layout(plan, cap, plan->host);
  HWKV_TRY(plan->blob.alloc(fn, plan->host.size()));
  HWKV_TRY(h2d(fn, plan->blob.ptr(), plan->host.data(), plan->host.size()));
  HWKV_TRY(plan->part.alloc(fn, attn_part_bytes(*plan, cap.slots)));
  attn_plan_bind(plan, plan->blob.as<unsigned char>(), plan->part.ptr(), cap.slots);
  return HWKV_OK;
}

hwkv_status attn_plan_run(const char* fn, const hwkv_store* s, const AttnPlan& plan, int32_t layer, const float* q,
                          int64_t q_ld, float scale, float* out, float* lse) {
  if (plan.n_q == 0) return HWKV_OK;
  if (plan.grid_items > 0) {
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
    a.items = plan.d_items;
    a.blk_pairs = plan.d_blk_pairs;
    a.pair_row = plan.d_prow;
    a.pair_loc = plan.d_ploc;
    a.pair_tab = plan.d_ptab;
    a.pair_slot = plan.d_pslot;
    a.pages = plan.d_ptrs;
    a.tab = plan.d_tab;
    a.q = q;
    a.part_m = plan.d_m;
    a.part_d = plan.d_d;
    a.part_acc = plan.d_acc;
    const dim3 grid(static_cast<unsigned>(plan.grid_items), static_cast<unsigned>(plan.n_kv));
    if (plan.kind == 2) {
      if (plan.D == 64) attn_decode_mma_kernel<64><<<grid, kDecThreads, plan.smem, stream()>>>(a);
      else attn_decode_mma_kernel<128><<<grid, kDecThreads, plan.smem, stream()>>>(a);
      HWKV_CU_LAUNCH(attn_decode_mma_kernel);
    } else if (plan.kind == 1) {
      HWKV_TRY(launch_decode(fn, plan, s->geo.f16 != 0, grid, a));
    } else {
      attn_partial_kernel<<<grid, kThreads, plan.smem, stream()>>>(a);
      HWKV_CU_LAUNCH(attn_partial_kernel);
    }
  }
  const int32_t Dv = plan.Dv;
  const dim3 mgrid(static_cast<unsigned>(plan.n_q), static_cast<unsigned>(plan.n_head));
  const int mthreads = Dv >= 128 ? 128 : 32 * static_cast<int>(ceil_div(Dv, 32));
  attn_merge_kernel<<<mgrid, mthreads, 0, stream()>>>(plan.n_head, Dv, plan.d_rslot, plan.d_m, plan.d_d, plan.d_acc,
                                                      out, lse);
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

    HWKV_TRY(use_device(fn));
    // KV codec: decode this layer of the compressed chunks (page pointers of compressed pages point there).
    HWKV_TRY(codec_prepare_layer(fn, s, layer, nullptr, 0));
    AttnPlan plan;
    HWKV_TRY(attn_plan_build(fn, s, r, bt, n_head, &plan));
    HWKV_TRY(attn_plan_upload(fn, &plan));
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
