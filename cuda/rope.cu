// rope.cu — RoPE frequencies (host, double) and rope_apply (device).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.cuh"
#include "rope.cuh"

namespace hwkv_cuda {

namespace {

constexpr double kPi = 3.14159265358979323846;

bool finite_pos(double x) { return std::isfinite(x) && x > 0.0; }

// HF's YaRN helpers, in double.
double yarn_correction_dim(double n_rot, double dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (n_rot * 2.0 * kPi))) / (2.0 * std::log(base));
}

}  // namespace

hwkv_status rope_prepare(const char* fn, const hwkv_rope_params* p, RopeHost* out) {
  // Same checks, order and wording as the CPU core (core/src/rope.cpp).
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
  if (!finite_pos(p->theta))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope theta must be finite and > 0, got %g", fn, p->theta);
  if (p->scaling != HWKV_ROPE_SCALING_NONE && !finite_pos(p->factor))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope factor must be finite and > 0, got %g", fn, p->factor);
  if (p->scaling == HWKV_ROPE_SCALING_LLAMA3) {
    if (!finite_pos(p->low_freq_factor))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope low_freq_factor must be finite and > 0, got %g", fn,
                  p->low_freq_factor);
    if (!std::isfinite(p->high_freq_factor) || !(p->high_freq_factor > p->low_freq_factor))
      return fail(HWKV_ERR_INVALID_ARGUMENT,
                  "%s: rope high_freq_factor (%g) must be greater than low_freq_factor (%g)", fn, p->high_freq_factor,
                  p->low_freq_factor);
  }
  if (p->scaling == HWKV_ROPE_SCALING_LLAMA3 || p->scaling == HWKV_ROPE_SCALING_YARN) {
    if (!finite_pos(p->original_max_position))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope original_max_position must be finite and > 0, got %g", fn,
                  p->original_max_position);
  }
  if (p->scaling == HWKV_ROPE_SCALING_YARN) {
    if (!finite_pos(p->beta_fast))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope beta_fast must be finite and > 0, got %g", fn, p->beta_fast);
    if (!finite_pos(p->beta_slow))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope beta_slow must be finite and > 0, got %g", fn, p->beta_slow);
    if (p->theta == 1.0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope theta must not be 1 with YaRN scaling", fn);
    if (p->yarn_truncate != 0 && p->yarn_truncate != 1)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope yarn_truncate must be 0 or 1, got %d", fn, p->yarn_truncate);
  }

  const int32_t rot = p->rotary_dim, half = rot / 2;
  out->head_dim = p->head_dim;
  out->rotary_dim = rot;
  out->half = half;
  out->style = p->style;
  out->inv_freq.assign(half, 0.0);
  out->attention_factor = 1.0;
  std::vector<double>& f = out->inv_freq;
  for (int32_t i = 0; i < half; ++i) f[i] = 1.0 / std::pow(p->theta, (2.0 * i) / rot);

  switch (p->scaling) {
    case HWKV_ROPE_SCALING_NONE:
      break;
    case HWKV_ROPE_SCALING_LINEAR:
      for (double& x : f) x /= p->factor;
      break;
    case HWKV_ROPE_SCALING_LLAMA3: {
      const double factor = p->factor, lo = p->low_freq_factor, hi = p->high_freq_factor;
      const double old_ctx = p->original_max_position;
      const double low_wl = old_ctx / lo, high_wl = old_ctx / hi;
      for (double& x : f) {
        const double wl = 2 * kPi / x;
        if (wl > low_wl) {
          x = x / factor;
        } else if (wl < high_wl) {
          // high frequency: unchanged
        } else {
          const double smooth = (old_ctx / wl - lo) / (hi - lo);
          x = (1 - smooth) * x / factor + smooth * x;
        }
      }
      break;
    }
    case HWKV_ROPE_SCALING_YARN: {
      const double dim = rot;
      double low = yarn_correction_dim(p->beta_fast, dim, p->theta, p->original_max_position);
      double high = yarn_correction_dim(p->beta_slow, dim, p->theta, p->original_max_position);
      if (p->yarn_truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      if (low < 0.0) low = 0.0;
      if (high > dim - 1.0) high = dim - 1.0;
      if (low == high) high += 0.001;
      for (int32_t i = 0; i < half; ++i) {
        const double pos_freq = std::pow(p->theta, (2.0 * i) / rot);
        const double extrapolation = 1.0 / pos_freq, interpolation = 1.0 / (p->factor * pos_freq);
        double ramp = (i - low) / (high - low);
        ramp = std::min(std::max(ramp, 0.0), 1.0);
        const double extrapolation_factor = 1.0 - ramp;
        f[i] = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
      }
      out->attention_factor = p->factor <= 1 ? 1.0 : 0.1 * std::log(p->factor) + 1.0;
      break;
    }
    default:
      break;
  }
  for (int32_t i = 0; i < half; ++i)
    if (!std::isfinite(f[i]))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope parameters give a non-finite inv_freq[%d]", fn, i);
  return HWKV_OK;
}

void rope_table_row(const RopeHost& r, double pos, std::vector<float>& tab) {
  const size_t base = tab.size();
  tab.resize(base + 2 * static_cast<size_t>(r.half));
  for (int32_t j = 0; j < r.half; ++j) {
    const double a = pos * r.inv_freq[j];
    tab[base + j] = static_cast<float>(std::cos(a));
    tab[base + r.half + j] = static_cast<float>(std::sin(a));
  }
}

hwkv_status rope_inv_freq(const hwkv_rope_params* p, float* inv_freq, float* attention_factor) {
  const char* fn = "rope_inv_freq";
  return guarded(fn, [&]() -> hwkv_status {
    RopeHost r;
    HWKV_TRY(rope_prepare(fn, p, &r));
    if (!inv_freq) return fail(HWKV_ERR_INVALID_ARGUMENT, "rope_inv_freq: inv_freq is NULL");
    for (int32_t j = 0; j < r.half; ++j) inv_freq[j] = static_cast<float>(r.inv_freq[j]);
    if (attention_factor) *attention_factor = static_cast<float>(r.attention_factor);
    return HWKV_OK;
  });
}

namespace {

// x[n_tok, n_head, head_dim] in place; tab[n_tok][2*half].
__global__ void rope_apply_kernel(RopeDev r, float* __restrict__ x, int64_t n_tok, int32_t n_head,
                                  const float* __restrict__ tab) {
  const int32_t units = rope_units(r);
  const int64_t total = n_tok * n_head * units;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = i / units;  // t * n_head + h
    const int32_t u = static_cast<int32_t>(i - row * units);
    const int64_t t = row / n_head;
    float* xr = x + row * r.head_dim;
    rope_unit(r, u, xr, xr, tab + t * 2 * r.half);
  }
}

}  // namespace

hwkv_status rope_apply(const hwkv_rope_params* p, float* x, int64_t n_tok, int32_t n_head, const int32_t* pos) {
  const char* fn = "rope_apply";
  return guarded(fn, [&]() -> hwkv_status {
    RopeHost r;
    HWKV_TRY(rope_prepare(fn, p, &r));
    if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 0, got %lld", fn, (long long)n_tok);
    if (n_head < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_head must be >= 1, got %d", fn, n_head);
    if (n_tok == 0) return HWKV_OK;
    if (!x) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: x is NULL", fn);
    if (!pos) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: pos is NULL", fn);
    HWKV_TRY(use_device(fn));

    std::vector<float> tab;
    tab.reserve(static_cast<size_t>(n_tok) * 2 * r.half);
    for (int64_t t = 0; t < n_tok; ++t) rope_table_row(r, static_cast<double>(pos[t]), tab);

    const size_t x_bytes = static_cast<size_t>(n_tok) * n_head * r.head_dim * sizeof(float);
    const size_t tab_bytes = tab.size() * sizeof(float);
    Scratch dx, dt;
    HWKV_TRY(dx.alloc(fn, x_bytes));
    HWKV_TRY(dt.alloc(fn, tab_bytes));
    HWKV_TRY(h2d(fn, dx.ptr(), x, x_bytes));
    HWKV_TRY(h2d(fn, dt.ptr(), tab.data(), tab_bytes));
    const RopeDev rd = rope_dev(&r, r.head_dim);
    const int threads = 256;
    rope_apply_kernel<<<grid_for(n_tok * n_head * rope_units(rd), threads), threads, 0, stream()>>>(
        rd, dx.as<float>(), n_tok, n_head, dt.as<float>());
    HWKV_CU_LAUNCH(rope_apply_kernel);
    HWKV_TRY(d2h(fn, x, dx.ptr(), x_bytes));
    return sync(fn);
  });
}

}  // namespace hwkv_cuda
