// gemv.cuh — the CTA layout and epilogue shared by the decode GEMVs (model_forward.cu: F16/BF16 weights;
// model_q8.cu: Q8_0 weights): a CTA of kGemvWarps warps owns kGemvRows weight rows (GLU: kGemvRows / 2 gate
// rows and the same up rows), the warps split the input dimension, and each (row, token) sum is reduced over
// the lanes (shuffles) and then over the warps in a fixed order (deterministic), for up to kGemvMaxTok tokens.
#ifndef HWKV_CUDA_GEMV_CUH
#define HWKV_CUDA_GEMV_CUH

#include <cstdint>

namespace hwkv_cuda {

constexpr int kGemvMaxTok = 8;
constexpr int kGemvRows = 4;
constexpr int kGemvWarps = 4;

__device__ __forceinline__ float warp_sum_f(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Weight row of slot r (0 .. kGemvRows-1) of the CTA whose first output row is row0. GLU: slots < kGemvRows/2
// are gate rows row0 + r, the others the up rows n_out + row0 + r - kGemvRows/2. Rows past n_out are clamped
// (computed, not stored).
template <bool GLU>
__device__ __forceinline__ int64_t gemv_row(int r, int64_t row0, int64_t n_out) {
  constexpr int H = kGemvRows / 2;
  return GLU ? min(row0 + (r % H), n_out - 1) + (r < H ? 0 : n_out) : min(row0 + r, n_out - 1);
}

// The epilogue: every lane of every warp calls it with its partial sums acc (all lanes active). Rows
// [row0, row0 + kGemvRows) (GLU: kGemvRows / 2) of the NT tokens are written to y (row stride ldy):
// y = beta * y + sum, or with GLU y = silu(gate) * up (the swiglu_kernel arithmetic; beta unused).
template <int NT, bool GLU>
__device__ __forceinline__ void gemv_finish(float (&acc)[kGemvRows][NT], int64_t row0, int64_t n_out, float* y,
                                            int64_t ldy, float beta) {
  constexpr int RW = kGemvRows;
  __shared__ float part[kGemvWarps][RW][NT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < RW; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const float v = warp_sum_f(acc[r][t]);
      if (lane == 0) part[warp][r][t] = v;
    }
  __syncthreads();
  if (GLU) {
    constexpr int H = RW / 2;
    if (threadIdx.x < H * NT) {
      const int r = threadIdx.x / NT, t = threadIdx.x % NT;
      if (row0 + r < n_out) {
        float gt = part[0][r][t], up = part[0][H + r][t];
#pragma unroll
        for (int w = 1; w < kGemvWarps; ++w) {
          gt += part[w][r][t];
          up += part[w][H + r][t];
        }
        y[t * ldy + row0 + r] = __fmul_rn(__fdiv_rn(gt, __fadd_rn(1.0f, expf(-gt))), up);
      }
    }
  } else if (threadIdx.x < RW * NT) {
    const int r = threadIdx.x / NT, t = threadIdx.x % NT;
    if (row0 + r < n_out) {
      float v = part[0][r][t];
#pragma unroll
      for (int w = 1; w < kGemvWarps; ++w) v += part[w][r][t];
      float* o = y + t * ldy + row0 + r;
      *o = beta == 0.0f ? v : beta * *o + v;
    }
  }
}

}  // namespace hwkv_cuda

#endif
