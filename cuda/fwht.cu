// fwht.cu — in-place fast Walsh–Hadamard transform of x[rows, n], n = 2^k, then y = scale * H_n x.
//
// The butterflies are the textbook order (stride h = 1, 2, 4, ..., n/2; x[j], x[j+h] <- a+b, a-b), each
// rounded in float, and the scale is one multiply per element at the end, so the result does not depend
// on how the stages are grouped. Rows of up to kSmemN elements are transformed in shared memory by one
// CTA; longer rows first get all strides < kSmemN in shared memory (chunk by chunk), then one global
// pass per remaining stride.
#include "common.cuh"
#include "fwht.cuh"
#include "ops.cuh"

namespace hwkv_cuda {

namespace {

constexpr int32_t kSmemN = 4096;  // floats per shared-memory chunk (16 KiB)

// Each CTA transforms chunks of `len` = min(n, kSmemN) consecutive elements (strides 1..len/2).
__global__ void fwht_chunk_kernel(float* __restrict__ x, int64_t n_chunks, int32_t len, float scale, int apply_scale) {
  __shared__ float s[kSmemN];
  for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    float* xc = x + c * len;
    for (int32_t i = threadIdx.x; i < len; i += blockDim.x) s[i] = xc[i];
    __syncthreads();
    cta_fwht_stages(s, len);
    for (int32_t i = threadIdx.x; i < len; i += blockDim.x) xc[i] = apply_scale ? __fmul_rn(s[i], scale) : s[i];
    __syncthreads();
  }
}

// One butterfly stage of stride h over all rows (x[rows, n]).
__global__ void fwht_stage_kernel(float* __restrict__ x, int64_t rows, int32_t n, int32_t h, float scale,
                                  int apply_scale) {
  const int64_t half = n / 2;
  const int64_t total = rows * half;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / half;
    const int64_t k = i - r * half;
    const int64_t j = (k / h) * 2 * h + (k % h);
    float* xr = x + r * n;
    const float a = xr[j], b = xr[j + h];
    float y0 = __fadd_rn(a, b), y1 = __fsub_rn(a, b);
    if (apply_scale) {
      y0 = __fmul_rn(y0, scale);
      y1 = __fmul_rn(y1, scale);
    }
    xr[j] = y0;
    xr[j + h] = y1;
  }
}

}  // namespace

hwkv_status fwht(float* x, int64_t rows, int32_t n, float scale) {
  const char* fn = "fwht";
  return guarded(fn, [&]() -> hwkv_status {
    // Same checks, order and wording as the CPU core (core/src/fwht.cpp).
    if (n < 1 || n > (1 << 20))
      return fail(HWKV_ERR_OUT_OF_RANGE, "fwht: n must be a power of two in 1..2^20 (%d), got %d", 1 << 20, n);
    if ((n & (n - 1)) != 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "fwht: n must be a power of two, got %d", n);
    if (rows < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rows must be >= 0, got %lld", fn, (long long)rows);
    if (rows == 0) return HWKV_OK;
    if (!x) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: x is NULL", fn);
    HWKV_TRY(use_device(fn));
    const size_t bytes = static_cast<size_t>(rows) * n * sizeof(float);
    Scratch dx;
    HWKV_TRY(dx.alloc(fn, bytes));
    HWKV_TRY(h2d(fn, dx.ptr(), x, bytes));
    const int32_t len = n < kSmemN ? n : kSmemN;
    const int64_t n_chunks = rows * (n / len);
    const bool small = n <= kSmemN;
    {
      const int threads = len / 2 >= 256 ? 256 : (len / 2 >= 32 ? len / 2 : 32);
      const int64_t grid = n_chunks < 65535LL * 16 ? n_chunks : 65535LL * 16;
      fwht_chunk_kernel<<<static_cast<unsigned>(grid), threads, 0, stream()>>>(dx.as<float>(), n_chunks, len, scale,
                                                                              small ? 1 : 0);
      HWKV_CU_LAUNCH(fwht_chunk_kernel);
    }
    if (!small) {
      const int threads = 256;
      for (int32_t h = kSmemN; h < n; h <<= 1) {
        const int last = (h << 1) == n;
        fwht_stage_kernel<<<grid_for(rows * (n / 2), threads), threads, 0, stream()>>>(dx.as<float>(), rows, n, h, scale,
                                                                                      last);
        HWKV_CU_LAUNCH(fwht_stage_kernel);
      }
    }
    HWKV_TRY(d2h(fn, x, dx.ptr(), bytes));
    return sync(fn);
  });
}

}  // namespace hwkv_cuda
