// model_q8.cu — Q8_0 weights on the GPU: activation quantization, GEMV (decode rows), tiled GEMM (prefill),
// embedding rows. See model_q8.cuh for the arithmetic contract.
#include <cuda_fp16.h>

#include <cstdint>

#include "gemv.cuh"
#include "model_q8.cuh"

namespace hwkv_cuda {

namespace {

constexpr int kQ8Threads = 256;

__device__ __forceinline__ float q8_scale(const uint8_t* blk) {
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(blk))));
}

// 4 int8 codes at a 2-byte aligned address as one int (little-endian: code j in byte j).
__device__ __forceinline__ int q8_int_b2(const uint8_t* p) {
  const unsigned short* u = reinterpret_cast<const unsigned short*>(p);
  return static_cast<int>(static_cast<uint32_t>(__ldg(u)) | (static_cast<uint32_t>(__ldg(u + 1)) << 16));
}

// One warp per 32-value block: dx = max|x| / 127, q = rint(x * (1 / dx)) (the CPU core's float32 operations,
// no contraction), dx = 0 gives all-zero codes.
__global__ void q8_quantize_kernel(const float* __restrict__ x, int64_t ldx, int64_t n_tok, int64_t n_in,
                                   int8_t* __restrict__ q, float* __restrict__ d) {
  const int lane = threadIdx.x & 31;
  const int64_t nb = n_in / kQ8Block;
  const int64_t total = n_tok * nb;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); w < total; w += warps) {
    const int64_t t = w / nb, b = w - t * nb;
    const float v = x[t * ldx + b * kQ8Block + lane];
    float amax = fabsf(v);
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float db = __fdiv_rn(amax, 127.0f);
    const float id = db != 0.0f ? __fdiv_rn(1.0f, db) : 0.0f;
    int c = __float2int_rn(__fmul_rn(v, id));
    c = c > 127 ? 127 : (c < -128 ? -128 : c);  // (|x * id| <= 127 up to rounding; saturation like the CPU's packs)
    q[t * n_in + b * kQ8Block + lane] = static_cast<int8_t>(c);
    if (lane == 0) d[t * nb + b] = db;
  }
}

// ---- GEMV: a CTA of 4 warps owns 4 weight rows (GLU: 2 gate rows and the same 2 up rows); the warps split the
// input dimension in 256-value steps (warp w takes steps w, w + 4, ...), lane l the 8 codes [8 (l % 4), + 8) of
// block l / 4 of the step, so a warp reads 8 consecutive blocks (272 contiguous bytes) of every row per step.
// Per (row, token): two dp4a give the int32 dot of those 8 codes, scaled by dw * dx into a float32 sum; the
// lanes and warps are reduced in a fixed order (deterministic).

template <int NT, bool GLU>
__global__ void __launch_bounds__(kGemvWarps * 32) q8_gemv_kernel(const uint8_t* __restrict__ W, int64_t n_out,
                                                                     int64_t n_in, const int8_t* __restrict__ xq,
                                                                     const float* __restrict__ xd,
                                                                     float* __restrict__ y, int64_t ldy, float beta) {
  constexpr int RW = kGemvRows;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t nb = n_in / kQ8Block, rb = nb * kQ8BlockBytes;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * (GLU ? RW / 2 : RW);
  const uint8_t* wr[RW];
#pragma unroll
  for (int r = 0; r < RW; ++r) wr[r] = W + gemv_row<GLU>(r, row0, n_out) * rb;
  float acc[RW][NT];
#pragma unroll
  for (int r = 0; r < RW; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
#pragma unroll 2
  for (int64_t i0 = (static_cast<int64_t>(warp) * 32 + lane) * 8; i0 < n_in; i0 += kGemvWarps * 256) {
    const int64_t b = i0 / kQ8Block;
    const int sub = static_cast<int>((i0 / 8) & 3);
    int w0[RW], w1[RW];
    float dw[RW];
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      const uint8_t* blk = wr[r] + b * kQ8BlockBytes;
      dw[r] = q8_scale(blk);
      w0[r] = q8_int_b2(blk + 2 + 8 * sub);
      w1[r] = q8_int_b2(blk + 2 + 8 * sub + 4);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const int2 xv = __ldg(reinterpret_cast<const int2*>(xq + t * n_in + i0));
      const float dx = __ldg(xd + t * nb + b);
#pragma unroll
      for (int r = 0; r < RW; ++r) {
        const int s = __dp4a(w1[r], xv.y, __dp4a(w0[r], xv.x, 0));
        acc[r][t] = fmaf(dw[r] * dx, static_cast<float>(s), acc[r][t]);
      }
    }
  }
  gemv_finish<NT, GLU>(acc, row0, n_out, y, ldy, beta);
}

// ---- GEMM: CTA = 64 weight rows x 64 tokens, 256 threads; thread (tx, ty) = (tid % 16, tid / 16) owns rows
// tx + 16 i and tokens ty + 16 j (i, j < 4). Each stage stages kQ8Kb blocks of k of the 64 rows and 64 tokens
// in shared memory as ints (row stride 33 ints: the 16 rows a half-warp reads fall in distinct banks); per
// block the int32 dot (8 dp4a) is exact and scaled by dw * dx once, as in the CPU core.
constexpr int kQ8Tile = 64;
constexpr int kQ8Kb = 4;                     // blocks of 32 per stage
constexpr int kQ8Ld = kQ8Kb * 8 + 1;         // ints per staged row

__global__ void __launch_bounds__(kQ8Threads) q8_gemm_kernel(const uint8_t* __restrict__ W, int64_t n_out,
                                                              int64_t n_in, const int8_t* __restrict__ xq,
                                                              const float* __restrict__ xd, int64_t n_tok,
                                                              float* __restrict__ y, int64_t ldy, float beta) {
  __shared__ int sw[kQ8Tile][kQ8Ld];
  __shared__ int sx[kQ8Tile][kQ8Ld];
  __shared__ float sdw[kQ8Tile][kQ8Kb];
  __shared__ float sdx[kQ8Tile][kQ8Kb];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kQ8Tile, t0 = static_cast<int64_t>(blockIdx.y) * kQ8Tile;
  const int64_t nb = n_in / kQ8Block, rb = nb * kQ8BlockBytes;
  // loader role: row / token lr of the tile, 8 codes [8 lp, + 8) of each staged block
  const int lr = tid >> 2, lp = tid & 3;
  const uint8_t* wrow = W + min(r0 + lr, n_out - 1) * rb;
  const int64_t xt = t0 + lr;
  const bool xon = xt < n_tok;
  const int8_t* xrow = xq + (xon ? xt : 0) * n_in;
  const float* xdrow = xd + (xon ? xt : 0) * nb;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  for (int64_t b0 = 0; b0 < nb; b0 += kQ8Kb) {
#pragma unroll
    for (int kb = 0; kb < kQ8Kb; ++kb) {
      const int64_t b = b0 + kb;
      int a0 = 0, a1 = 0, c0 = 0, c1 = 0;
      float dwv = 0.0f, dxv = 0.0f;
      if (b < nb) {
        const uint8_t* blk = wrow + b * kQ8BlockBytes;
        a0 = q8_int_b2(blk + 2 + 8 * lp);
        a1 = q8_int_b2(blk + 2 + 8 * lp + 4);
        if (lp == 0) dwv = q8_scale(blk);
        if (xon) {
          const int2 v = __ldg(reinterpret_cast<const int2*>(xrow + b * kQ8Block + 8 * lp));
          c0 = v.x;
          c1 = v.y;
          if (lp == 0) dxv = __ldg(xdrow + b);
        }
      }
      sw[lr][kb * 8 + 2 * lp] = a0;
      sw[lr][kb * 8 + 2 * lp + 1] = a1;
      sx[lr][kb * 8 + 2 * lp] = c0;
      sx[lr][kb * 8 + 2 * lp + 1] = c1;
      if (lp == 0) {
        sdw[lr][kb] = dwv;
        sdx[lr][kb] = dxv;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kb = 0; kb < kQ8Kb; ++kb) {
      int a[4][8], c[4][8];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          a[i][k] = sw[tx + 16 * i][kb * 8 + k];
          c[i][k] = sx[ty + 16 * i][kb * 8 + k];
        }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float dw = sdw[tx + 16 * i][kb];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          int s = 0;
#pragma unroll
          for (int k = 0; k < 8; ++k) s = __dp4a(a[i][k], c[j][k], s);
          acc[i][j] = fmaf(dw * sdx[ty + 16 * j][kb], static_cast<float>(s), acc[i][j]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t t = t0 + ty + 16 * j;
    if (t >= n_tok) continue;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t r = r0 + tx + 16 * i;
      if (r >= n_out) continue;
      float* o = y + t * ldy + r;
      *o = beta == 0.0f ? acc[i][j] : beta * *o + acc[i][j];
    }
  }
}

__global__ void q8_embed_kernel(const uint8_t* __restrict__ table, int64_t D, const int32_t* __restrict__ tokens,
                                int64_t n_tok, float* __restrict__ x) {
  const int64_t total = n_tok * D, rb = (D / kQ8Block) * kQ8BlockBytes;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / D, d = i - t * D;
    const uint8_t* blk = table + static_cast<int64_t>(tokens[t]) * rb + (d / kQ8Block) * kQ8BlockBytes;
    x[i] = __fmul_rn(q8_scale(blk), static_cast<float>(static_cast<int8_t>(blk[2 + d % kQ8Block])));
  }
}

struct ActView {
  int8_t* q;
  float* d;
};

size_t scales_off(int64_t n_tok, int64_t n_in) {
  return (static_cast<size_t>(n_tok * n_in) + 15) & ~static_cast<size_t>(15);
}

ActView act_view(const void* act, int64_t n_tok, int64_t n_in) {
  unsigned char* p = static_cast<unsigned char*>(const_cast<void*>(act));
  return {reinterpret_cast<int8_t*>(p), reinterpret_cast<float*>(p + scales_off(n_tok, n_in))};
}

}  // namespace

size_t q8_act_bytes(int64_t n_tok, int64_t n_in) {
  return scales_off(n_tok, n_in) + static_cast<size_t>(n_tok * (n_in / kQ8Block)) * sizeof(float);
}

hwkv_status q8_quantize(const char* fn, const float* x, int64_t ldx, int64_t n_tok, int64_t n_in, void* act) {
  if (n_tok == 0) return HWKV_OK;
  const ActView a = act_view(act, n_tok, n_in);
  const int64_t warps = n_tok * (n_in / kQ8Block);
  q8_quantize_kernel<<<grid_for(warps * 32, kQ8Threads), kQ8Threads, 0, stream()>>>(x, ldx, n_tok, n_in, a.q, a.d);
  HWKV_CU_LAUNCH(q8_quantize_kernel);
  return HWKV_OK;
}

hwkv_status q8_gemv(const char* fn, const uint8_t* W, int64_t n_out, int64_t n_in, const void* act, int64_t n_tok,
                    float* y, int64_t ldy, float beta, bool glu) {
  if (n_tok == 0) return HWKV_OK;
  if (n_tok > kGemvMaxTok) return fail(HWKV_ERR_INTERNAL, "%s: Q8_0 GEMV called with %lld rows", fn, (long long)n_tok);
  const ActView a = act_view(act, n_tok, n_in);
  const unsigned grid = static_cast<unsigned>(ceil_div(n_out, glu ? kGemvRows / 2 : kGemvRows));
  const dim3 block(kGemvWarps * 32);
#define HWKV_Q8_GEMV(NT)                                                                                  \
  if (glu)                                                                                                \
    q8_gemv_kernel<NT, true><<<grid, block, 0, stream()>>>(W, n_out, n_in, a.q, a.d, y, ldy, beta);       \
  else                                                                                                    \
    q8_gemv_kernel<NT, false><<<grid, block, 0, stream()>>>(W, n_out, n_in, a.q, a.d, y, ldy, beta);      \
  break
  switch (n_tok) {
    case 1: HWKV_Q8_GEMV(1);
    case 2: HWKV_Q8_GEMV(2);
    case 3: HWKV_Q8_GEMV(3);
    case 4: HWKV_Q8_GEMV(4);
    case 5: HWKV_Q8_GEMV(5);
    case 6: HWKV_Q8_GEMV(6);
    case 7: HWKV_Q8_GEMV(7);
    default: HWKV_Q8_GEMV(8);
  }
#undef HWKV_Q8_GEMV
  HWKV_CU_LAUNCH(q8_gemv_kernel);
  return HWKV_OK;
}

hwkv_status q8_gemm(const char* fn, const uint8_t* W, int64_t n_out, int64_t n_in, const void* act, int64_t n_tok,
                    float* y, int64_t ldy, float beta) {
  if (n_tok == 0) return HWKV_OK;
  const ActView a = act_view(act, n_tok, n_in);
  const int64_t gx = ceil_div(n_out, kQ8Tile), gy = ceil_div(n_tok, kQ8Tile);
  if (gx > 0x7fffffffLL || gy > 65535)
    return fail(HWKV_ERR_UNSUPPORTED, "%s: Q8_0 product of %lld x %lld rows is too large for one launch", fn,
                (long long)n_out, (long long)n_tok);
  q8_gemm_kernel<<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), kQ8Threads, 0, stream()>>>(
      W, n_out, n_in, a.q, a.d, n_tok, y, ldy, beta);
  HWKV_CU_LAUNCH(q8_gemm_kernel);
  return HWKV_OK;
}

hwkv_status q8_embed(const char* fn, const uint8_t* table, int64_t D, const int32_t* tokens, int64_t n_tok, float* x) {
  if (n_tok == 0) return HWKV_OK;
  q8_embed_kernel<<<grid_for(n_tok * D, kQ8Threads), kQ8Threads, 0, stream()>>>(table, D, tokens, n_tok, x);
  HWKV_CU_LAUNCH(q8_embed_kernel);
  return HWKV_OK;
}

}  // namespace hwkv_cuda
