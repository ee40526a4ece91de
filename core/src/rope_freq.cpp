// rope_freq.cpp — RoPE frequencies (HF transformers rope_init semantics, in double) and one cos/sin row:
// the validation and math every backend shares. Depends only on common.h (errors), so the CUDA library
// (scripts/build-cuda.sh) compiles this same file for its host side.
#include <algorithm>
#include <cmath>

#include "rope.h"

namespace hwkv {

namespace {

const double kPi = 3.14159265358979323846;

bool finite_pos(double x) { return std::isfinite(x) && x > 0; }

// HF transformers _compute_yarn_parameters helpers.
double yarn_correction_dim(double num_rotations, double dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (num_rotations * 2 * kPi))) / (2 * std::log(base));
}

}  // namespace

hwkv_status rope_init(const hwkv_rope_params* p, const char* fn, Rope* out) {
  if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope params pointer is NULL", fn);
  if (p->head_dim < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope head_dim must be >= 1, got %d", fn, p->head_dim);
  if (p->rotary_dim < 2 || p->rotary_dim % 2 != 0 || p->rotary_dim > p->head_dim)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope rotary_dim must be even and in 2..head_dim (%d), got %d", fn,
                p->head_dim, p->rotary_dim);
  if (p->style != HWKV_ROPE_NEOX && p->style != HWKV_ROPE_NORMAL)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope style must be 0 (NEOX) or 1 (NORMAL), got %d", fn, p->style);
  if (p->scaling < HWKV_ROPE_SCALING_NONE || p->scaling > HWKV_ROPE_SCALING_YARN)
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "%s: rope scaling must be 0 (NONE), 1 (LINEAR), 2 (LLAMA3) or 3 (YARN), got %d", fn, p->scaling);
  if (!finite_pos(p->theta)) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope theta must be finite and > 0, got %g", fn, p->theta);
  if (p->scaling != HWKV_ROPE_SCALING_NONE && !finite_pos(p->factor))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope factor must be finite and > 0, got %g", fn, p->factor);
  if (p->scaling == HWKV_ROPE_SCALING_LLAMA3) {
    if (!finite_pos(p->low_freq_factor))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope low_freq_factor must be finite and > 0, got %g", fn, p->low_freq_factor);
    if (!std::isfinite(p->high_freq_factor) || !(p->high_freq_factor > p->low_freq_factor))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope high_freq_factor (%g) must be greater than low_freq_factor (%g)", fn,
                  p->high_freq_factor, p->low_freq_factor);
  }
  if (p->scaling == HWKV_ROPE_SCALING_LLAMA3 || p->scaling == HWKV_ROPE_SCALING_YARN) {
    if (!finite_pos(p->original_max_position))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope original_max_position must be finite and > 0, got %g", fn,
                  p->original_max_position);
  }
  if (p->scaling == HWKV_ROPE_SCALING_YARN) {
    if (!finite_pos(p->beta_fast)) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope beta_fast must be finite and > 0, got %g", fn, p->beta_fast);
    if (!finite_pos(p->beta_slow)) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope beta_slow must be finite and > 0, got %g", fn, p->beta_slow);
    if (p->theta == 1.0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope theta must not be 1 with YaRN scaling", fn);
    if (p->yarn_truncate != 0 && p->yarn_truncate != 1)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope yarn_truncate must be 0 or 1, got %d", fn, p->yarn_truncate);
  }

  const int32_t dim = p->rotary_dim, half = dim / 2;
  const double base = p->theta;
  out->head_dim = p->head_dim;
  out->rotary_dim = dim;
  out->style = p->style;
  out->attention_factor = 1.0;
  out->inv_freq.assign(half, 0.0);
  std::vector<double>& f = out->inv_freq;

  // default: inv_freq = 1 / base^(2i/dim)
  for (int32_t i = 0; i < half; ++i) f[i] = 1.0 / std::pow(base, (2.0 * i) / dim);

  switch (p->scaling) {
    case HWKV_ROPE_SCALING_NONE:
      break;
    case HWKV_ROPE_SCALING_LINEAR:
      for (double& x : f) x /= p->factor;
      break;
    case HWKV_ROPE_SCALING_LLAMA3: {
      const double factor = p->factor, lo = p->low_freq_factor, hi = p->high_freq_factor;
      const double old_ctx = p->original_max_position;
      const double low_freq_wavelen = old_ctx / lo, high_freq_wavelen = old_ctx / hi;
      for (double& x : f) {
        const double wavelen = 2 * kPi / x;
        if (wavelen > low_freq_wavelen) {
          x = x / factor;
        } else if (wavelen < high_freq_wavelen) {
          // unchanged
        } else {
          const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
          x = (1 - smooth) * x / factor + smooth * x;
        }
      }
      break;
    }
    case HWKV_ROPE_SCALING_YARN: {
      const double factor = p->factor;
      out->attention_factor = factor <= 1 ? 1.0 : 0.1 * std::log(factor) + 1.0;
      double low = yarn_correction_dim(p->beta_fast, dim, base, p->original_max_position);
      double high = yarn_correction_dim(p->beta_slow, dim, base, p->original_max_position);
      if (p->yarn_truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;  // prevent singularity (as HF)
      for (int32_t i = 0; i < half; ++i) {
        const double pos_freq = std::pow(base, (2.0 * i) / dim);
        const double extrapolation = 1.0 / pos_freq, interpolation = 1.0 / (factor * pos_freq);
        double ramp = (i - low) / (high - low);
        ramp = std::min(std::max(ramp, 0.0), 1.0);
        const double extrapolation_factor = 1.0 - ramp;
        f[i] = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
      }
      break;
    }
  }
  for (int32_t i = 0; i < half; ++i)
    if (!std::isfinite(f[i]))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope parameters give a non-finite inv_freq[%d]", fn, i);
  return HWKV_OK;
}

void rope_table_one(const Rope& r, double pos, float* C, float* S) {
  const int32_t half = r.rotary_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    const double a = pos * r.inv_freq[i];
    const float c = static_cast<float>(std::cos(a)), s = static_cast<float>(std::sin(a));
    if (r.style == HWKV_ROPE_NEOX) {
      C[i] = c, C[i + half] = c;
      S[i] = -s, S[i + half] = s;
    } else {
      C[2 * i] = c, C[2 * i + 1] = c;
      S[2 * i] = -s, S[2 * i + 1] = s;
    }
  }
}

}  // namespace hwkv
