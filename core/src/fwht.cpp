// fwht.cpp — FWHT validation and the scalar kernel.
#include "fwht.h"

#include "dispatch.h"

namespace hwkv {

void fwht_strides_scalar(float* x, int64_t len, int64_t h_begin, int64_t h_end) {
  for (int64_t h = h_begin; h < h_end && h < len; h *= 2) {
    for (int64_t i = 0; i < len; i += 2 * h) {
      float* a = x + i;
      float* b = x + i + h;
      for (int64_t j = 0; j < h; ++j) {
        const float u = a[j], v = b[j];
        a[j] = u + v;
        b[j] = u - v;
      }
    }
  }
}

void fwht_row_scalar(float* x, int64_t n, float scale) {
  const int64_t blk = n < kFwhtBlock ? n : kFwhtBlock;
  for (int64_t c = 0; c < n; c += blk) fwht_strides_scalar(x + c, blk, 1, blk);
  fwht_strides_scalar(x, n, blk, n);
  if (scale != 1.0f)
    for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

hwkv_status fwht(float* x, int64_t rows, int32_t n, float scale) {
  if (n < 1 || n > kFwhtMaxN)
    return fail(HWKV_ERR_OUT_OF_RANGE, "fwht: n must be a power of two in 1..2^20 (%d), got %d", kFwhtMaxN, n);
  if ((n & (n - 1)) != 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "fwht: n must be a power of two, got %d", n);
  if (rows < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "fwht: rows must be >= 0, got %lld", (long long)rows);
  if (rows == 0) return HWKV_OK;
  if (!x) return fail(HWKV_ERR_INVALID_ARGUMENT, "fwht: x is NULL");
  const Kernels& k = kernels();
  for (int64_t r = 0; r < rows; ++r) k.fwht_row(x + r * n, n, scale);
  return HWKV_OK;
}

}  // namespace hwkv
