// rope.cu — RoPE on the CUDA backend: frequencies from the CPU core (core/src/rope_freq.cpp), cos/sin table
// rows and rope_apply (device).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core_host.cuh"
#include "ops.cuh"
#include "rope.cuh"

namespace hwkv_cuda {

hwkv_status rope_prepare(const char* fn, const hwkv_rope_params* p, RopeHost* out) {
  // The CPU core's validation and frequency math (core/src/rope_freq.cpp, compiled into this library).
  hwkv::Rope r;
  HWKV_TRY(hwkv::rope_init(p, fn, &r));
  out->head_dim = r.head_dim;
  out->rotary_dim = r.rotary_dim;
  out->half = r.rotary_dim / 2;
  out->style = r.style;
  out->inv_freq = r.inv_freq;
  out->attention_factor = r.attention_factor;
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
