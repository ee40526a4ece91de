// model_forward.cu — the forward pass of the CUDA model engine (hwkv_model.h semantics, the math of
// core/src/model_llama.cpp), everything on the device:
//
//   embedding rows (widened to f32) -> per layer:
//     rmsnorm -> one GEMM for q|k|v of every token (weights read once per step) -> qkv_post (bias, q/k norm,
//     YaRN factor; K rotated to its block-local position and K/V written into the write blocks' pages) ->
//     attention over every view (attn.cu plan, built once per step, run per layer on device pointers) ->
//     GEMM Wo accumulating into the residual -> rmsnorm -> one GEMM gate|up -> SwiGLU -> GEMM Wd accumulating
//   -> final rmsnorm of the requested rows -> LM head GEMM -> only those rows copied back.
//
// GEMMs (cuBLAS, loaded at run time, see blas.cuh): F32 weights run as FP32 GEMMs (CUBLAS_COMPUTE_32F_PEDANTIC:
// no TF32); F16/BF16 weights are used as stored, with the activations rounded to the weight type at the GEMM
// input and float32 accumulation and output (tensor cores). Q8_0 weights go to model_q8.cu (activations
// quantized per 32 like the CPU core, int32 block dots). Everything else is float32.
// The host only plans: validation, block growth, page pointers and cos/sin rows for the new keys, the
// attention plan. One synchronisation per call (the logits copy).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attn.cuh"
#include "codec.cuh"
#include "core_host.cuh"
#include "gemv.cuh"
#include "model.cuh"
#include "model_q8.cuh"
#include "ops.cuh"
#include "rope.cuh"
#include "store.cuh"

namespace hwkv_cuda {

namespace {

__device__ __forceinline__ float wload(const void* base, int32_t type, int64_t i) {
  if (type == HWKV_WTYPE_F32) return static_cast<const float*>(base)[i];
  const uint16_t u = static_cast<const uint16_t*>(base)[i];
  if (type == HWKV_WTYPE_BF16) return __uint_as_float(static_cast<uint32_t>(u) << 16);
  return __half2float(__ushort_as_half(u));
}

// Programmatic dependent launch (HWKV_CUDA_PDL=1, Hopper): the decode GEMVs are launched with
// cudaLaunchAttributeProgrammaticStreamSerialization, so their CTAs may start while the previous kernel
// finishes; they prefetch their weight rows into L2 (weights never depend on the previous kernel) and then
// wait for it (griddepcontrol.wait) before touching activations or outputs. Kernels that precede a GEMV
// allow that early start (griddepcontrol.launch_dependents; a no-op for dependents launched normally).
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
// L2 prefetch of bytes [p, p + n) (p 16-byte aligned, n a multiple of 16).
__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(n) : "memory");
#endif
}

// Whether the GEMVs of the forward being enqueued use PDL (set around the enqueue, per model).
thread_local bool t_pdl = false;

template <typename... KArgs, typename... Args>
cudaError_t launch_maybe_pdl(void (*kern)(KArgs...), dim3 grid, dim3 block, Args... args) {
  if (!t_pdl) {
    kern<<<grid, block, 0, stream()>>>(static_cast<KArgs>(args)...);
    return cudaGetLastError();
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream();
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = at;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kern, static_cast<KArgs>(args)...);
}

__global__ void widen_kernel(const void* src, int32_t type, int64_t n, float* __restrict__ dst) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = wload(src, type, i);
}

__global__ void embed_kernel(const void* table, int32_t type, int64_t D, const int32_t* __restrict__ tokens,
                             int64_t n_tok, float* __restrict__ x) {
  const int64_t total = n_tok * D;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / D, d = i - t * D;
    x[i] = wload(table, type, static_cast<int64_t>(tokens[t]) * D + d);
  }
}

__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One CTA per row: out = x / sqrt(mean(x^2) + eps) * w (sum of squares in double, as the CPU core). 1024
// threads, each keeping its (up to kNormCache) elements in registers between the two passes: a decode step's
// norms are single rows, so their latency, not their bytes, is what counts.
constexpr int kNormThreads = 1024;
constexpr int kNormCache = 8;
__global__ void __launch_bounds__(kNormThreads) rmsnorm_kernel(const float* __restrict__ x, int64_t ldx,
                                                               const float* __restrict__ w, int32_t n, float eps,
                                                               float* __restrict__ out, int64_t ldo) {
  __shared__ double red[kNormThreads / 32];
  pdl_trigger();
  const float* xr = x + blockIdx.x * ldx;
  float* o = out + blockIdx.x * ldo;
  float v[kNormCache];
  double ss = 0.0;
#pragma unroll
  for (int j = 0; j < kNormCache; ++j) {
    const int i = threadIdx.x + j * kNormThreads;
    v[j] = i < n ? xr[i] : 0.0f;
    ss += static_cast<double>(v[j]) * v[j];
  }
  for (int i = threadIdx.x + kNormCache * kNormThreads; i < n; i += kNormThreads) ss += static_cast<double>(xr[i]) * xr[i];
  ss = warp_sum_d(ss);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
  __syncthreads();
  double tot = 0.0;
  for (int i = 0; i < kNormThreads / 32; ++i) tot += red[i];
  const float s = static_cast<float>(1.0 / sqrt(tot / static_cast<double>(n) + static_cast<double>(eps)));
#pragma unroll
  for (int j = 0; j < kNormCache; ++j) {
    const int i = threadIdx.x + j * kNormThreads;
    if (i < n) o[i] = __fmul_rn(__fmul_rn(v[j], s), w[i]);
  }
  for (int i = threadIdx.x + kNormCache * kNormThreads; i < n; i += kNormThreads)
    o[i] = __fmul_rn(__fmul_rn(xr[i], s), w[i]);
}

struct QkvPostArgs {
  float* qkv;
  int64_t ld;  // floats per token row: qd + 2 kvd
  int32_t n_tok, n_head, n_kv, hd, rot_dim, layer;
  const float *bq, *bk, *bv, *qn, *kn;
  float eps, af;
  RopeDev rd;
  PageGeo geo;
  float* const* wpage;   // [n_tok] page of the token's write position
  const int32_t* wrow;   // [n_tok] row inside that page
  const float* ktab;     // [n_tok][2 * half] cos/sin at the key's block-local position
  float* cap_k;          // K/V tap (model_capture_kv) or nullptr: [n_layer][n_tok][kvd] pre-RoPE keys ...
  float* cap_v;          // ... and values
};

constexpr int kPostWarps = 4;

// One warp per (token, head) of q, k and v: bias, q/k RMSNorm over the head, attention factor on the rotary
// dims; q written back in place (attention rotates it per block), k rotated and written to the page, v copied.
__global__ void __launch_bounds__(kPostWarps * 32) qkv_post_kernel(QkvPostArgs a) {
  extern __shared__ float post_smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int32_t H = a.n_head + 2 * a.n_kv;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kPostWarps + warp;
  if (r >= static_cast<int64_t>(a.n_tok) * H) return;
  const int32_t t = static_cast<int32_t>(r / H), j = static_cast<int32_t>(r % H);
  const int32_t hd = a.hd;
  const int64_t qd = static_cast<int64_t>(a.n_head) * hd, kvd = static_cast<int64_t>(a.n_kv) * hd;
  int kind;
  int32_t g;
  float* src;
  const float* bias;
  const float* nw;
  if (j < a.n_head) {
    kind = 0;
    g = j;
    src = a.qkv + t * a.ld + static_cast<int64_t>(g) * hd;
    bias = a.bq ? a.bq + static_cast<int64_t>(g) * hd : nullptr;
    nw = a.qn;
  } else if (j < a.n_head + a.n_kv) {
    kind = 1;
    g = j - a.n_head;
    src = a.qkv + t * a.ld + qd + static_cast<int64_t>(g) * hd;
    bias = a.bk ? a.bk + static_cast<int64_t>(g) * hd : nullptr;
    nw = a.kn;
  } else {
    kind = 2;
    g = j - a.n_head - a.n_kv;
    src = a.qkv + t * a.ld + qd + kvd + static_cast<int64_t>(g) * hd;
    bias = a.bv ? a.bv + static_cast<int64_t>(g) * hd : nullptr;
    nw = nullptr;
  }
  float* buf = post_smem + warp * hd;
  for (int d = lane; d < hd; d += 32) {
    float v = src[d];
    if (bias) v = __fadd_rn(v, bias[d]);
    buf[d] = v;
  }
  __syncwarp();
  if (kind < 2 && nw) {
    double ss = 0.0;
    for (int d = lane; d < hd; d += 32) ss += static_cast<double>(buf[d]) * buf[d];
    ss = warp_sum_d(ss);
    const float s = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(hd) + static_cast<double>(a.eps)));
    __syncwarp();
    for (int d = lane; d < hd; d += 32) buf[d] = __fmul_rn(__fmul_rn(buf[d], s), nw[d]);
  }
  if (kind < 2 && a.af != 1.0f)
    for (int d = lane; d < a.rot_dim; d += 32) buf[d] = __fmul_rn(buf[d], a.af);
  __syncwarp();
  if (kind > 0 && a.cap_k) {  // K/V tap: keys before RoPE (after bias, q/k norm, attention factor), values
    float* cap = (kind == 1 ? a.cap_k : a.cap_v) + (static_cast<int64_t>(a.layer) * a.n_tok + t) * kvd +
                 static_cast<int64_t>(g) * hd;
    for (int d = lane; d < hd; d += 32) cap[d] = buf[d];
  }
  if (kind == 0) {
    for (int d = lane; d < hd; d += 32) src[d] = buf[d];
  } else if (kind == 1) {
    float* page = a.wpage[t];
    const int64_t o = a.geo.k_off(a.layer, g, a.wrow[t]);
    const int32_t f16 = a.geo.f16;
    const float* tab = a.ktab + static_cast<int64_t>(t) * 2 * a.rd.half;
    const int32_t units = rope_units(a.rd);
    for (int u = lane; u < units; u += 32)
      rope_unit_fn(
          a.rd, u, [buf](int32_t i) { return buf[i]; },
          [page, o, f16](int32_t i, float x) { kv_set(page, o + i, x, f16); }, tab);
  } else {
    float* page = a.wpage[t];
    const int64_t o = a.geo.v_off(a.layer, g, a.wrow[t]);
    for (int d = lane; d < hd; d += 32) kv_set(page, o + d, buf[d], a.geo.f16);
  }
}

// dst[r, c] (contiguous, 16-bit of `type`) = src[r * lds + c]
__global__ void to16_kernel(const float* __restrict__ src, int64_t lds, int64_t rows, int64_t cols, int32_t type,
                            uint16_t* __restrict__ dst) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    const float v = src[r * lds + c];
    dst[i] = type == HWKV_WTYPE_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
  }
}

// In place: ff[t, i] = silu(ff[t, i]) * ff[t, F + i] for the [n_tok, 2F] gate|up buffer.
__global__ void swiglu_kernel(float* __restrict__ ff, int64_t n_tok, int64_t F) {
  const int64_t total = n_tok * F;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / F, c = i - t * F;
    float* row = ff + t * 2 * F;
    const float g = row[c];
    row[c] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), row[F + c]);
  }
}

// dst[r * ldd + c] = src[rows[r] * lds + c]
__global__ void gather_rows_kernel(const float* __restrict__ src, int64_t lds, const int32_t* __restrict__ rows,
                                   int64_t n_rows, int64_t cols, float* __restrict__ dst, int64_t ldd) {
  const int64_t total = n_rows * cols;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    dst[r * ldd + c] = src[static_cast<int64_t>(rows[r]) * lds + c];
  }
}

// ---- GEMV for the decode step (n_tok <= kGemvMaxTok rows): F16/BF16 weights streamed once with 16-byte loads,
// float32 activations (not rounded: more accurate than the GEMM path, which rounds them to the weight type)
// and float32 accumulation. A CTA of 4 warps owns kGemvRows output rows; the warps split the input dimension
// (warp w takes the 256-element steps w, w + 4, ...), each lane 8 consecutive inputs per step for all rows,
// so every activation load serves kGemvRows rows; the 4 partial sums meet in shared memory (fixed order:
// deterministic). n_out / 4 CTAs keep even the 4096-row projections spread over every SM.
// y = beta * y + x W^T.

template <bool BF16>
__device__ __forceinline__ void widen8(const uint4& u, float* f) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (BF16) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    } else {
      const float2 h = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
      f[2 * i] = h.x;
      f[2 * i + 1] = h.y;
    }
  }
}


// GLU (the FFN's gate|up GEMV with SwiGLU fused into its epilogue): W holds the gate rows [0, n_out) followed
// by the up rows [n_out, 2 n_out); CTA c computes gate and up rows 2c, 2c + 1 and writes
// y[t, i] = silu(gate_i) * up_i (the swiglu_kernel arithmetic) for i = 2c, 2c + 1.
template <int NT, bool BF16, bool GLU>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(const uint16_t* __restrict__ W, int64_t n_out,
                                                                int64_t n_in, const float* __restrict__ x,
                                                                int64_t ldx, float* __restrict__ y, int64_t ldy,
                                                                float beta, int pdl) {
  constexpr int RW = kGemvRows;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * (GLU ? RW / 2 : RW);
  if (pdl) {
    if (threadIdx.x < RW) {
      const int64_t row = gemv_row<GLU>(threadIdx.x, row0, n_out);
      prefetch_l2(W + row * n_in, static_cast<uint32_t>(n_in * 2));
    }
    pdl_wait();
  }
  pdl_trigger();
  float acc[RW][NT];
#pragma unroll
  for (int r = 0; r < RW; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
  const uint16_t* wr[RW];
#pragma unroll
  for (int r = 0; r < RW; ++r) wr[r] = W + gemv_row<GLU>(r, row0, n_out) * n_in;
#pragma unroll 2
  for (int64_t i0 = (static_cast<int64_t>(warp) * 32 + lane) * 8; i0 < n_in; i0 += kGemvWarps * 256) {
    uint4 wv[RW];
#pragma unroll
    for (int r = 0; r < RW; ++r) wv[r] = __ldg(reinterpret_cast<const uint4*>(wr[r] + i0));
    float xv[NT][8];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const float4 a = __ldg(reinterpret_cast<const float4*>(x + t * ldx + i0));
      const float4 b = __ldg(reinterpret_cast<const float4*>(x + t * ldx + i0 + 4));
      xv[t][0] = a.x; xv[t][1] = a.y; xv[t][2] = a.z; xv[t][3] = a.w;
      xv[t][4] = b.x; xv[t][5] = b.y; xv[t][6] = b.z; xv[t][7] = b.w;
    }
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      float wf[8];
      widen8<BF16>(wv[r], wf);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float s = acc[r][t];
#pragma unroll
        for (int j = 0; j < 8; ++j) s = fmaf(wf[j], xv[t][j], s);
        acc[r][t] = s;
      }
    }
  }
  gemv_finish<NT, GLU>(acc, row0, n_out, y, ldy, beta);
}

template <bool BF16, bool GLU>
cudaError_t gemv_launch(int64_t n_tok, const uint16_t* W, int64_t n_out, int64_t n_in, const float* x, int64_t ldx,
                        float* y, int64_t ldy, float beta) {
  const unsigned grid = static_cast<unsigned>(ceil_div(n_out, GLU ? kGemvRows / 2 : kGemvRows));
  const int pdl = t_pdl ? 1 : 0;
#define HWKV_GEMV(NT) \
  return launch_maybe_pdl(gemv_kernel<NT, BF16, GLU>, dim3(grid), dim3(kGemvWarps * 32), W, n_out, n_in, x, ldx, y, \
                          ldy, beta, pdl)
  switch (n_tok) {
    case 1: HWKV_GEMV(1); break;
    case 2: HWKV_GEMV(2); break;
    case 3: HWKV_GEMV(3); break;
    case 4: HWKV_GEMV(4); break;
    case 5: HWKV_GEMV(5); break;
    case 6: HWKV_GEMV(6); break;
    case 7: HWKV_GEMV(7); break;
    default: HWKV_GEMV(8); break;
  }
#undef HWKV_GEMV
}

// ---- Tensor-core GEMV for BF16 weights (the autotune's second candidate, see gemv_tune): mma.sync
// m16n8k16 with f32 accumulation. A warp owns a tile of 16 weight rows (GLU: 8 gate rows and the same 8 up
// rows) and all tokens as the N = 8 columns (missing tokens are zero); the kMmaWarps warps of a CTA split the
// input dimension. k is permuted identically in A and B so that lane (g = lane / 4, t = lane % 4) reads 16
// contiguous bytes of rows g and g + 8 at k0 + 8t and the activations of token g at the same k; those 8
// values feed two MMAs (k0 + 8t + 0..3 as the logical columns 2t, 2t + 1, 2t + 8, 2t + 9, then + 4..7).
// The activations are split as x = hi + lo with hi, lo bfloat16 (two MMAs each), so the products keep ~16
// mantissa bits of x: as accurate as the FMA GEMV, not the GEMM path's rounded activations.
constexpr int kMmaWarps = 8;
constexpr int kMmaUnroll = 4;

__device__ __forceinline__ uint32_t pack_bf16x2(float a, float b) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ void mma_bf16_16816(float* c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// hi/lo bf16 pairs of x[0..8) for the two MMAs: b[0..1] (hi, first MMA), b[2..3] (hi, second), b[4..7] (lo).
__device__ __forceinline__ void split_x8(const float* xv, uint32_t* b) {
  float hi[8], lo[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    hi[j] = __bfloat162float(__float2bfloat16_rn(xv[j]));
    lo[j] = xv[j] - hi[j];
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    b[j] = pack_bf16x2(hi[2 * j], hi[2 * j + 1]);
    b[4 + j] = pack_bf16x2(lo[2 * j], lo[2 * j + 1]);
  }
}

template <bool GLU>
__global__ void __launch_bounds__(kMmaWarps * 32) gemv_mma_kernel(const uint16_t* __restrict__ W, int64_t n_out,
                                                                   int64_t n_in, int32_t n_tok,
                                                                   const float* __restrict__ x, int64_t ldx,
                                                                   float* __restrict__ y, int64_t ldy, float beta,
                                                                   int pdl) {
  __shared__ float part[kMmaWarps][16][8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  int64_t ra, rb;
  if (GLU) {
    ra = min(static_cast<int64_t>(blockIdx.x) * 8 + g, n_out - 1);
    rb = ra + n_out;
  } else {
    ra = min(static_cast<int64_t>(blockIdx.x) * 16 + g, n_out - 1);
    rb = min(static_cast<int64_t>(blockIdx.x) * 16 + g + 8, n_out - 1);
  }
  if (pdl) {
    if (warp == 0 && t == 0) {  // lanes 0, 4, ..., 28: rows g and g + 8
      prefetch_l2(W + ra * n_in, static_cast<uint32_t>(n_in * 2));
      prefetch_l2(W + rb * n_in, static_cast<uint32_t>(n_in * 2));
    }
    pdl_wait();
  }
  pdl_trigger();
  const uint16_t* wa = W + ra * n_in;
  const uint16_t* wb = W + rb * n_in;
  const bool xon = g < n_tok;
  const float* xr = x + static_cast<int64_t>(xon ? g : 0) * ldx;
  float c0[4] = {0.f, 0.f, 0.f, 0.f}, c1[4] = {0.f, 0.f, 0.f, 0.f};
  constexpr int64_t kStep = kMmaWarps * 32;
  // The loop bound is warp-uniform (mma.sync needs all 32 lanes): base runs over the warp's 32-wide k steps,
  // each lane's 8 values at base + 8t are loaded (or zeroed past n_in) inside.
  for (int64_t base = static_cast<int64_t>(warp) * 32; base < n_in; base += kStep * kMmaUnroll) {
    const int64_t k0 = base + 8 * t;
    uint4 A[kMmaUnroll], B[kMmaUnroll];
#pragma unroll
    for (int u = 0; u < kMmaUnroll; ++u) {
      const int64_t k = k0 + u * kStep;
      if (k < n_in) {
        A[u] = __ldg(reinterpret_cast<const uint4*>(wa + k));
        B[u] = __ldg(reinterpret_cast<const uint4*>(wb + k));
      } else {
        A[u] = make_uint4(0u, 0u, 0u, 0u);
        B[u] = A[u];
      }
    }
#pragma unroll
    for (int u = 0; u < kMmaUnroll; ++u) {
      const int64_t k = k0 + u * kStep;
      float xv[8];
      if (xon && k < n_in) {
        const float4 p = __ldg(reinterpret_cast<const float4*>(xr + k));
        const float4 q = __ldg(reinterpret_cast<const float4*>(xr + k + 4));
        xv[0] = p.x; xv[1] = p.y; xv[2] = p.z; xv[3] = p.w;
        xv[4] = q.x; xv[5] = q.y; xv[6] = q.z; xv[7] = q.w;
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) xv[j] = 0.0f;
      }
      uint32_t b[8];
      split_x8(xv, b);
      mma_bf16_16816(c0, A[u].x, B[u].x, A[u].y, B[u].y, b[0], b[1]);
      mma_bf16_16816(c1, A[u].z, B[u].z, A[u].w, B[u].w, b[2], b[3]);
      mma_bf16_16816(c0, A[u].x, B[u].x, A[u].y, B[u].y, b[4], b[5]);
      mma_bf16_16816(c1, A[u].z, B[u].z, A[u].w, B[u].w, b[6], b[7]);
    }
  }
  // C fragment: (row g, tokens 2t, 2t + 1) and (row g + 8, same tokens)
  part[warp][g][2 * t] = c0[0] + c1[0];
  part[warp][g][2 * t + 1] = c0[1] + c1[1];
  part[warp][g + 8][2 * t] = c0[2] + c1[2];
  part[warp][g + 8][2 * t + 1] = c0[3] + c1[3];
  __syncthreads();
  const int r = threadIdx.x >> 3, tok = threadIdx.x & 7;
  if (GLU) {
    if (r < 8 && tok < n_tok) {
      const int64_t row = static_cast<int64_t>(blockIdx.x) * 8 + r;
      if (row < n_out) {
        float gt = part[0][r][tok], up = part[0][r + 8][tok];
#pragma unroll
        for (int w = 1; w < kMmaWarps; ++w) {
          gt += part[w][r][tok];
          up += part[w][r + 8][tok];
        }
        y[tok * ldy + row] = __fmul_rn(__fdiv_rn(gt, __fadd_rn(1.0f, expf(-gt))), up);
      }
    }
  } else if (r < 16 && tok < n_tok) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * 16 + r;
    if (row < n_out) {
      float v = part[0][r][tok];
#pragma unroll
      for (int w = 1; w < kMmaWarps; ++w) v += part[w][r][tok];
      float* o = y + tok * ldy + row;
      *o = beta == 0.0f ? v : beta * *o + v;
    }
  }
}

template <bool GLU>
cudaError_t gemv_mma_launch(int64_t n_tok, const uint16_t* W, int64_t n_out, int64_t n_in, const float* x,
                            int64_t ldx, float* y, int64_t ldy, float beta) {
  const unsigned grid = static_cast<unsigned>(ceil_div(n_out, GLU ? 8 : 16));
  return launch_maybe_pdl(gemv_mma_kernel<GLU>, dim3(grid), dim3(kMmaWarps * 32), W, n_out, n_in,
                          static_cast<int32_t>(n_tok), x, ldx, y, ldy, beta, t_pdl ? 1 : 0);
}

// Greedy pick per row (HWKV_LOGITS_ARGMAX): one CTA per row; ties go to the lowest index, NaN is never
// picked, a row without a value > -inf gives id 0 (the CPU core's and sampling.ts's rule). out[2r] = id,
// out[2r + 1] = the max.
constexpr int kArgmaxThreads = 1024;
__global__ void __launch_bounds__(kArgmaxThreads) argmax_kernel(const float* __restrict__ logits, int32_t n,
                                                               float* __restrict__ out) {
  __shared__ float sv[kArgmaxThreads / 32];
  __shared__ int32_t si[kArgmaxThreads / 32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * n;
  float bv = -INFINITY;
  int32_t bi = INT32_MAX;
  for (int32_t i = threadIdx.x; i < n; i += kArgmaxThreads) {
    const float v = row[i];
    if (v > bv) {
      bv = v;
      bi = i;
    }
  }
  auto better = [](float ov, int32_t oi, float v, int32_t i) { return ov > v || (ov == v && oi < i); };
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  if ((threadIdx.x & 31) == 0) {
    sv[threadIdx.x >> 5] = bv;
    si[threadIdx.x >> 5] = bi;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kArgmaxThreads / 32; ++w)
      if (better(sv[w], si[w], bv, bi)) {
        bv = sv[w];
        bi = si[w];
      }
    out[2 * blockIdx.x] = bi == INT32_MAX ? 0.0f : static_cast<float>(bi);
    out[2 * blockIdx.x + 1] = bv;
  }
}

constexpr int kThreads = 256;

bool gemv_ok(const hwkv_model* m, const void* W, int32_t wtype, const float* x, int64_t ldx, int64_t n_tok,
             int64_t n_in) {
  // Q8_0: the GEMV reads the quantized activations (contiguous), blocks are 2-byte aligned
  if (wtype == HWKV_WTYPE_Q8_0)
    return n_tok <= kGemvMaxTok && n_in % kQ8Block == 0 && (reinterpret_cast<uintptr_t>(W) & 1) == 0 && !m->force_gemm;
  return (wtype == HWKV_WTYPE_BF16 || wtype == HWKV_WTYPE_F16) && n_tok <= kGemvMaxTok && n_in % 8 == 0 &&
         ldx % 4 == 0 && (reinterpret_cast<uintptr_t>(W) & 15) == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0 &&
         !m->force_gemm;
}

uint64_t gemv_key(int64_t n_out, int64_t n_in, int64_t n_tok, bool glu) {
  return (static_cast<uint64_t>(n_out) << 32) ^ (static_cast<uint64_t>(n_in) << 8) ^
         (static_cast<uint64_t>(n_tok) << 1) ^ (glu ? 1u : 0u);
}

// 1 = FMA GEMV, 2 = tensor-core GEMV (BF16 weights only): forced by HWKV_CUDA_GEMV, else the autotune's
// choice for this (shape, rows), else FMA (a shape the tune has not seen).
int gemv_pick(const hwkv_model* m, int64_t n_out, int64_t n_in, int64_t n_tok, bool glu) {
  if (n_in % 32 != 0) return 1;  // the tensor-core GEMV is used (and was measured) for n_in multiple of 32 only
  if (m->gemv_mode != 0) return m->gemv_mode;
  const auto it = m->gemv_choice.find(gemv_key(n_out, n_in, n_tok, glu));
  return it == m->gemv_choice.end() ? 1 : it->second;
}

// y[n_tok, n_out] (row stride ldy) = beta * y + x[n_tok, n_in] (row stride ldx) . W[n_out, n_in]^T.
// W points at n_out consecutive rows of one type (a fused group may span several tensors).
hwkv_status linear(hwkv_model* m, const char* fn, const void* W, int32_t wtype, int64_t n_out, const float* x,
                   int64_t ldx, int64_t n_tok, int64_t n_in, float* y, int64_t ldy, float beta) {
  if (n_tok == 0) return HWKV_OK;
  if (wtype == HWKV_WTYPE_Q8_0) {
    // activations quantized per 32 like the CPU core (model_q8.cuh); act16 was sized for this by the forward
    HWKV_TRY(m->act16.ensure(fn, q8_act_bytes(n_tok, n_in)));
    HWKV_TRY(q8_quantize(fn, x, ldx, n_tok, n_in, m->act16.as<void>()));
    const uint8_t* W8 = static_cast<const uint8_t*>(W);
    if (gemv_ok(m, W, wtype, x, ldx, n_tok, n_in))
      return q8_gemv(fn, W8, n_out, n_in, m->act16.as<void>(), n_tok, y, ldy, beta, false);
    return q8_gemm(fn, W8, n_out, n_in, m->act16.as<void>(), n_tok, y, ldy, beta);
  }
  if (gemv_ok(m, W, wtype, x, ldx, n_tok, n_in)) {
    const uint16_t* W16 = static_cast<const uint16_t*>(W);
    if (wtype == HWKV_WTYPE_BF16 && gemv_pick(m, n_out, n_in, n_tok, false) == 2)
      HWKV_CU((gemv_mma_launch<false>(n_tok, W16, n_out, n_in, x, ldx, y, ldy, beta)));
    else if (wtype == HWKV_WTYPE_BF16)
      HWKV_CU((gemv_launch<true, false>(n_tok, W16, n_out, n_in, x, ldx, y, ldy, beta)));
    else
      HWKV_CU((gemv_launch<false, false>(n_tok, W16, n_out, n_in, x, ldx, y, ldy, beta)));
    return HWKV_OK;
  }
  const float alpha = 1.0f;
  const void* B = x;
  int64_t ldb = ldx;
  cudaDataType dt = CUDA_R_32F;
  int compute = kCublasCompute32FPedantic;
  if (wtype != HWKV_WTYPE_F32) {
    HWKV_TRY(m->act16.ensure(fn, static_cast<size_t>(n_tok * n_in) * 2));
    to16_kernel<<<grid_for(n_tok * n_in, kThreads), kThreads, 0, stream()>>>(x, ldx, n_tok, n_in, wtype,
                                                                           m->act16.as<uint16_t>());
    HWKV_CU_LAUNCH(to16_kernel);
    B = m->act16.as<void>();
    ldb = n_in;
    dt = wtype == HWKV_WTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    compute = kCublasCompute32F;
  }
  const cublasStatus_t st = m->blas->gemm_ex(
      m->handle, kCublasOpT, kCublasOpN, static_cast<int>(n_out), static_cast<int>(n_tok), static_cast<int>(n_in),
      &alpha, W, dt, static_cast<int>(n_in), B, dt, static_cast<int>(ldb), &beta, y, CUDA_R_32F,
      static_cast<int>(ldy), compute, kCublasGemmDefault);
  if (st != 0) return blas_fail(m->blas, st, fn, "cublasGemmEx");
  return HWKV_OK;
}

hwkv_status linear_t(hwkv_model* m, const char* fn, const DevTensor* W, const float* x, int64_t ldx, int64_t n_tok,
                     float* y, int64_t ldy, float beta) {
  return linear(m, fn, W->dev, W->type, W->ne0, x, ldx, n_tok, W->ne1, y, ldy, beta);
}

hwkv_status rmsnorm(const char* fn, const float* x, int64_t ldx, const float* w, int64_t rows, int64_t n, float eps,
                    float* out, int64_t ldo) {
  if (rows == 0) return HWKV_OK;
  if (rows > 0x7fffffffLL) return fail(HWKV_ERR_UNSUPPORTED, "%s: too many rows", fn);
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kNormThreads, 0, stream()>>>(x, ldx, w, static_cast<int32_t>(n), eps,
                                                                               out, ldo);
  HWKV_CU_LAUNCH(rmsnorm_kernel);
  return HWKV_OK;
}

// The autotune: times the FMA and the tensor-core GEMV on every BF16 decode projection shape of a step with
// `n` rows (layer 0 stands for every layer; the LM head at n_head rows) and keeps the faster per (shape,
// rows) in m->gemv_choice. Runs before any capture, on the model's stream, on scratch inputs (timing does not
// depend on the values); a shape already decided costs one map lookup.
struct TuneShape {
  const uint16_t* W;
  int64_t n_out, n_in, rows;
  bool glu;
};

void gemv_run(int cand, const TuneShape& t, const float* x, float* y) {  // errors: cudaGetLastError after
  if (cand == 2) {
    if (t.glu) (void)gemv_mma_launch<true>(t.rows, t.W, t.n_out, t.n_in, x, t.n_in, y, t.n_out, 0.0f);
    else (void)gemv_mma_launch<false>(t.rows, t.W, t.n_out, t.n_in, x, t.n_in, y, t.n_out, 0.0f);
  } else {
    if (t.glu) (void)gemv_launch<true, true>(t.rows, t.W, t.n_out, t.n_in, x, t.n_in, y, t.n_out, 0.0f);
    else (void)gemv_launch<true, false>(t.rows, t.W, t.n_out, t.n_in, x, t.n_in, y, t.n_out, 0.0f);
  }
}

// Deterministic inputs in [-1, 1) for the tune's agreement check.
__global__ void tune_fill_kernel(float* __restrict__ x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u + 12345u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    x[i] = static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
}

hwkv_status gemv_tune(hwkv_model* m, const char* fn, int64_t n, int64_t n_head) {
  if (m->gemv_mode != 0 || m->force_gemm) return HWKV_OK;
  const hwkv_model_params& P = m->p;
  const int64_t D = P.n_embd, hd = P.head_dim, qd = static_cast<int64_t>(P.n_head) * hd,
                kvd = static_cast<int64_t>(P.n_kv_head) * hd, F = P.n_ff;
  std::vector<TuneShape> todo;
  auto want = [&](const void* W, int32_t type, int64_t n_out, int64_t n_in, int64_t rows, bool glu) {
    if (type != HWKV_WTYPE_BF16 || rows < 1 || rows > kGemvMaxTok || n_in % 32 != 0 ||
        (reinterpret_cast<uintptr_t>(W) & 15) != 0)
      return;
    const uint64_t k = gemv_key(n_out, n_in, rows, glu);
    if (m->gemv_choice.count(k)) return;
    for (const TuneShape& t : todo)
      if (gemv_key(t.n_out, t.n_in, t.rows, t.glu) == k) return;
    todo.push_back({static_cast<const uint16_t*>(W), n_out, n_in, rows, glu});
  };
  const DevLayer& L = m->layers[0];
  for (const int64_t rows : {n, n_head}) {
    if (L.qkv_fused) {
      want(L.wq->dev, L.wq->type, qd + 2 * kvd, D, rows, false);
    } else {
      for (const DevTensor* t : {L.wq, L.wk, L.wv}) want(t->dev, t->type, t->ne0, t->ne1, rows, false);
    }
    want(L.wo->dev, L.wo->type, L.wo->ne0, L.wo->ne1, rows, false);
    if (L.gu_fused && F % 2 == 0) {
      want(L.gate->dev, L.gate->type, F, D, rows, true);
    } else if (L.gu_fused) {
      want(L.gate->dev, L.gate->type, 2 * F, D, rows, false);
    } else {
      want(L.gate->dev, L.gate->type, F, D, rows, false);
      want(L.up->dev, L.up->type, F, D, rows, false);
    }
    want(L.down->dev, L.down->type, L.down->ne0, L.down->ne1, rows, false);
  }
  want(m->output->dev, m->output->type, m->output->ne0, m->output->ne1, n_head, false);
  if (todo.empty()) return HWKV_OK;
  size_t floats = 0;
  for (const TuneShape& t : todo) floats = std::max(floats, static_cast<size_t>(t.rows * (t.n_in + 2 * t.n_out)));
  float* buf = nullptr;
  HWKV_CU(cudaMalloc(&buf, floats * sizeof(float)));
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  hwkv_status st = HWKV_OK;
  auto run_all = [&]() -> cudaError_t {
    tune_fill_kernel<<<grid_for(static_cast<int64_t>(floats), 256), 256, 0, stream()>>>(buf, static_cast<int64_t>(floats));
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    std::vector<float> h1, h2;
    if ((e = cudaEventCreate(&e0)) != cudaSuccess || (e = cudaEventCreate(&e1)) != cudaSuccess) return e;
    constexpr int kReps = 8;
    for (const TuneShape& t : todo) {
      const float* x = buf;
      float* y = buf + t.rows * t.n_in;
      float best[3] = {1e30f, 1e30f, 1e30f};
      for (int round = 0; round < 3; ++round) {
        for (int cand = 1; cand <= 2; ++cand) {
          gemv_run(cand, t, x, y);  // warm
          if ((e = cudaEventRecord(e0, stream())) != cudaSuccess) return e;
          for (int i = 0; i < kReps; ++i) gemv_run(cand, t, x, y);
          if ((e = cudaEventRecord(e1, stream())) != cudaSuccess) return e;
          if ((e = cudaGetLastError()) != cudaSuccess) return e;
          if ((e = cudaEventSynchronize(e1)) != cudaSuccess) return e;
          float ms = 0.0f;
          if ((e = cudaEventElapsedTime(&ms, e0, e1)) != cudaSuccess) return e;
          best[cand] = std::min(best[cand], ms * 1000.0f / kReps);
        }
      }
      // agreement check on the random inputs: the tensor-core result must match the FMA GEMV's (same math,
      // different summation order; 1e-3 relative to the row's largest output is far above that order's
      // effect and far below any indexing or fragment-layout error)
      float* y2 = y + t.rows * t.n_out;
      gemv_run(1, t, x, y);
      gemv_run(2, t, x, y2);
      if ((e = cudaGetLastError()) != cudaSuccess) return e;
      const size_t ny = static_cast<size_t>(t.rows * t.n_out);
      h1.resize(ny);
      h2.resize(ny);
      if ((e = cudaMemcpyAsync(h1.data(), y, ny * sizeof(float), cudaMemcpyDeviceToHost, stream())) != cudaSuccess ||
          (e = cudaMemcpyAsync(h2.data(), y2, ny * sizeof(float), cudaMemcpyDeviceToHost, stream())) != cudaSuccess ||
          (e = cudaStreamSynchronize(stream())) != cudaSuccess)
        return e;
      double dmax = 0.0, amax = 0.0;
      for (size_t i = 0; i < ny; ++i) {
        const double d = std::fabs(static_cast<double>(h1[i]) - h2[i]);
        dmax = std::isnan(d) ? INFINITY : std::max(dmax, d);
        amax = std::max(amax, std::fabs(static_cast<double>(h1[i])));
      }
      const bool agree = dmax <= 1e-3 * std::max(amax, 1e-30);
      const int pick = agree && best[2] < best[1] ? 2 : 1;
      m->gemv_choice[gemv_key(t.n_out, t.n_in, t.rows, t.glu)] = pick;
      if (m->tune_log)
        std::fprintf(stderr,
                     "hwkv cuda gemv tune: %lld x %lld%s, %lld rows: fma %.1f us, mma %.1f us (rel diff %.1e%s) -> %s\n",
                     static_cast<long long>(t.n_out), static_cast<long long>(t.n_in), t.glu ? " (gate|up)" : "",
                     static_cast<long long>(t.rows), best[1], best[2], dmax / std::max(amax, 1e-30),
                     agree ? "" : ", DISAGREES: mma rejected", pick == 2 ? "mma" : "fma");
    }
    return cudaSuccess;
  };
  const cudaError_t ce = run_all();
  if (ce != cudaSuccess) st = cuda_fail(ce, fn, "gemv autotune");
  if (e0) (void)cudaEventDestroy(e0);
  if (e1) (void)cudaEventDestroy(e1);
  (void)cudaStreamSynchronize(stream());
  (void)cudaFree(buf);
  return st;
}

struct Rollback {
  hwkv_store* s = nullptr;
  const int32_t* blocks = nullptr;
  const int32_t* lens = nullptr;
  int32_t n = 0;
  bool armed = true;
  ~Rollback() {
    if (!armed) return;
    (void)cudaStreamSynchronize(stream());  // nothing queued may still write into pages handed back
    (void)cudaGetLastError();
    for (int32_t i = 0; i < n; ++i)
      if (is_live(s, blocks[i]) && s->blocks[blocks[i]].len > lens[i]) (void)block_truncate(s, blocks[i], lens[i]);
  }
};

}  // namespace

namespace {
bool gemv_type(int32_t t) { return t == HWKV_WTYPE_BF16 || t == HWKV_WTYPE_F16 || t == HWKV_WTYPE_Q8_0; }
}  // namespace

hwkv_status model_prepare(hwkv_model* m, const char* fn) {
  if (m->prepared) return HWKV_OK;
  for (const DevTensor& t : m->tensors)
    if (t.uploaded < t.nbytes)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' is not completely uploaded (%lld of %lld bytes)", fn,
                  t.name.c_str(), static_cast<long long>(t.uploaded), static_cast<long long>(t.nbytes));
  for (DevTensor& t : m->tensors) {
    if (!t.is_vector) continue;
    widen_kernel<<<grid_for(t.ne0, kThreads), kThreads, 0, stream()>>>(t.dev, t.type, t.ne0, t.f32);
    HWKV_CU_LAUNCH(widen_kernel);
  }
  HWKV_TRY(sync(fn));
  // Graph capture needs every projection of a decode step to be a GEMV (no cuBLAS workspace, no allocation).
  {
    const hwkv_model_params& P = m->p;
    const int64_t qd = static_cast<int64_t>(P.n_head) * P.head_dim;
    bool ok = P.n_embd % 8 == 0 && qd % 8 == 0 && P.n_ff % 8 == 0 && !m->force_gemm;
    for (const DevTensor& t : m->tensors)
      if (!t.is_vector && t.name != "tok_embd" && !gemv_type(t.type)) ok = false;
    if (!gemv_type(m->output->type)) ok = false;
    m->all_gemv = ok;
  }
  m->prepared = true;
  return HWKV_OK;
}

hwkv_status model_forward_impl(hwkv_model* m, hwkv_store_t* st, const hwkv_forward_batch* b, float* logits,
                               int64_t n_logits) {
  const char* fn = "model_forward";
  const hwkv_model_params& P = m->p;
  if (!st) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
  if (!b) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch is NULL", fn);
  if (!store_is_ours(st))
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "%s: the store was not created by the CUDA backend (a CUDA model needs a store of the same CUDA "
                "library's table)",
                fn);
  const hwkv_store_params& sp = st->p;
  bool argmax = false;
  int32_t lmode = 0;
  HWKV_TRY(hwkv::model::check_forward_batch(fn, P, sp, b, &argmax, &lmode));
  const int32_t n_seq = b->n_seq;
  const int64_t n_tok = b->tok_indptr[n_seq];
  HWKV_TRY(hwkv::model::check_forward_views(fn, b, st->blocks.size(), m->i_stamp,
                                           [&](int32_t blk) { return check_block(fn, st, blk); }));
  const int64_t n_rows_out = lmode == HWKV_LOGITS_ALL ? n_tok : (lmode == HWKV_LOGITS_LAST ? n_seq : 0);
  const int64_t row_floats = argmax ? 2 : P.n_vocab;  // what comes back per row
  if (n_rows_out > 0) {
    if (!logits) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: logits is NULL but logits_mode asks for %lld rows", fn,
                             static_cast<long long>(n_rows_out));
    if (n_logits < n_rows_out * row_floats)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: logits holds %lld floats, need %lld (%lld rows x %lld%s)", fn,
                  static_cast<long long>(n_logits), static_cast<long long>(n_rows_out * row_floats),
                  static_cast<long long>(n_rows_out), static_cast<long long>(row_floats),
                  argmax ? ": id and logit per row, ARGMAX" : " = n_vocab");
  }
  if (n_tok > 0x7fffffffLL / std::max(1, P.n_head + 2 * P.n_kv_head))
    return fail(HWKV_ERR_UNSUPPORTED, "%s: %lld tokens in one call is too many for the CUDA backend", fn,
                static_cast<long long>(n_tok));
  HWKV_TRY(use_device(fn));
  HWKV_TRY(model_prepare(m, fn));
  if (!m->stream) {
    cudaStream_t cs = nullptr;
    HWKV_CU(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
    m->stream = cs;
  }
  StreamScope on_model_stream(m->stream);
  {
    const cublasStatus_t bs = m->blas->set_stream(m->handle, stream());
    if (bs != 0) return blas_fail(m->blas, bs, fn, "cublasSetStream");
  }

  const int64_t D = P.n_embd, hd = P.head_dim, qd = static_cast<int64_t>(P.n_head) * hd,
                kvd = static_cast<int64_t>(P.n_kv_head) * hd, F = P.n_ff, ldqkv = qd + 2 * kvd;
  const RopeHost& rope = m->rope;

  // Grow the write blocks (all layers), remembering the old lengths for the rollback.
  m->i_old_len.resize(n_seq);
  m->i_write.resize(n_seq);
  for (int32_t s = 0; s < n_seq; ++s) {
    m->i_write[s] = b->view_blocks[b->view_indptr[s + 1] - 1];
    m->i_old_len[s] = st->blocks[m->i_write[s]].len;
    const int64_t n_new = b->tok_indptr[s + 1] - b->tok_indptr[s];
    if (static_cast<int64_t>(m->i_old_len[s]) + n_new > INT32_MAX)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would exceed 2^31-1 tokens", fn, m->i_write[s]);
  }
  Rollback rb;
  rb.s = st;
  rb.blocks = m->i_write.data();
  rb.lens = m->i_old_len.data();
  for (int32_t s = 0; s < n_seq; ++s) {
    const hwkv_status e = block_extend(fn, st, m->i_write[s], b->tok_indptr[s + 1] - b->tok_indptr[s]);
    if (e != HWKV_OK) {
      char why[768];
      std::snprintf(why, sizeof why, "%s", last_error());
      return fail(e, "%s: cannot grow block %d by %d tokens: %s", fn, m->i_write[s],
                  b->tok_indptr[s + 1] - b->tok_indptr[s], why);
    }
    rb.n = s + 1;
  }
  // Positions: keys at block-local old_len + i (page, row, cos/sin); queries at (view length after the appends) - n + i.
  const int32_t T = st->p.page_tokens;
  m->i_qpos.resize(static_cast<size_t>(n_tok));
  m->i_wpage.resize(static_cast<size_t>(n_tok));
  m->i_wrow.resize(static_cast<size_t>(n_tok));
  m->i_ktab.clear();
  m->i_ktab.reserve(static_cast<size_t>(n_tok) * 2 * rope.half);
  for (int32_t s = 0; s < n_seq; ++s) {
    int64_t total = 0;
    for (int32_t j = b->view_indptr[s]; j < b->view_indptr[s + 1]; ++j) total += st->blocks[b->view_blocks[j]].len;
    const int32_t t0 = b->tok_indptr[s], n_new = b->tok_indptr[s + 1] - t0;
    if (total > INT32_MAX) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: view of sequence %d exceeds 2^31-1 tokens", fn, s);
    const StoreBlock& wb = st->blocks[m->i_write[s]];
    for (int32_t i = 0; i < n_new; ++i) {
      const int32_t pos = m->i_old_len[s] + i;
      m->i_qpos[t0 + i] = static_cast<int32_t>(total - n_new + i);
      m->i_wpage[t0 + i] = st->page_ptr[wb.pages[pos / T]];
      m->i_wrow[t0 + i] = pos % T;
      rope_table_row(rope, static_cast<double>(pos), m->i_ktab);
    }
  }
  m->i_rows.resize(static_cast<size_t>(n_rows_out));
  for (int64_t r = 0; r < n_rows_out; ++r)
    m->i_rows[r] = lmode == HWKV_LOGITS_ALL ? static_cast<int32_t>(r) : b->tok_indptr[r + 1] - 1;

  // KV codec: layer 0 of the views' compressed chunks decoded before the plan takes their (layer-independent)
  // page pointers; layers >= 1 are decoded in the layer loop, once per layer for all sequences.
  HWKV_TRY(codec_prepare_layer(fn, st, 0, b->view_blocks, b->view_indptr[n_seq]));
  // One attention plan for the step (block lengths are final: the write blocks were grown above).
  AttnPlan plan;
  {
    hwkv_attn_batch ab;
    ab.n_seq = n_seq;
    ab.view_indptr = b->view_indptr;
    ab.view_blocks = b->view_blocks;
    ab.q_indptr = b->tok_indptr;
    ab.q_pos = m->i_qpos.data();
    HWKV_TRY(attn_plan_build(fn, st, rope, ab, P.n_head, &plan));
  }

  // A decode-sized step whose every projection is a GEMV (16-bit weights, <= kGemvMaxTok rows) replays a
  // captured CUDA graph: all its inputs live in the step buffer at offsets fixed by the capacities below, so
  // a later step with the same shape (sequences, tokens, logits rows, attention kernel) and room in every
  // region only uploads the buffer and launches the graph. Anything else re-captures (or, without graphs,
  // launches the kernels one by one).
  // A store with a KV codec is never captured: its per-layer decode and end-of-step compaction change with
  // the context (and run host code between the layers).
  // A K/V capture (model_capture_kv) is never captured either.
  const bool graphable = m->use_graphs && m->all_gemv && n_tok <= kGemvMaxTok && !m->cap_k && !codec_on(st);
  const AttnCaps need = attn_plan_needs(plan);
  bool replay = graphable && m->gexec && m->g_n_tok == n_tok && m->g_n_seq == n_seq && m->g_rows_out == n_rows_out &&
                m->g_argmax == static_cast<int32_t>(argmax) && m->g_store == st && m->g_kind == plan.kind && m->g_attn_rows == plan.rows &&
                m->g_smem == plan.smem && attn_caps_fit(need, m->g_caps);
  const AttnCaps caps = replay ? m->g_caps : (graphable ? attn_caps_headroom(need) : need);

  // The step buffer: tokens | write pages | write rows | key cos/sin | logits rows | attention plan.
  std::vector<unsigned char>& hb = m->i_step;
  hb.clear();
  auto put = [&hb](const void* src, size_t bytes) {
    const size_t off = (hb.size() + 15) & ~static_cast<size_t>(15);
    hb.resize(off + bytes);
    if (bytes) std::memcpy(hb.data() + off, src, bytes);
    return off;
  };
  const size_t o_tok = put(b->tokens, n_tok * sizeof(int32_t));
  const size_t o_wpage = put(m->i_wpage.data(), n_tok * sizeof(float*));
  const size_t o_wrow = put(m->i_wrow.data(), n_tok * sizeof(int32_t));
  const size_t o_ktab = put(m->i_ktab.data(), m->i_ktab.size() * sizeof(float));
  const size_t o_rows = put(m->i_rows.data(), static_cast<size_t>(n_rows_out) * sizeof(int32_t));
  {
    const size_t o_plan = (hb.size() + 15) & ~static_cast<size_t>(15);
    hb.resize(o_plan);
    attn_plan_layout(&plan, caps, hb);
  }

  // Device buffers (grow-only; a reallocation changes addresses, which forces a re-capture: the addresses the
  // graph was captured with are kept in g_bufs, since any forward in between, e.g. a longer prefill or the K/V
  // tap, may have grown a buffer).
  const size_t f4 = sizeof(float);
  HWKV_TRY(m->x.ensure(fn, n_tok * D * f4));
  HWKV_TRY(m->h.ensure(fn, n_tok * D * f4));
  HWKV_TRY(m->qkv.ensure(fn, n_tok * ldqkv * f4));
  HWKV_TRY(m->att.ensure(fn, n_tok * qd * f4));
  HWKV_TRY(m->ff.ensure(fn, n_tok * 2 * F * f4));
  {
    // 16-bit activations of the GEMM path, or the int8 codes + scales of Q8_0 products (sized here so that
    // a captured step never reallocates)
    const int64_t wide = std::max(D, std::max(qd, F));
    HWKV_TRY(m->act16.ensure(fn, std::max(static_cast<size_t>(n_tok * wide) * 2, q8_act_bytes(n_tok, wide))));
  }
  HWKV_TRY(m->logits.ensure(fn, static_cast<size_t>(n_rows_out * P.n_vocab + (argmax ? 2 * n_rows_out : 0)) * f4));
  HWKV_TRY(m->step.ensure(fn, hb.size()));
  HWKV_TRY(m->part.ensure(fn, attn_part_bytes(plan, caps.slots)));
  const void* after[9] = {m->x.as<void>(), m->h.as<void>(), m->qkv.as<void>(), m->att.as<void>(),
                          m->ff.as<void>(), m->logits.as<void>(), m->step.as<void>(), m->part.as<void>(),
                          m->act16.as<void>()};
  static_assert(sizeof after == sizeof m->g_bufs, "g_bufs holds the addresses listed in after[]");
  if (std::memcmp(m->g_bufs, after, sizeof after) != 0) replay = false;
  unsigned char* sb = m->step.as<unsigned char>();
  // attn_plan_layout recorded offsets from hb's start, so the step buffer's base binds them.
  attn_plan_bind(&plan, sb, m->part.as<void>(), caps.slots);
  HWKV_TRY(h2d(fn, sb, hb.data(), hb.size()));

  const int32_t* d_tokens = reinterpret_cast<const int32_t*>(sb + o_tok);
  const int32_t* d_rows = reinterpret_cast<const int32_t*>(sb + o_rows);
  float* x = m->x.as<float>();
  float* h = m->h.as<float>();
  float* qkv = m->qkv.as<float>();
  float* att = m->att.as<float>();
  float* ff = m->ff.as<float>();

  QkvPostArgs pa;
  pa.qkv = qkv;
  pa.ld = ldqkv;
  pa.n_tok = static_cast<int32_t>(n_tok);
  pa.n_head = P.n_head;
  pa.n_kv = P.n_kv_head;
  pa.hd = P.head_dim;
  pa.rot_dim = rope.rotary_dim;
  pa.eps = P.rms_norm_eps;
  pa.af = m->attn_factor;
  pa.rd = rope_dev(&rope, P.head_dim);
  pa.geo = st->geo;
  pa.wpage = reinterpret_cast<float* const*>(sb + o_wpage);
  pa.wrow = reinterpret_cast<const int32_t*>(sb + o_wrow);
  pa.ktab = reinterpret_cast<const float*>(sb + o_ktab);
  pa.cap_k = m->cap_k;
  pa.cap_v = m->cap_v;
  const int64_t post_rows = n_tok * (P.n_head + 2 * P.n_kv_head);
  const size_t post_smem = static_cast<size_t>(kPostWarps) * hd * f4;
  if (post_smem > 48 * 1024)
    HWKV_CU(cudaFuncSetAttribute(qkv_post_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(post_smem)));

  // Every launch of the step, in order (no allocation, copy from the host or synchronisation in here, so
  // that it can be captured).
  auto enqueue = [&]() -> hwkv_status {
    if (m->tok_embd->type == HWKV_WTYPE_Q8_0) {
      HWKV_TRY(q8_embed(fn, m->tok_embd->dev, D, d_tokens, n_tok, x));
    } else {
      embed_kernel<<<grid_for(n_tok * D, kThreads), kThreads, 0, stream()>>>(m->tok_embd->dev, m->tok_embd->type, D,
                                                                             d_tokens, n_tok, x);
      HWKV_CU_LAUNCH(embed_kernel);
    }
    int64_t n_act = n_tok;
    for (int32_t l = 0; l < P.n_layer; ++l) {
      const DevLayer& L = m->layers[l];
      HWKV_TRY(rmsnorm(fn, x, D, L.attn_norm->f32, n_tok, D, P.rms_norm_eps, h, D));
      if (L.qkv_fused) {
        HWKV_TRY(linear(m, fn, L.wq->dev, L.wq->type, ldqkv, h, D, n_tok, D, qkv, ldqkv, 0.0f));
      } else {
        HWKV_TRY(linear_t(m, fn, L.wq, h, D, n_tok, qkv, ldqkv, 0.0f));
        HWKV_TRY(linear_t(m, fn, L.wk, h, D, n_tok, qkv + qd, ldqkv, 0.0f));
        HWKV_TRY(linear_t(m, fn, L.wv, h, D, n_tok, qkv + qd + kvd, ldqkv, 0.0f));
      }
      QkvPostArgs pl = pa;
      pl.layer = l;
      pl.bq = L.bq ? L.bq->f32 : nullptr;
      pl.bk = L.bk ? L.bk->f32 : nullptr;
      pl.bv = L.bv ? L.bv->f32 : nullptr;
      pl.qn = L.q_norm ? L.q_norm->f32 : nullptr;
      pl.kn = L.k_norm ? L.k_norm->f32 : nullptr;
      qkv_post_kernel<<<static_cast<unsigned>(ceil_div(post_rows, kPostWarps)), kPostWarps * 32, post_smem, stream()>>>(pl);
      HWKV_CU_LAUNCH(qkv_post_kernel);
      if (l > 0) HWKV_TRY(codec_prepare_layer(fn, st, l, b->view_blocks, b->view_indptr[n_seq]));
      HWKV_TRY(attn_plan_run(fn, st, plan, l, qkv, ldqkv, m->attn_scale, att, nullptr));

      if (l == P.n_layer - 1 && n_rows_out < n_tok) {
        // Only the rows that produce logits matter after the last attention: compact them.
        n_act = n_rows_out;
        if (n_act == 0) break;
        gather_rows_kernel<<<grid_for(n_act * D, kThreads), kThreads, 0, stream()>>>(x, D, d_rows, n_act, D, h, D);
        HWKV_CU_LAUNCH(gather_rows_kernel);
        HWKV_CU(cudaMemcpyAsync(x, h, n_act * D * f4, cudaMemcpyDeviceToDevice, stream()));
        gather_rows_kernel<<<grid_for(n_act * qd, kThreads), kThreads, 0, stream()>>>(att, qd, d_rows, n_act, qd, qkv,
                                                                                     qd);
        HWKV_CU_LAUNCH(gather_rows_kernel);
        HWKV_CU(cudaMemcpyAsync(att, qkv, n_act * qd * f4, cudaMemcpyDeviceToDevice, stream()));
      }
      if (n_act < n_tok && t_pdl) {
        // right after the compaction's device copies: a plain launch (PDL only follows kernels)
        t_pdl = false;
        const hwkv_status ws = linear_t(m, fn, L.wo, att, qd, n_act, x, D, 1.0f);
        t_pdl = true;
        HWKV_TRY(ws);
      } else {
        HWKV_TRY(linear_t(m, fn, L.wo, att, qd, n_act, x, D, 1.0f));
      }
      HWKV_TRY(rmsnorm(fn, x, D, L.ffn_norm->f32, n_act, D, P.rms_norm_eps, h, D));
      if (L.gu_fused && F % 2 == 0 && gemv_ok(m, L.gate->dev, L.gate->type, h, D, n_act, D)) {
        // one GEMV for gate|up with SwiGLU in its epilogue: ff[t, 0..F) = silu(gate) * up
        const uint16_t* G16 = reinterpret_cast<const uint16_t*>(L.gate->dev);
        if (L.gate->type == HWKV_WTYPE_Q8_0) {
          HWKV_TRY(q8_quantize(fn, h, D, n_act, D, m->act16.as<void>()));
          HWKV_TRY(q8_gemv(fn, L.gate->dev, F, D, m->act16.as<void>(), n_act, ff, F, 0.0f, true));
        } else if (L.gate->type == HWKV_WTYPE_BF16 && gemv_pick(m, F, D, n_act, true) == 2)
          HWKV_CU((gemv_mma_launch<true>(n_act, G16, F, D, h, D, ff, F, 0.0f)));
        else if (L.gate->type == HWKV_WTYPE_BF16)
          HWKV_CU((gemv_launch<true, true>(n_act, G16, F, D, h, D, ff, F, 0.0f)));
        else
          HWKV_CU((gemv_launch<false, true>(n_act, G16, F, D, h, D, ff, F, 0.0f)));
        HWKV_TRY(linear_t(m, fn, L.down, ff, F, n_act, x, D, 1.0f));
        continue;
      }
      if (L.gu_fused) {
        HWKV_TRY(linear(m, fn, L.gate->dev, L.gate->type, 2 * F, h, D, n_act, D, ff, 2 * F, 0.0f));
      } else {
        HWKV_TRY(linear_t(m, fn, L.gate, h, D, n_act, ff, 2 * F, 0.0f));
        HWKV_TRY(linear_t(m, fn, L.up, h, D, n_act, ff + F, 2 * F, 0.0f));
      }
      swiglu_kernel<<<grid_for(n_act * F, kThreads), kThreads, 0, stream()>>>(ff, n_act, F);
      HWKV_CU_LAUNCH(swiglu_kernel);
      HWKV_TRY(linear_t(m, fn, L.down, ff, 2 * F, n_act, x, D, 1.0f));
    }
    if (n_rows_out > 0) {
      HWKV_TRY(rmsnorm(fn, x, D, m->output_norm->f32, n_rows_out, D, P.rms_norm_eps, h, D));
      HWKV_TRY(linear_t(m, fn, m->output, h, D, n_rows_out, m->logits.as<float>(), P.n_vocab, 0.0f));
      if (argmax) {
        argmax_kernel<<<static_cast<unsigned>(n_rows_out), kArgmaxThreads, 0, stream()>>>(
            m->logits.as<float>(), P.n_vocab, m->logits.as<float>() + n_rows_out * P.n_vocab);
        HWKV_CU_LAUNCH(argmax_kernel);
      }
    }
    return HWKV_OK;
  };
  if (n_tok <= kGemvMaxTok && !replay) HWKV_TRY(gemv_tune(m, fn, n_tok, n_rows_out));

  struct PdlScope {
    explicit PdlScope(bool on) { t_pdl = on; }
    ~PdlScope() { t_pdl = false; }
  };
  if (!graphable) {
    PdlScope pdl_on(m->pdl);
    HWKV_TRY(enqueue());
  } else {
    if (!replay) {
      m->drop_graph();
      HWKV_CU(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
      hwkv_status es;
      {
        PdlScope pdl_on(m->pdl);
        es = enqueue();
      }
      cudaGraph_t g = nullptr;
      const cudaError_t ee = cudaStreamEndCapture(stream(), &g);
      if (es != HWKV_OK) {
        if (g) (void)cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return es;
      }
      if (ee != cudaSuccess) return cuda_fail(ee, fn, "cudaStreamEndCapture");
      m->graph = g;
      cudaGraphExec_t ge = nullptr;
      HWKV_CU(cudaGraphInstantiate(&ge, g, 0));
      m->gexec = ge;
      m->g_n_tok = n_tok;
      m->g_n_seq = n_seq;
      m->g_rows_out = n_rows_out;
      m->g_argmax = static_cast<int32_t>(argmax);
      m->g_store = st;
      m->g_kind = plan.kind;
      m->g_attn_rows = plan.rows;
      m->g_smem = plan.smem;
      m->g_caps = caps;
      std::memcpy(m->g_bufs, after, sizeof after);
      ++m->graph_captures;
    }
    HWKV_CU(cudaGraphLaunch(m->gexec, stream()));
    ++m->graph_launches;
  }

  // Logits: device -> pinned staging (a full-speed DMA) -> the caller's buffer.
  const size_t lbytes = static_cast<size_t>(n_rows_out * row_floats) * f4;
  const float* dlog = m->logits.as<float>() + (argmax ? n_rows_out * P.n_vocab : 0);
  if (lbytes > m->hlogits_cap) {
    if (m->hlogits) (void)cudaFreeHost(m->hlogits);
    m->hlogits = nullptr;
    m->hlogits_cap = 0;
    void* hp = nullptr;
    if (cudaMallocHost(&hp, lbytes) == cudaSuccess) {
      m->hlogits = hp;
      m->hlogits_cap = lbytes;
    } else {
      (void)cudaGetLastError();  // no pinned memory: copy straight into the caller's (pageable) buffer
    }
  }
  if (lbytes > 0) {
    if (m->hlogits) {
      HWKV_CU(cudaMemcpyAsync(m->hlogits, dlog, lbytes, cudaMemcpyDeviceToHost, stream()));
    } else {
      HWKV_TRY(d2h(fn, logits, dlog, lbytes));
    }
  }
  HWKV_TRY(sync(fn));
  if (lbytes > 0 && m->hlogits) std::memcpy(logits, m->hlogits, lbytes);
  rb.armed = false;
  codec_compact_all(st);  // KV codec: encode the chunks that left the exact window (no-op without a codec)
  return HWKV_OK;
}

}  // namespace hwkv_cuda
