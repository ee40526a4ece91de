// quant_api.cu — hwkv_cuda_quant_api(): the quantizer table of core/include/hwkv_quant.h on the device. Host
// buffers in and out; the work runs on the device with the store codec's kernels (codec.cu): HIGGS encode /
// decode (FWHT, grid search, bit packing), uniform encode / decode, grid_nearest, and the ridge normal
// equations XᵀX, XᵀY, Σy² accumulated in double by a tiled kernel. Parameter checks, sizes, signs and the
// ridge solve are the CPU core's own code (core/src/quant_params.cpp, quant_ridge.cpp; cuda/core_host.cuh).
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/src/pack.h"
#include "../core/src/quant_internal.h"
#include "codec.cuh"
#include "core_host.cuh"
#include "hwkv_quant.h"

namespace hwkv_cuda {
namespace {

constexpr unsigned long long kNoErr = ~0ull;

template <class T>
hwkv_status up(const char* fn, CodecTemp& tmp, const T* src, size_t n, T** out) {
  hwkv_status st;
  unsigned char* p = tmp.get(fn, n * sizeof(T), &st);
  HWKV_TRY(st);
  if (src) HWKV_TRY(h2d(fn, p, src, n * sizeof(T)));
  *out = reinterpret_cast<T*>(p);
  return HWKV_OK;
}

// The grid (with its search tables) and the sign vector of p on the device (signs live in tmp).
hwkv_status higgs_setup(const char* fn, const hwkv_higgs_params* p, const float* grid, CodecTemp& tmp, DevGrid& dg,
                        float** dsg) {
  HWKV_TRY(dg.upload(fn, grid, p->n_points, p->dim));
  std::vector<float> sg(static_cast<size_t>(p->channels));
  hwkv::quant::make_signs(p->seed, p->channels, sg.data());
  return up(fn, tmp, sg.data(), sg.size(), dsg);
}

hwkv_status q_higgs_size(const hwkv_higgs_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales) {
  return guarded("higgs_size", [&] { return hwkv::quant::higgs_size(p, n_tok, n_words, n_scales); });
}

hwkv_status q_higgs_encode(const hwkv_higgs_params* p, const float* grid, const float* x, int64_t n_tok, uint32_t* codes,
                           int64_t n_words, uint16_t* scales) {
  const char* fn = "higgs_encode";
  return guarded(fn, [&]() -> hwkv_status {
    bool skip;
    HWKV_TRY(hwkv::quant::check_higgs_encode(fn, p, grid, x, n_tok, codes, n_words, scales, &skip));
    if (skip) return HWKV_OK;
    HWKV_TRY(use_device(fn));
    const int32_t C = p->channels, G = C / p->group;
    const int64_t need = hwkv::packed_words(n_tok * (C / p->dim), hwkv::quant::code_bits(p->n_points));
    CodecTemp tmp;
    DevGrid dg;
    float *dsg, *dx;
    uint32_t* dw;
    uint16_t *ds, *didx;
    unsigned long long* derr;
    HWKV_TRY(higgs_setup(fn, p, grid, tmp, dg, &dsg));
    HWKV_TRY(up(fn, tmp, x, static_cast<size_t>(n_tok) * C, &dx));
    HWKV_TRY(up<uint32_t>(fn, tmp, nullptr, static_cast<size_t>(need), &dw));
    HWKV_TRY(up<uint16_t>(fn, tmp, nullptr, static_cast<size_t>(n_tok) * G, &ds));
    HWKV_TRY(up<uint16_t>(fn, tmp, nullptr, static_cast<size_t>(n_tok) * (C / p->dim), &didx));
    HWKV_TRY(up<unsigned long long>(fn, tmp, nullptr, 1, &derr));
    HWKV_CU(cudaMemsetAsync(derr, 0xff, sizeof(unsigned long long), stream()));
    HWKV_TRY(higgs_encode_dev(fn, *p, dg, dsg, dx, n_tok, dw, ds, didx, derr));
    unsigned long long herr = kNoErr;
    HWKV_TRY(d2h(fn, &herr, derr, sizeof herr));
    HWKV_TRY(sync(fn));
    if (herr != kNoErr) {  // the first failing (token, group), worded by the CPU core's validation
      HWKV_TRY(hwkv::quant::higgs_scales(fn, p, x, n_tok, nullptr));
      return fail(HWKV_ERR_INTERNAL, "%s: the device rejected group %llu, which the host check accepts", fn, herr);
    }
    HWKV_TRY(d2h(fn, codes, dw, static_cast<size_t>(need) * 4));
    HWKV_TRY(d2h(fn, scales, ds, static_cast<size_t>(n_tok) * G * 2));
    return sync(fn);
  });
}

hwkv_status q_higgs_decode(const hwkv_higgs_params* p, const float* grid, const uint32_t* codes, int64_t n_words,
                           const uint16_t* scales, int64_t n_tok, float* y, int32_t accumulate) {
  const char* fn = "higgs_decode";
  return guarded(fn, [&]() -> hwkv_status {
    bool skip;
    HWKV_TRY(hwkv::quant::check_higgs_decode(fn, p, grid, codes, n_words, scales, n_tok, y, &skip));
    if (skip) return HWKV_OK;
    const int32_t C = p->channels, G = C / p->group;
    HWKV_TRY(use_device(fn));
    const int64_t need = hwkv::packed_words(n_tok * (C / p->dim), hwkv::quant::code_bits(p->n_points));
    CodecTemp tmp;
    DevGrid dg;
    float *dsg, *dy;
    uint32_t* dw;
    uint16_t* ds;
    DecJob* dj;
    HWKV_TRY(higgs_setup(fn, p, grid, tmp, dg, &dsg));
    HWKV_TRY(up(fn, tmp, codes, static_cast<size_t>(need), &dw));
    HWKV_TRY(up(fn, tmp, scales, static_cast<size_t>(n_tok) * G, &ds));
    HWKV_TRY(up(fn, tmp, accumulate ? y : nullptr, static_cast<size_t>(n_tok) * C, &dy));
    const DecJob job{dw, ds, nullptr, 0};
    HWKV_TRY(up(fn, tmp, &job, 1, &dj));
    HWKV_TRY(higgs_decode_dev(fn, *p, dg, dsg, dj, 1, n_tok, dy, accumulate));
    HWKV_TRY(d2h(fn, y, dy, static_cast<size_t>(n_tok) * C * 4));
    return sync(fn);
  });
}

hwkv_status q_grid_nearest(const float* grid, int32_t n_points, int32_t dim, const float* z, int64_t m, uint16_t* idx) {
  const char* fn = "grid_nearest";
  return guarded(fn, [&]() -> hwkv_status {
    bool skip;
    HWKV_TRY(hwkv::quant::check_nearest(fn, grid, n_points, dim, z, m, idx, &skip));
    if (skip) return HWKV_OK;
    HWKV_TRY(use_device(fn));
    CodecTemp tmp;
    DevGrid dg;
    HWKV_TRY(dg.upload(fn, grid, n_points, dim));
    float* dz;
    uint16_t* di;
    HWKV_TRY(up(fn, tmp, z, static_cast<size_t>(m) * dim, &dz));
    HWKV_TRY(up<uint16_t>(fn, tmp, nullptr, static_cast<size_t>(m), &di));
    HWKV_TRY(grid_nearest_dev(fn, dg, dz, m, di));
    HWKV_TRY(d2h(fn, idx, di, static_cast<size_t>(m) * 2));
    return sync(fn);
  });
}

hwkv_status q_higgs_signs(uint32_t seed, int32_t channels, float* out) {
  return guarded("higgs_signs", [&] { return hwkv::quant::signs(seed, channels, out); });
}

hwkv_status q_uniform_size(const hwkv_uniform_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales) {
  return guarded("uniform_size", [&] { return hwkv::quant::uniform_size(p, n_tok, n_words, n_scales); });
}

hwkv_status q_uniform_encode(const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint32_t* codes,
                             int64_t n_words, uint16_t* scales, uint16_t* zeros) {
  const char* fn = "uniform_encode";
  return guarded(fn, [&]() -> hwkv_status {
    bool skip;
    HWKV_TRY(hwkv::quant::check_uniform_encode(fn, p, x, n_tok, codes, n_words, scales, zeros, &skip));
    if (skip) return HWKV_OK;
    const int64_t n_codes = n_tok * p->channels;
    const int64_t need = hwkv::packed_words(n_codes, p->bits);
    HWKV_TRY(use_device(fn));
    const int64_t ns = hwkv::quant::uniform_n_scales(p, n_tok);
    CodecTemp tmp;
    float* dx;
    uint32_t* dw;
    uint16_t *ds, *dz, *didx;
    unsigned long long* derr;
    HWKV_TRY(up(fn, tmp, x, static_cast<size_t>(n_codes), &dx));
    HWKV_TRY(up<uint32_t>(fn, tmp, nullptr, static_cast<size_t>(need), &dw));
    HWKV_TRY(up<uint16_t>(fn, tmp, nullptr, static_cast<size_t>(ns), &ds));
    HWKV_TRY(up<uint16_t>(fn, tmp, nullptr, static_cast<size_t>(ns), &dz));
    HWKV_TRY(up<uint16_t>(fn, tmp, nullptr, static_cast<size_t>(n_codes), &didx));
    HWKV_TRY(up<unsigned long long>(fn, tmp, nullptr, 2, &derr));
    HWKV_CU(cudaMemsetAsync(derr, 0xff, 2 * sizeof(unsigned long long), stream()));
    HWKV_TRY(uniform_encode_dev(fn, *p, dx, n_tok, dw, ds, dz, didx, derr, derr + 1));
    unsigned long long herr[2];
    HWKV_TRY(d2h(fn, herr, derr, sizeof herr));
    HWKV_TRY(sync(fn));
    if (herr[0] != kNoErr || herr[1] != kNoErr) {  // worded by the CPU core's validation (first failure)
      HWKV_TRY(hwkv::quant::uniform_scales(fn, p, x, n_tok, nullptr, nullptr));
      return fail(HWKV_ERR_INTERNAL, "%s: the device rejected the input, which the host check accepts", fn);
    }
    HWKV_TRY(d2h(fn, codes, dw, static_cast<size_t>(need) * 4));
    HWKV_TRY(d2h(fn, scales, ds, static_cast<size_t>(ns) * 2));
    HWKV_TRY(d2h(fn, zeros, dz, static_cast<size_t>(ns) * 2));
    return sync(fn);
  });
}

hwkv_status q_uniform_decode(const hwkv_uniform_params* p, const uint32_t* codes, int64_t n_words,
                             const uint16_t* scales, const uint16_t* zeros, int64_t n_tok, float* y, int32_t accumulate) {
  const char* fn = "uniform_decode";
  return guarded(fn, [&]() -> hwkv_status {
    bool skip;
    HWKV_TRY(hwkv::quant::check_uniform_decode(fn, p, codes, n_words, scales, zeros, n_tok, y, &skip));
    if (skip) return HWKV_OK;
    const int64_t n_codes = n_tok * p->channels;
    const int64_t need = hwkv::packed_words(n_codes, p->bits);
    const int64_t ns = hwkv::quant::uniform_n_scales(p, n_tok);
    HWKV_TRY(use_device(fn));
    CodecTemp tmp;
    float* dy;
    uint32_t* dw;
    uint16_t *ds, *dz;
    DecJob* dj;
    HWKV_TRY(up(fn, tmp, codes, static_cast<size_t>(need), &dw));
    HWKV_TRY(up(fn, tmp, scales, static_cast<size_t>(ns), &ds));
    HWKV_TRY(up(fn, tmp, zeros, static_cast<size_t>(ns), &dz));
    HWKV_TRY(up(fn, tmp, accumulate ? y : nullptr, static_cast<size_t>(n_codes), &dy));
    const DecJob job{dw, ds, dz, 0};
    HWKV_TRY(up(fn, tmp, &job, 1, &dj));
    HWKV_TRY(uniform_decode_dev(fn, *p, dj, 1, n_tok, dy, accumulate));
    HWKV_TRY(d2h(fn, y, dy, static_cast<size_t>(n_codes) * 4));
    return sync(fn);
  });
}

// S[i, j] = Σ_r a(r, i) b(r, j) in double over rows [0, n): a = [x | 1] (p + 1 columns), b = [x | 1] or y.
constexpr int kRt = 16;
__global__ void normal_kernel(const float* __restrict__ x, int32_t p, const float* __restrict__ y, int32_t q, int64_t n,
                              int b_is_y, double* __restrict__ S, int32_t ncols) {
  __shared__ double As[kRt][kRt];
  __shared__ double Bs[kRt][kRt + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int32_t i = blockIdx.y * kRt + ty;  // row of S (column of a)
  const int32_t j = blockIdx.x * kRt + tx;  // column of S (column of b)
  const int32_t p1 = p + 1;
  double acc = 0.0;
  for (int64_t r0 = 0; r0 < n; r0 += kRt) {
    {  // As[rr][cc] = a(r0 + rr, blockIdx.y*16 + cc); thread (tx, ty) loads row ty, column tx
      const int64_t r = r0 + ty;
      const int32_t c = blockIdx.y * kRt + tx;
      double v = 0.0;
      if (r < n && c < p1) v = c < p ? double(x[r * p + c]) : 1.0;
      As[ty][tx] = v;
      const int32_t cb = blockIdx.x * kRt + tx;
      double w = 0.0;
      if (r < n && cb < ncols) w = b_is_y ? double(y[r * q + cb]) : (cb < p ? double(x[r * p + cb]) : 1.0);
      Bs[ty][tx] = w;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kRt; ++rr) acc = fma(As[rr][ty], Bs[rr][tx], acc);
    __syncthreads();
  }
  if (i < p1 && j < ncols) S[static_cast<int64_t>(i) * ncols + j] = acc;
}

__global__ void sumsq_kernel(const float* __restrict__ y, int32_t q, int64_t n, double* __restrict__ out) {
  for (int32_t k = blockIdx.x * blockDim.x + threadIdx.x; k < q; k += gridDim.x * blockDim.x) {
    double s = 0.0;
    for (int64_t r = 0; r < n; ++r) s = fma(double(y[r * q + k]), double(y[r * q + k]), s);
    out[k] = s;
  }
}

hwkv_status q_ridge_accumulate(const float* x, const float* y, int64_t n, int32_t p, int32_t q, double* xtx, double* xty,
                               double* yy) {
  const char* fn = "ridge_accumulate";
  return guarded(fn, [&]() -> hwkv_status {
    bool skip;
    HWKV_TRY(hwkv::quant::check_ridge_accumulate(fn, x, y, n, p, q, xtx, xty, &skip));
    if (skip) return HWKV_OK;
    HWKV_TRY(use_device(fn));
    const int32_t p1 = p + 1;
    CodecTemp tmp;
    float *dx = nullptr, *dy;
    double *dxx, *dxy, *dyy;
    if (p > 0) HWKV_TRY(up(fn, tmp, x, static_cast<size_t>(n) * p, &dx));
    HWKV_TRY(up(fn, tmp, y, static_cast<size_t>(n) * q, &dy));
    HWKV_TRY(up<double>(fn, tmp, nullptr, static_cast<size_t>(p1) * p1, &dxx));
    HWKV_TRY(up<double>(fn, tmp, nullptr, static_cast<size_t>(p1) * q, &dxy));
    HWKV_TRY(up<double>(fn, tmp, nullptr, static_cast<size_t>(q), &dyy));
    const dim3 blk(kRt, kRt);
    normal_kernel<<<dim3(static_cast<unsigned>(ceil_div(p1, kRt)), static_cast<unsigned>(ceil_div(p1, kRt))), blk, 0,
                    stream()>>>(dx, p, dy, q, n, 0, dxx, p1);
    HWKV_CU_LAUNCH(normal_kernel);
    normal_kernel<<<dim3(static_cast<unsigned>(ceil_div(q, kRt)), static_cast<unsigned>(ceil_div(p1, kRt))), blk, 0,
                    stream()>>>(dx, p, dy, q, n, 1, dxy, q);
    HWKV_CU_LAUNCH(normal_kernel);
    if (yy) {
      sumsq_kernel<<<grid_for(q, 128), 128, 0, stream()>>>(dy, q, n, dyy);
      HWKV_CU_LAUNCH(sumsq_kernel);
    }
    std::vector<double> hxx(static_cast<size_t>(p1) * p1), hxy(static_cast<size_t>(p1) * q), hyy(static_cast<size_t>(q));
    HWKV_TRY(d2h(fn, hxx.data(), dxx, hxx.size() * 8));
    HWKV_TRY(d2h(fn, hxy.data(), dxy, hxy.size() * 8));
    if (yy) HWKV_TRY(d2h(fn, hyy.data(), dyy, hyy.size() * 8));
    HWKV_TRY(sync(fn));
    // as the CPU: the upper triangle accumulates, then is mirrored
    for (int32_t i = 0; i < p1; ++i)
      for (int32_t j = i; j < p1; ++j) xtx[int64_t(i) * p1 + j] += hxx[int64_t(i) * p1 + j];
    for (int32_t i = 0; i < p1; ++i)
      for (int32_t j = i + 1; j < p1; ++j) xtx[int64_t(j) * p1 + i] = xtx[int64_t(i) * p1 + j];
    for (size_t i = 0; i < hxy.size(); ++i) xty[i] += hxy[i];
    if (yy)
      for (int32_t k = 0; k < q; ++k) yy[k] += hyy[k];
    return HWKV_OK;
  });
}

hwkv_status q_ridge_solve(const double* xtx, const double* xty, int32_t p, int32_t q, double lambda_rel, float* w) {
  return guarded("ridge_solve", [&] { return hwkv::quant::ridge_solve(xtx, xty, p, q, lambda_rel, w); });
}

// y = x · w[0:p] + w[p]: the codec's FP32 tile GEMM (y = x · Wᵀ + bias) with w transposed on the host
hwkv_status q_linear_apply(const float* x, int64_t n, int32_t p, int32_t q, const float* w, float* y) {
  const char* fn = "linear_apply";
  return guarded(fn, [&]() -> hwkv_status {
    bool skip;
    HWKV_TRY(hwkv::quant::check_linear_apply(fn, x, n, p, q, w, y, &skip));
    if (skip) return HWKV_OK;
    HWKV_TRY(use_device(fn));
    std::vector<float> wt(static_cast<size_t>(q) * p);
    for (int32_t i = 0; i < p; ++i)
      for (int32_t j = 0; j < q; ++j) wt[static_cast<size_t>(j) * p + i] = w[static_cast<int64_t>(i) * q + j];
    CodecTemp tmp;
    float *dx = nullptr, *dw = nullptr, *db, *dy;
    if (p > 0) {
      HWKV_TRY(up(fn, tmp, x, static_cast<size_t>(n) * p, &dx));
      HWKV_TRY(up(fn, tmp, wt.data(), wt.size(), &dw));
    }
    HWKV_TRY(up(fn, tmp, w + static_cast<int64_t>(p) * q, static_cast<size_t>(q), &db));
    HWKV_TRY(up<float>(fn, tmp, nullptr, static_cast<size_t>(n) * q, &dy));
    HWKV_TRY(gemm_nt(fn, dx, p, dw, p, dy, q, n, q, p, 0, db));
    HWKV_TRY(d2h(fn, y, dy, static_cast<size_t>(n) * q * sizeof(float)));
    return sync(fn);
  });
}

}  // namespace
}  // namespace hwkv_cuda

extern "C" HWKV_API const hwkv_quant_api* hwkv_cuda_quant_api(void) {
  using namespace hwkv_cuda;
  static const hwkv_quant_api api = {
      HWKV_QUANT_ABI_VERSION, static_cast<uint32_t>(sizeof(hwkv_quant_api)),
      q_higgs_size,           q_higgs_encode,
      q_higgs_decode,         q_grid_nearest,
      q_higgs_signs,          q_uniform_size,
      q_uniform_encode,       q_uniform_decode,
      q_ridge_accumulate,     q_ridge_solve,
      q_linear_apply,
  };
  return &api;
}
