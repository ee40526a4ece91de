// rope.cpp — RoPE rotation (scalar kernel + ABI helpers). The frequencies (rope_init, rope_table_one) are in
// rope_freq.cpp, which the CUDA library compiles too.
#include "rope.h"

#include <algorithm>
#include <cmath>

#include "dispatch.h"

namespace hwkv {

void RopeTable::build(const Rope& r, const int64_t* pos, int64_t n) {
  rd_ = r.rotary_dim;
  c_.resize(static_cast<size_t>(n * rd_));
  s_.resize(static_cast<size_t>(n * rd_));
  for (int64_t i = 0; i < n; ++i) rope_table_one(r, static_cast<double>(pos[i]), c_.data() + i * rd_, s_.data() + i * rd_);
}

void RopeTable::build_one(const Rope& r, double pos) {
  rd_ = r.rotary_dim;
  c_.resize(static_cast<size_t>(rd_));
  s_.resize(static_cast<size_t>(rd_));
  rope_table_one(r, pos, c_.data(), s_.data());
}

void rope_rotate(const Rope& r, float* x, int64_t n_vec, int64_t stride, const float* C, const float* S) {
  kernels().rope_rotate(x, n_vec, stride, r.rotary_dim, r.style, C, S);
}

void rope_rotate_scalar(float* x, int64_t n_vec, int64_t stride, int32_t rotary_dim, int32_t style,
                        const float* C, const float* S) {
  const int32_t half = rotary_dim / 2;
  for (int64_t v = 0; v < n_vec; ++v) {
    float* y = x + v * stride;
    if (style == HWKV_ROPE_NEOX) {
      for (int32_t i = 0; i < half; ++i) {
        const float a = y[i], b = y[i + half];
        y[i] = a * C[i] + b * S[i];
        y[i + half] = b * C[i + half] + a * S[i + half];
      }
    } else {
      for (int32_t i = 0; i < rotary_dim; i += 2) {
        const float a = y[i], b = y[i + 1];
        y[i] = a * C[i] + b * S[i];
        y[i + 1] = b * C[i + 1] + a * S[i + 1];
      }
    }
  }
}

}  // namespace hwkv
