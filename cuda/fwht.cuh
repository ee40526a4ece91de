// fwht.cuh — the FWHT butterflies shared by the device kernels (fwht.cu: rows in shared-memory chunks; codec.cu:
// one HIGGS group per CTA): the textbook order (stride h = 1, 2, 4, ...; x[j], x[j + h] <- a + b, a - b, each
// rounded in float), so results are bit-identical to the CPU core's fwht_row whatever the grouping.
#ifndef HWKV_CUDA_FWHT_CUH
#define HWKV_CUDA_FWHT_CUH

#include <cstdint>

namespace hwkv_cuda {

// Strides 1 .. len/2 over s[0, len) (len a power of two, in shared memory) by the whole CTA, with a barrier
// after every stage (the caller synchronises before: s must be complete).
__device__ __forceinline__ void cta_fwht_stages(float* s, int32_t len) {
  const int32_t half = len / 2;
  for (int32_t h = 1; h < len; h <<= 1) {
    for (int32_t k = threadIdx.x; k < half; k += blockDim.x) {
      const int32_t j = (k / h) * 2 * h + (k % h);
      const float a = s[j], b = s[j + h];
      s[j] = __fadd_rn(a, b);
      s[j + h] = __fsub_rn(a, b);
    }
    __syncthreads();
  }
}

}  // namespace hwkv_cuda

#endif
