// rope.cpp — RoPE frequencies and rotation (scalar kernel + ABI helpers).
#include "rope.h"

#include <algorithm>
#include <cmath>

#include "dispatch.h"

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
