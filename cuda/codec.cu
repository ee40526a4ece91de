// codec.cu — KV codecs of the CUDA block store (see codec.cuh): quantizer kernels (HIGGS with FWHT and grid
// search, uniform min/max), the predictor GEMM, chunk encode / decode, prepare_layer, reads / merge /
// truncate through the codec, stats and codes.
//
// Arithmetic follows the CPU quantizers operation by operation (no contraction: __fmul_rn / __fadd_rn; FWHT
// butterflies in the textbook order, then one multiply by the scale; group norms summed in double in order;
// the grid search scores z·g - |g|²/2 formed as on the CPU, first maximum wins), so codes equal the CPU's for
// equal inputs. The AQUA predictor products differ from the CPU's matmul kernels in summation order (a few
// ulps), which can flip a rare code of layers >= 1.
#include <cstdlib>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "../core/src/quant_internal.h"
#include "codec.cuh"
#include "core_host.cuh"
#include "fwht.cuh"
#include "ops.cuh"

namespace hwkv_cuda {

// ------------------------------------------------------------------------------------------------
// memory helpers
// ------------------------------------------------------------------------------------------------
hwkv_status DevMem::alloc(const char* fn, size_t bytes) {
  reset();
  if (bytes == 0) return HWKV_OK;
  void* p = nullptr;
  HWKV_CU(cudaMalloc(&p, bytes));
  p_ = static_cast<unsigned char*>(p);
  n_ = bytes;
  return HWKV_OK;
}
void DevMem::reset() {
  if (p_) (void)cudaFree(p_);
  p_ = nullptr;
  n_ = 0;
}

unsigned char* CodecTemp::get(const char* fn, size_t bytes, hwkv_status* st) {
  bufs.emplace_back(new Scratch());
  *st = bufs.back()->alloc(fn, bytes);
  return *st == HWKV_OK ? bufs.back()->as<unsigned char>() : nullptr;
}

namespace {

constexpr unsigned long long kNoErr = ~0ull;

template <class T>
hwkv_status upload_vec(const char* fn, DevMem& m, const T* src, size_t n) {
  HWKV_TRY(m.alloc(fn, n * sizeof(T)));
  return h2d(fn, m.p(), src, n * sizeof(T));
}

// ------------------------------------------------------------------------------------------------
// kernels
// ------------------------------------------------------------------------------------------------
__global__ void hn_kernel(const float* __restrict__ g, int32_t n, int32_t d, float* __restrict__ hn) {
  for (int32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float* p = g + static_cast<int64_t>(i) * d;
    float s = __fmul_rn(p[0], p[0]);
    for (int32_t k = 1; k < d; ++k) s = __fadd_rn(s, __fmul_rn(p[k], p[k]));
    hn[i] = __fmul_rn(0.5f, s);
  }
}

struct GridArgs {
  const float* pts;
  const float* hn;
  const float* thr;
  const uint16_t* order;
  int32_t n, d;
};

__device__ __forceinline__ uint16_t nearest_one(const GridArgs& g, const float* z) {
  if (g.d == 1) {  // lower_bound over the n-1 sorted midpoints
    const float v = z[0];
    int32_t lo = 0, hi = g.n - 1;
    while (lo < hi) {
      const int32_t mid = (lo + hi) >> 1;
      if (g.thr[mid] < v) lo = mid + 1; else hi = mid;
    }
    return g.order[lo];
  }
  float best = -INFINITY;
  int32_t bi = 0;
  for (int32_t i = 0; i < g.n; ++i) {
    const float* p = g.pts + static_cast<int64_t>(i) * g.d;
    float s = __fmul_rn(z[0], p[0]);
    for (int32_t k = 1; k < g.d; ++k) s = __fadd_rn(s, __fmul_rn(z[k], p[k]));
    s = __fsub_rn(s, g.hn[i]);
    if (s > best) {
      best = s;
      bi = i;
    }
  }
  return static_cast<uint16_t>(bi);
}

__global__ void nearest_kernel(GridArgs g, const float* __restrict__ z, int64_t m, uint16_t* __restrict__ idx) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < m; i += (int64_t)gridDim.x * blockDim.x)
    idx[i] = nearest_one(g, z + i * g.d);
}

// In-place FWHT of s[0, g) by the CTA (textbook stride order), then s *= scale.
__device__ __forceinline__ void cta_fwht(float* s, int32_t g, float scale, bool apply) {
  cta_fwht_stages(s, g);
  if (apply) {
    for (int32_t i = threadIdx.x; i < g; i += blockDim.x) s[i] = __fmul_rn(s[i], scale);
    __syncthreads();
  }
}

// One CTA per (token, group): signs, norm (double, in order), fp16 scale, FWHT, grid search.
__global__ void higgs_encode_kernel(const float* __restrict__ x, int64_t n_tok, int32_t C, int32_t g,
                                    const float* __restrict__ signs, GridArgs grid, uint16_t* __restrict__ idx,
                                    uint16_t* __restrict__ scales, unsigned long long* err) {
  extern __shared__ float buf[];
  __shared__ float S_sh;
  __shared__ int ok_sh;
  const int32_t G = C / g;
  for (int64_t tg = blockIdx.x; tg < n_tok * G; tg += gridDim.x) {
    const int64_t t = tg / G;
    const int32_t j = static_cast<int32_t>(tg % G);
    const float* xg = x + t * C + static_cast<int64_t>(j) * g;
    for (int32_t c = threadIdx.x; c < g; c += blockDim.x)
      buf[c] = signs ? __fmul_rn(xg[c], signs[static_cast<int64_t>(j) * g + c]) : xg[c];
    __syncthreads();
    if (threadIdx.x == 0) {
      double ss = 0.0;
      for (int32_t c = 0; c < g; ++c) ss = __dadd_rn(ss, __dmul_rn(double(xg[c]), double(xg[c])));
      int ok = isfinite(ss) ? 1 : 0;
      float S = 0.0f;
      uint16_t h = 0;
      if (ok) {
        const float nrm = static_cast<float>(sqrt(ss));
        h = __half_as_ushort(__float2half_rn(nrm));
        if ((h & 0x7c00u) == 0x7c00u) ok = 0;
        S = __half2float(__ushort_as_half(h));
      }
      if (!ok) atomicMin(err, static_cast<unsigned long long>(tg));
      scales[tg] = h;
      S_sh = S;
      ok_sh = ok;
    }
    __syncthreads();
    const float S = S_sh;
    uint16_t* out = idx + (t * C + static_cast<int64_t>(j) * g) / grid.d;
    const int32_t nq = g / grid.d;
    if (!ok_sh || S == 0.0f) {
      for (int32_t q = threadIdx.x; q < nq; q += blockDim.x) out[q] = 0;
      __syncthreads();
      continue;
    }
    cta_fwht(buf, g, __fdiv_rn(1.0f, S), true);
    for (int32_t q = threadIdx.x; q < nq; q += blockDim.x) out[q] = nearest_one(grid, buf + q * grid.d);
    __syncthreads();
  }
}

__device__ __forceinline__ uint32_t code_at(const uint32_t* w, int64_t i, int32_t bits) {
  const int64_t b = i * bits;
  const int64_t wi = b >> 5;
  const int32_t off = static_cast<int32_t>(b & 31);
  uint64_t v = w[wi];
  if (off + bits > 32) v |= static_cast<uint64_t>(w[wi + 1]) << 32;
  return static_cast<uint32_t>((v >> off) & ((1u << bits) - 1u));
}

// One CTA per (job, token, group): grid points, FWHT, scale S/g, signs, (accumulate).
__global__ void higgs_decode_kernel(const DecJob* __restrict__ jobs, int64_t n_jobs, int64_t n_tok, int32_t C,
                                    int32_t g, int32_t d, int32_t bits, const float* __restrict__ pts,
                                    const float* __restrict__ signs, float* __restrict__ y, int32_t acc) {
  extern __shared__ float buf[];
  const int32_t G = C / g;
  const float inv_g = __fdiv_rn(1.0f, static_cast<float>(g));
  for (int64_t it = blockIdx.x; it < n_jobs * n_tok * G; it += gridDim.x) {
    const int64_t jt = it / G;
    const int32_t j = static_cast<int32_t>(it % G);
    const DecJob jb = jobs[jt / n_tok];
    const int64_t t = jt % n_tok;
    float* yg = y + (jb.row + t) * C + static_cast<int64_t>(j) * g;
    const float S = __half2float(__ushort_as_half(jb.s[t * G + j]));
    if (S == 0.0f) {
      if (!acc)
        for (int32_t c = threadIdx.x; c < g; c += blockDim.x) yg[c] = 0.0f;
      continue;  // uniform across the CTA: no barrier skipped unevenly
    }
    const int64_t q0 = (t * C + static_cast<int64_t>(j) * g) / d;
    for (int32_t e = threadIdx.x; e < g; e += blockDim.x) {
      const uint32_t code = code_at(jb.w, q0 + e / d, bits);
      buf[e] = pts[static_cast<int64_t>(code) * d + (e % d)];
    }
    __syncthreads();
    const float sc = __fmul_rn(S, inv_g);
    cta_fwht(buf, g, sc, sc != 1.0f);
    for (int32_t c = threadIdx.x; c < g; c += blockDim.x) {
      float v = buf[c];
      if (signs) v = __fmul_rn(v, signs[static_cast<int64_t>(j) * g + c]);
      yg[c] = acc ? __fadd_rn(yg[c], v) : v;
    }
    __syncthreads();
  }
}

// Uniform: first non-finite element.
__global__ void finite_kernel(const float* __restrict__ x, int64_t n, unsigned long long* err) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (!isfinite(x[i])) atomicMin(err, static_cast<unsigned long long>(i));
}

// std::min / std::max as the CPU quantizer uses them (fminf / fmaxf may pick the other zero of +0 / -0,
// which would change the fp16 zero's sign bit against the CPU's codes).
__device__ __forceinline__ float min_cpu(float a, float x) { return x < a ? x : a; }
__device__ __forceinline__ float max_cpu(float a, float x) { return a < x ? x : a; }

// Uniform: per scale index s the group's min / max, then fp16 zero and scale (err: the first group out of the
// fp16 range; the host words the message, hwkv::quant::uniform_scales).
__global__ void uniform_stats_kernel(const float* __restrict__ x, int64_t n_tok, int32_t C, int32_t axis, int32_t grp,
                                     int32_t bits, int64_t ns, uint16_t* __restrict__ scales,
                                     uint16_t* __restrict__ zeros, unsigned long long* err) {
  for (int64_t s = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; s < ns; s += (int64_t)gridDim.x * blockDim.x) {
    float a, b;
    if (axis == HWKV_UNIFORM_PER_TOKEN) {
      const int32_t G = C / grp;
      const float* xg = x + (s / G) * C + (s % G) * grp;
      a = b = xg[0];
      for (int32_t c = 1; c < grp; ++c) {
        a = min_cpu(a, xg[c]);
        b = max_cpu(b, xg[c]);
      }
    } else {
      const int64_t tg = s / C;
      const int32_t c = static_cast<int32_t>(s % C);
      const int64_t t0 = tg * grp, t1 = min(n_tok, t0 + grp);
      a = b = x[t0 * C + c];
      for (int64_t t = t0 + 1; t < t1; ++t) {
        a = min_cpu(a, x[t * C + c]);
        b = max_cpu(b, x[t * C + c]);
      }
    }
    const float L = static_cast<float>((1 << bits) - 1);
    const uint16_t zh = __half_as_ushort(__float2half_rn(a));
    const uint16_t dh = __half_as_ushort(__float2half_rn(__fdiv_rn(__fsub_rn(b, a), L)));
    const uint16_t hh = __half_as_ushort(__float2half_rn(b));
    if ((zh & 0x7c00u) == 0x7c00u || (dh & 0x7c00u) == 0x7c00u || (hh & 0x7c00u) == 0x7c00u)
      atomicMin(err, static_cast<unsigned long long>(s));
    zeros[s] = zh;
    scales[s] = dh;
  }
}

__global__ void uniform_code_kernel(const float* __restrict__ x, int64_t n_tok, int32_t C, int32_t axis, int32_t grp,
                                    int32_t bits, const uint16_t* __restrict__ scales,
                                    const uint16_t* __restrict__ zeros, uint16_t* __restrict__ q) {
  const float L = static_cast<float>((1 << bits) - 1);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_tok * C; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / C;
    const int32_t c = static_cast<int32_t>(i % C);
    const int64_t s = axis == HWKV_UNIFORM_PER_TOKEN ? t * (C / grp) + c / grp : (t / grp) * C + c;
    const float D = __half2float(__ushort_as_half(scales[s]));
    const float Z = __half2float(__ushort_as_half(zeros[s]));
    uint16_t code = 0;
    if (D > 0.0f) {
      float r = rintf(__fdiv_rn(__fsub_rn(x[i], Z), D));
      r = fminf(fmaxf(r, 0.0f), L);
      code = static_cast<uint16_t>(r);
    }
    q[i] = code;
  }
}

__global__ void uniform_decode_kernel(const DecJob* __restrict__ jobs, int64_t n_jobs, int64_t n_tok, int32_t C,
                                      int32_t axis, int32_t grp, int32_t bits, float* __restrict__ y, int32_t acc) {
  const int64_t per = n_tok * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_jobs * per; i += (int64_t)gridDim.x * blockDim.x) {
    const DecJob jb = jobs[i / per];
    const int64_t e = i % per;
    const int64_t t = e / C;
    const int32_t c = static_cast<int32_t>(e % C);
    const int64_t s = axis == HWKV_UNIFORM_PER_TOKEN ? t * (C / grp) + c / grp : (t / grp) * C + c;
    const float D = __half2float(__ushort_as_half(jb.s[s]));
    const float Z = __half2float(__ushort_as_half(jb.z[s]));
    const float v = __fadd_rn(__fmul_rn(static_cast<float>(code_at(jb.w, e, bits)), D), Z);
    float* yr = y + (jb.row + t) * C + c;
    *yr = acc ? __fadd_rn(*yr, v) : v;
  }
}

// AQUA layer 0 stored exactly: fp16 copies (scales array) -> rows.
__global__ void exact_decode_kernel(const DecJob* __restrict__ jobs, int64_t n_jobs, int64_t n_tok, int32_t C,
                                    float* __restrict__ y) {
  const int64_t per = n_tok * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_jobs * per; i += (int64_t)gridDim.x * blockDim.x) {
    const DecJob jb = jobs[i / per];
    const int64_t e = i % per;
    y[jb.row * C + e] = __half2float(__ushort_as_half(jb.s[e]));
  }
}
__global__ void exact_encode_kernel(const float* __restrict__ x, int64_t n, uint16_t* __restrict__ h,
                                    unsigned long long* err) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = x[i];
    if (!(fabsf(v) <= 65504.0f)) atomicMin(err, static_cast<unsigned long long>(i));
    h[i] = __half_as_ushort(__float2half_rn(v));
  }
}

// y[r, c] = bias[c] for rows [0, rows) (row stride C).
__global__ void fill_rows_kernel(float* __restrict__ y, int64_t rows, int32_t C, const float* __restrict__ bias) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < rows * C; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = bias[i % C];
}
// r = x - y (y != NULL) or x - bias[c] (row stride C).
__global__ void sub_kernel(const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ bias,
                           int64_t n, int32_t C, float* __restrict__ r) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    r[i] = __fsub_rn(x[i], y ? y[i] : bias[i % C]);
}

// FP32 GEMM y[M, N] = (acc ? y : 0) + x[M, K] · W[N, K]ᵀ (+ bias): 64 x 64 tiles, 16-deep k steps, 4 x 4 per thread.
constexpr int kTm = 64, kTn = 64, kTk = 16;
__global__ void __launch_bounds__(256) gemm_nt_kernel(const float* __restrict__ A, int64_t lda,
                                                      const float* __restrict__ B, int64_t ldb, float* __restrict__ Cm,
                                                      int64_t ldc, int64_t M, int32_t N, int32_t K, int32_t acc,
                                                      const float* __restrict__ bias) {
  __shared__ __align__(16) float As[kTk][kTm + 4];
  __shared__ __align__(16) float Bs[kTk][kTn + 4];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTm;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTn;
  float c[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) c[i][j] = 0.0f;
  for (int32_t k0 = 0; k0 < K; k0 += kTk) {
    for (int i = threadIdx.x; i < kTm * kTk; i += 256) {
      const int r = i / kTk, kk = i % kTk;
      const int32_t gk = k0 + kk;
      const int64_t gm = m0 + r, gn = n0 + r;
      As[kk][r] = (gm < M && gk < K) ? A[gm * lda + gk] : 0.0f;
      Bs[kk][r] = (gn < N && gk < K) ? B[gn * ldb + gk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTk; ++kk) {
      const float4 a = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);  // rows m0 + ty*4 .. +3
      const float4 b = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);  // columns n0 + tx*4 .. +3
#define HWKV_ROW4(i, ai)                   \
  c[i][0] = fmaf(ai, b.x, c[i][0]);        \
  c[i][1] = fmaf(ai, b.y, c[i][1]);        \
  c[i][2] = fmaf(ai, b.z, c[i][2]);        \
  c[i][3] = fmaf(ai, b.w, c[i][3]);
      HWKV_ROW4(0, a.x)
      HWKV_ROW4(1, a.y)
      HWKV_ROW4(2, a.z)
      HWKV_ROW4(3, a.w)
#undef HWKV_ROW4
    }
    __syncthreads();
  }
  // every output sums its k in the same order whatever M, N and its tile are: a chunk decodes to the same
  // values whichever other chunks share the call
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n >= N) continue;
      float v = c[i][j];
      if (acc) v = Cm[m * ldc + n] + v;
      if (bias) v = v + bias[n];
      Cm[m * ldc + n] = v;
    }
  }
}

// Work item i of a chunk's rows: the first nk items are key units (token t, KV head h, rope unit e), the rest
// value elements (token t, KV head h, element e).
struct KvItem {
  bool is_k;
  int32_t e, h, t;
};
__device__ __forceinline__ KvItem kv_item(int64_t i, int64_t nk, int32_t units, const PageGeo& geo) {
  KvItem it;
  it.is_k = i < nk;
  int64_t r = it.is_k ? i : i - nk;
  const int32_t width = it.is_k ? units : geo.Dv;
  it.e = static_cast<int32_t>(r % width);
  r /= width;
  it.h = static_cast<int32_t>(r % geo.n_kv);
  it.t = static_cast<int32_t>(r / geo.n_kv);
  return it;
}

// Pages (ptrs[t / T]) of one layer -> rows xk[n, Ck], xv[n, Cv]; AQUA (rd.half > 0) un-rotates the keys from
// block-local positions pos0 + t (table rows by position).
__global__ void chunk_gather_kernel(PageGeo geo, RopeDev rd, int32_t layer, int32_t n, int32_t pos0,
                                    const float* const* __restrict__ ptrs, const float* __restrict__ tab,
                                    float* __restrict__ xk, float* __restrict__ xv) {
  const int32_t units = rope_units(rd);
  const int64_t nk = static_cast<int64_t>(n) * geo.n_kv * units, nv = static_cast<int64_t>(n) * geo.n_kv * geo.Dv;
  const int32_t Ck = geo.n_kv * geo.D, Cv = geo.n_kv * geo.Dv;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nk + nv; i += (int64_t)gridDim.x * blockDim.x) {
    const KvItem it = kv_item(i, nk, units, geo);
    const bool is_k = it.is_k;
    const int32_t e = it.e, h = it.h, t = it.t;
    const float* page = ptrs[t / geo.T];
    const int32_t f16 = geo.f16;
    if (is_k) {
      const int64_t so = geo.k_off(layer, h, t % geo.T);
      float* dst = xk + static_cast<int64_t>(t) * Ck + h * geo.D;
      auto ld = [page, so, f16](int32_t k) { return kv_get(page, so + k, f16); };
      auto st = [dst](int32_t k, float x) { dst[k] = x; };
      if (rd.half > 0)
        rope_unit_fn(rd, e, ld, st, tab + static_cast<int64_t>(pos0 + t) * 2 * rd.half, true);
      else
        st(e, ld(e));
    } else {
      xv[static_cast<int64_t>(t) * Cv + h * geo.Dv + e] = kv_get(page, geo.v_off(layer, h, t % geo.T) + e, f16);
    }
  }
}

struct StJob {
  int64_t row;
  int32_t pos0;
  int32_t ptr_off;
};
// Rows yk / yv of each job -> its pages (layer `layer`); AQUA rotates keys at pos0 + t.
__global__ void chunk_store_kernel(PageGeo geo, RopeDev rd, int32_t layer, int32_t n, const StJob* __restrict__ jobs,
                                   int64_t n_jobs, float* const* __restrict__ ptrs, const float* __restrict__ tab,
                                   const float* __restrict__ yk, const float* __restrict__ yv) {
  const int32_t units = rope_units(rd);
  const int64_t nk = static_cast<int64_t>(n) * geo.n_kv * units, nv = static_cast<int64_t>(n) * geo.n_kv * geo.Dv;
  const int32_t Ck = geo.n_kv * geo.D, Cv = geo.n_kv * geo.Dv;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_jobs * (nk + nv);
       i += (int64_t)gridDim.x * blockDim.x) {
    const StJob jb = jobs[i / (nk + nv)];
    const int64_t w = i % (nk + nv);
    const KvItem it = kv_item(w, nk, units, geo);
    const bool is_k = it.is_k;
    const int32_t e = it.e, h = it.h, t = it.t;
    float* page = ptrs[jb.ptr_off + t / geo.T];
    const int32_t f16 = geo.f16;
    if (is_k) {
      const float* src = yk + (jb.row + t) * Ck + h * geo.D;
      const int64_t dof = geo.k_off(layer, h, t % geo.T);
      auto ld = [src](int32_t k) { return src[k]; };
      auto st = [page, dof, f16](int32_t k, float x) { kv_set(page, dof + k, x, f16); };
      if (rd.half > 0)
        rope_unit_fn(rd, e, ld, st, tab + static_cast<int64_t>(jb.pos0 + t) * 2 * rd.half);
      else
        st(e, ld(e));
    } else {
      kv_set(page, geo.v_off(layer, h, t % geo.T) + e, yv[(jb.row + t) * Cv + h * geo.Dv + e], f16);
    }
  }
}

GridArgs grid_args(const DevGrid& g) {
  GridArgs a;
  a.pts = reinterpret_cast<const float*>(g.pts.p());
  a.hn = reinterpret_cast<const float*>(g.hn.p());
  a.thr = reinterpret_cast<const float*>(g.thr.p());
  a.order = reinterpret_cast<const uint16_t*>(g.order.p());
  a.n = g.n;
  a.d = g.d;
  return a;
}

int block_threads(int32_t g) { return g >= 256 ? 256 : (g >= 32 ? g : 32); }

// Dynamic shared memory of g floats per CTA (a HIGGS group): above the 48 KiB default the kernel is opted in
// (up to the device's per-block maximum); a group that does not fit is UNSUPPORTED on this backend.
template <class K>
hwkv_status group_smem(const char* fn, K kernel, int32_t g) {
  const size_t bytes = static_cast<size_t>(g) * sizeof(float);
  if (bytes <= 48 * 1024) return HWKV_OK;
  int dev = 0, max_optin = 0;
  HWKV_CU(cudaGetDevice(&dev));
  HWKV_CU(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if (bytes > static_cast<size_t>(max_optin))
    return fail(HWKV_ERR_UNSUPPORTED, "%s: HIGGS group %d needs %zu bytes of shared memory per CTA; this device allows %d "
                "(the CUDA backend supports groups up to %d)", fn, g, bytes, max_optin, max_optin / 4);
  HWKV_CU(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  return HWKV_OK;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// device quantizer building blocks
// ------------------------------------------------------------------------------------------------
hwkv_status DevGrid::upload(const char* fn, const float* grid, int32_t n_points, int32_t dim) {
  n = n_points;
  d = dim;
  HWKV_TRY(upload_vec(fn, pts, grid, static_cast<size_t>(n_points) * dim));
  if (dim == 1) {
    std::vector<uint16_t> ord(static_cast<size_t>(n_points));
    std::iota(ord.begin(), ord.end(), uint16_t{0});
    std::stable_sort(ord.begin(), ord.end(), [&](uint16_t a, uint16_t b) { return grid[a] < grid[b]; });
    std::vector<float> th(static_cast<size_t>(std::max(1, n_points - 1)), 0.0f);
    for (int32_t i = 0; i + 1 < n_points; ++i) th[i] = 0.5f * (grid[ord[i]] + grid[ord[i + 1]]);
    HWKV_TRY(upload_vec(fn, order, ord.data(), ord.size()));
    HWKV_TRY(upload_vec(fn, thr, th.data(), th.size()));
    return HWKV_OK;
  }
  HWKV_TRY(hn.alloc(fn, static_cast<size_t>(n_points) * sizeof(float)));
  hn_kernel<<<grid_for(n_points, 256), 256, 0, stream()>>>(reinterpret_cast<const float*>(pts.p()), n_points, dim,
                                                          reinterpret_cast<float*>(hn.p()));
  HWKV_CU_LAUNCH(hn_kernel);
  return HWKV_OK;
}

hwkv_status grid_nearest_dev(const char* fn, const DevGrid& g, const float* z, int64_t m, uint16_t* idx) {
  if (m == 0) return HWKV_OK;
  nearest_kernel<<<grid_for(m, 128), 128, 0, stream()>>>(grid_args(g), z, m, idx);
  HWKV_CU_LAUNCH(nearest_kernel);
  return HWKV_OK;
}

hwkv_status higgs_encode_dev(const char* fn, const hwkv_higgs_params& p, const DevGrid& g, const float* signs,
                             const float* x, int64_t n_tok, uint32_t* words, uint16_t* scales, uint16_t* idx,
                             unsigned long long* err) {
  if (n_tok == 0) return HWKV_OK;
  const int32_t G = p.channels / p.group;
  const int64_t ctas = std::min<int64_t>(n_tok * G, 65535LL * 32);
  const int threads = block_threads(p.group / 2);
  HWKV_TRY(group_smem(fn, higgs_encode_kernel, p.group));
  higgs_encode_kernel<<<static_cast<unsigned>(ctas), threads, p.group * sizeof(float), stream()>>>(
      x, n_tok, p.channels, p.group, p.use_signs ? signs : nullptr, grid_args(g), idx, scales, err);
  HWKV_CU_LAUNCH(higgs_encode_kernel);
  return pack_dev(fn, idx, n_tok * (p.channels / p.dim), hwkv::quant::code_bits(p.n_points), words);
}

hwkv_status higgs_decode_dev(const char* fn, const hwkv_higgs_params& p, const DevGrid& g, const float* signs,
                             const DecJob* jobs, int64_t n_jobs, int64_t n_tok, float* y, int32_t accumulate) {
  if (n_jobs == 0 || n_tok == 0) return HWKV_OK;
  const int32_t G = p.channels / p.group;
  const int64_t ctas = std::min<int64_t>(n_jobs * n_tok * G, 65535LL * 32);
  const int threads = block_threads(p.group / 2);
  HWKV_TRY(group_smem(fn, higgs_decode_kernel, p.group));
  higgs_decode_kernel<<<static_cast<unsigned>(ctas), threads, p.group * sizeof(float), stream()>>>(
      jobs, n_jobs, n_tok, p.channels, p.group, p.dim, hwkv::quant::code_bits(p.n_points),
      reinterpret_cast<const float*>(g.pts.p()), p.use_signs ? signs : nullptr, y, accumulate);
  HWKV_CU_LAUNCH(higgs_decode_kernel);
  return HWKV_OK;
}

hwkv_status uniform_encode_dev(const char* fn, const hwkv_uniform_params& p, const float* x, int64_t n_tok,
                               uint32_t* words, uint16_t* scales, uint16_t* zeros, uint16_t* idx,
                               unsigned long long* err_x, unsigned long long* err_g) {
  if (n_tok == 0) return HWKV_OK;
  const int64_t n = n_tok * p.channels;
  const int64_t ns = hwkv::quant::uniform_n_scales(&p, n_tok);
  finite_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(x, n, err_x);
  HWKV_CU_LAUNCH(finite_kernel);
  uniform_stats_kernel<<<grid_for(ns, 128), 128, 0, stream()>>>(x, n_tok, p.channels, p.axis, p.group, p.bits, ns,
                                                               scales, zeros, err_g);
  HWKV_CU_LAUNCH(uniform_stats_kernel);
  uniform_code_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(x, n_tok, p.channels, p.axis, p.group, p.bits, scales,
                                                             zeros, idx);
  HWKV_CU_LAUNCH(uniform_code_kernel);
  return pack_dev(fn, idx, n, p.bits, words);
}

hwkv_status uniform_decode_dev(const char* fn, const hwkv_uniform_params& p, const DecJob* jobs, int64_t n_jobs,
                               int64_t n_tok, float* y, int32_t accumulate) {
  const int64_t n = n_jobs * n_tok * p.channels;
  if (n == 0) return HWKV_OK;
  uniform_decode_kernel<<<grid_for(n, 256), 256, 0, stream()>>>(jobs, n_jobs, n_tok, p.channels, p.axis, p.group,
                                                               p.bits, y, accumulate);
  HWKV_CU_LAUNCH(uniform_decode_kernel);
  return HWKV_OK;
}

// The same product on tensor cores with 3xTF32 (HWKV_CUDA_GEMM=tf32x3, the default where the shapes allow it):
// each float splits into a TF32 "big" part and the TF32 rounding of the remainder, and a·b is taken as
// a_small·b_big + a_big·b_small + a_big·b_big (the small·small term, ~2^-22 relative, is dropped), FP32
// accumulation: about FP32 accuracy at tensor-core speed. 128 x 128 tiles, 8 warps of 64 x 32, k steps of 16
// double-buffered. Each output's k order is the same whatever M is, so a chunk decodes to the same values alone or
// with others — as long as every call of a shape takes this kernel: gemm_nt chooses it from K, the leading
// dimensions and the pointers' alignment only, never from M.
constexpr int kTcM = 128, kTcN = 128, kTcK = 16, kTcLd = kTcK + 4;
__device__ __forceinline__ uint32_t tf32_of(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__global__ void __launch_bounds__(256) gemm_nt_tc_kernel(const float* __restrict__ A, int64_t lda,
                                                         const float* __restrict__ B, int64_t ldb, float* __restrict__ Cm,
                                                         int64_t ldc, int64_t M, int32_t N, int32_t K, int32_t acc,
                                                         const float* __restrict__ bias) {
  __shared__ __align__(16) float As[2][kTcM][kTcLd];
  __shared__ __align__(16) float Bs[2][kTcN][kTcLd];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp >> 2, wn = warp & 3;  // warp tile: rows wm*64 .. +63, columns wn*32 .. +31
  const int g = lane >> 2, t = lane & 3;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTcM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTcN;
  float c[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) c[i][j][r] = 0.0f;
  float4 ra[2], rb[2];
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  auto gload = [&](int32_t k0) {  // K % 16 == 0: a row's 16 k values are in range together
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int i = tid + j * 256;
      const int r = i >> 2, kq = (i & 3) * 4;
      const int64_t gm = m0 + r, gn = n0 + r;
      ra[j] = gm < M ? *reinterpret_cast<const float4*>(A + gm * lda + k0 + kq) : zero;
      rb[j] = gn < N ? *reinterpret_cast<const float4*>(B + gn * ldb + k0 + kq) : zero;
    }
  };
  auto sstore = [&](int buf) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int i = tid + j * 256;
      const int r = i >> 2, kq = (i & 3) * 4;
      *reinterpret_cast<float4*>(&As[buf][r][kq]) = ra[j];
      *reinterpret_cast<float4*>(&Bs[buf][r][kq]) = rb[j];
    }
  };
  gload(0);
  sstore(0);
  __syncthreads();
  int buf = 0;
  for (int32_t k0 = 0; k0 < K; k0 += kTcK) {
    const bool more = k0 + kTcK < K;
    if (more) gload(k0 + kTcK);
#pragma unroll
    for (int ks = 0; ks < kTcK; ks += 8) {
      uint32_t ab[4][4], as[4][4], bb[4][2], bs[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int r = wm * 64 + mi * 16 + g;
        const float v[4] = {As[buf][r][ks + t], As[buf][r + 8][ks + t], As[buf][r][ks + t + 4], As[buf][r + 8][ks + t + 4]};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          ab[mi][e] = tf32_of(v[e]);
          as[mi][e] = tf32_of(v[e] - __uint_as_float(ab[mi][e]));
        }
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int n = wn * 32 + ni * 8 + g;
        const float v[2] = {Bs[buf][n][ks + t], Bs[buf][n][ks + t + 4]};
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          bb[ni][e] = tf32_of(v[e]);
          bs[ni][e] = tf32_of(v[e] - __uint_as_float(bb[ni][e]));
        }
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          mma_tf32(c[mi][ni], as[mi], bb[ni][0], bb[ni][1]);
          mma_tf32(c[mi][ni], ab[mi], bs[ni][0], bs[ni][1]);
          mma_tf32(c[mi][ni], ab[mi], bb[ni][0], bb[ni][1]);
        }
    }
    if (more) sstore(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t m = m0 + wm * 64 + mi * 16 + g + (e >= 2 ? 8 : 0);
        const int64_t n = n0 + wn * 32 + ni * 8 + 2 * t + (e & 1);
        if (m >= M || n >= N) continue;
        float v = c[mi][ni][e];
        if (acc) v = Cm[m * ldc + n] + v;
        if (bias) v = v + bias[n];
        Cm[m * ldc + n] = v;
      }
}

// HWKV_CUDA_GEMM=fma keeps the codec's products on the FP32 FMA kernels (read once per process)
bool gemm_tc_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("HWKV_CUDA_GEMM");
    return !(e && std::strcmp(e, "fma") == 0);
  }();
  return on;
}

// Launches a tile kernel over M in slices of at most 65535 row tiles (the grid's y limit).
template <class Kernel>
hwkv_status launch_tiles(const char* fn, Kernel kernel, int tile_m, int tile_n, const float* x, int64_t lda, const float* W,
                         int64_t ldb, float* y, int64_t ldc, int64_t M, int32_t N, int32_t K, int32_t acc,
                         const float* bias) {
  for (int64_t done = 0; done < M;) {
    const int64_t m = std::min<int64_t>(M - done, 65535LL * tile_m);
    dim3 grid(static_cast<unsigned>(ceil_div(N, tile_n)), static_cast<unsigned>(ceil_div(m, tile_m)));
    kernel<<<grid, 256, 0, stream()>>>(x + done * lda, lda, W, ldb, y + done * ldc, ldc, m, N, K, acc, bias);
    HWKV_CU_LAUNCH(kernel);
    done += m;
  }
  return HWKV_OK;
}

hwkv_status gemm_nt(const char* fn, const float* x, int64_t lda, const float* W, int64_t ldb, float* y, int64_t ldc,
                    int64_t M, int32_t N, int32_t K, int32_t acc, const float* bias) {
  if (M == 0 || N == 0) return HWKV_OK;
  // tensor cores for every M of a shape that allows float4 loads (chosen without looking at M, see above)
  const bool tc = gemm_tc_enabled() && K > 0 && K % 16 == 0 && lda % 4 == 0 && ldb % 4 == 0 &&
                  reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(W) % 16 == 0;
  return tc ? launch_tiles(fn, gemm_nt_tc_kernel, kTcM, kTcN, x, lda, W, ldb, y, ldc, M, N, K, acc, bias)
            : launch_tiles(fn, gemm_nt_kernel, kTm, kTn, x, lda, W, ldb, y, ldc, M, N, K, acc, bias);
}

// ------------------------------------------------------------------------------------------------
// the store's codec
// ------------------------------------------------------------------------------------------------
struct Codec {
  hwkv_store_params sp{};
  hwkv_store_codec c{};  // as kept (hwkv::codec::kept_codec)
  int32_t sink_tokens = 0;
  int32_t Ck = 0, Cv = 0, n = 0, cp = 0;
  DevGrid grid, grid0;
  bool has_grid0 = false;
  DevMem signs_k, signs_v;
  // AQUA
  bool aqua = false;
  RopeHost rope;
  DevMem pred;  // layer 0: bk0 [Ck], bv0 [Cv]; l >= 1: wk, bk, wvk, wvv, bv
  std::vector<int64_t> pred_off;  // per layer: offset (floats) of its first array
  DevMem tab;                      // cos/sin rows by position
  int64_t tab_rows = 0;
  // decode
  int64_t slot_elems = 0;  // S
  DevMem scratch;
  uint64_t dec_epoch = 0;
  DevMem sk, sv, yk, yv;  // AQUA chain state and work rows
  int64_t st_cap = 0, st_rows = 0;
  uint64_t st_epoch = 0;

  const float* P(int64_t off) const { return reinterpret_cast<const float*>(pred.p()) + off; }
  const float* bk0() const { return P(0); }
  const float* bv0() const { return P(Ck); }
  const float* wk(int32_t l) const { return P(pred_off[l]); }
  const float* bk(int32_t l) const { return wk(l) + int64_t(Ck) * Ck; }
  const float* wvk(int32_t l) const { return bk(l) + Ck; }
  const float* wvv(int32_t l) const { return wvk(l) + int64_t(Cv) * Ck; }
  const float* bv(int32_t l) const { return wvv(l) + int64_t(Cv) * Cv; }
  const float* sgn(bool v) const { return reinterpret_cast<const float*>((v ? signs_v : signs_k).p()); }
  const float* rtab() const { return reinterpret_cast<const float*>(tab.p()); }
};

void CodecDeleter::operator()(Codec* c) const { delete c; }

bool codec_on(const hwkv_store* s) { return s->codec != nullptr; }

const float* block_page_ptr(const hwkv_store* s, const StoreBlock& b, size_t i) {
  const int32_t idx = b.pages[i];
  if (idx >= 0) return s->page_ptr[idx];
  const CompRef& r = b.comp[i];
  const int64_t es = s->geo.f16 ? 2 : 4;
  return reinterpret_cast<const float*>(r.c->page_ptr(r.page, s->page_bytes, s->codec->slot_elems * es));
}

namespace {

hwkv_status higgs_params_for(const Codec& cd, int32_t L, bool value, hwkv_higgs_params* hp, const DevGrid** grid) {
  bool g0;
  hwkv::codec::higgs_params(cd.sp, cd.c, L, value, hp, &g0);
  *grid = g0 ? &cd.grid0 : &cd.grid;
  return HWKV_OK;
}
void uniform_params(const Codec& cd, hwkv_uniform_params* kp, hwkv_uniform_params* vp) {
  hwkv::codec::uniform_params(cd.sp, cd.c, kp, vp);
}

// The cos/sin table covers positions [0, rows).
hwkv_status ensure_tab(const char* fn, Codec& cd, int64_t rows) {
  if (!cd.aqua || rows <= cd.tab_rows) return HWKV_OK;
  int64_t want = std::max<int64_t>(1024, cd.tab_rows);
  while (want < rows) want *= 2;
  std::vector<float> t;
  t.reserve(static_cast<size_t>(want) * 2 * cd.rope.half);
  for (int64_t p = 0; p < want; ++p) rope_table_row(cd.rope, static_cast<double>(p), t);
  HWKV_TRY(sync(fn));  // the old table may be in use by queued kernels
  HWKV_TRY(upload_vec(fn, cd.tab, t.data(), t.size()));
  cd.tab_rows = want;
  return HWKV_OK;
}

// Grow-only device rows [cap, C] (keep = copy the old rows).
hwkv_status ensure_rows(const char* fn, DevMem& m, int64_t rows, int32_t C, bool keep) {
  const size_t need = static_cast<size_t>(rows) * C * sizeof(float);
  if (m.size() >= need) return HWKV_OK;
  const size_t want = std::max(need, m.size() + m.size() / 2);
  if (!keep || m.size() == 0) {
    HWKV_TRY(sync(fn));
    return m.alloc(fn, want);
  }
  DevMem n2;
  HWKV_TRY(n2.alloc(fn, want));
  HWKV_CU(cudaMemcpyAsync(n2.p(), m.p(), m.size(), cudaMemcpyDeviceToDevice, stream()));
  HWKV_TRY(sync(fn));
  m.swap(n2);
  return HWKV_OK;
}

struct ChunkRow {
  const CodecChunk* c;
  int64_t row;
};

hwkv_status upload_jobs(const char* fn, CodecTemp& tmp, const std::vector<DecJob>& h, const DecJob** out) {
  hwkv_status st;
  unsigned char* p = tmp.get(fn, h.size() * sizeof(DecJob), &st);
  HWKV_TRY(st);
  HWKV_TRY(h2d(fn, p, h.data(), h.size() * sizeof(DecJob)));
  *out = reinterpret_cast<const DecJob*>(p);
  return HWKV_OK;
}

std::vector<DecJob> jobs_for(const std::vector<ChunkRow>& list, int32_t L, bool value) {
  std::vector<DecJob> j;
  j.reserve(list.size());
  for (const ChunkRow& cr : list) {
    const CodecChunk::Layer& Ly = cr.c->layers[L];
    const unsigned char* m = cr.c->mem->p();
    DecJob d;
    d.w = reinterpret_cast<const uint32_t*>(m + (value ? Ly.vw : Ly.kw));
    d.s = reinterpret_cast<const uint16_t*>(m + (value ? Ly.vs : Ly.ks));
    d.z = reinterpret_cast<const uint16_t*>(m + (value ? Ly.vz : Ly.kz));
    d.row = cr.row;
    j.push_back(d);
  }
  return j;
}

// Runs of consecutive rows of a list (sorted by row; each chunk holds n rows).
std::vector<std::pair<int64_t, int64_t>> runs_of(const std::vector<ChunkRow>& list, int64_t n) {
  std::vector<int64_t> rows;
  for (const ChunkRow& cr : list) rows.push_back(cr.row);
  std::sort(rows.begin(), rows.end());
  std::vector<std::pair<int64_t, int64_t>> r;
  for (int64_t a : rows) {
    if (!r.empty() && r.back().second == a)
      r.back().second = a + n;
    else
      r.push_back({a, a + n});
  }
  return r;
}

// Non-AQUA: decoded layer L of each chunk into rows yk / yv.
hwkv_status plain_decode(const char* fn, const Codec& cd, const std::vector<ChunkRow>& list, int32_t L, float* yk,
                         float* yv, CodecTemp& tmp) {
  const DecJob *jk, *jv;
  HWKV_TRY(upload_jobs(fn, tmp, jobs_for(list, L, false), &jk));
  HWKV_TRY(upload_jobs(fn, tmp, jobs_for(list, L, true), &jv));
  const int64_t nj = static_cast<int64_t>(list.size());
  if (cd.c.type == HWKV_KV_UNIFORM) {
    hwkv_uniform_params kp, vp;
    uniform_params(cd, &kp, &vp);
    HWKV_TRY(uniform_decode_dev(fn, kp, jk, nj, cd.n, yk, 0));
    return uniform_decode_dev(fn, vp, jv, nj, cd.n, yv, 0);
  }
  hwkv_higgs_params kp, vp;
  const DevGrid *gk, *gv;
  higgs_params_for(cd, L, false, &kp, &gk);
  higgs_params_for(cd, L, true, &vp, &gv);
  HWKV_TRY(higgs_decode_dev(fn, kp, *gk, cd.sgn(false), jk, nj, cd.n, yk, 0));
  return higgs_decode_dev(fn, vp, *gv, cd.sgn(true), jv, nj, cd.n, yv, 0);
}

// AQUA: reconstructions of layer L (pre-RoPE) of each chunk into rows YK / YV from layer L-1's rows SK / SV
// (unused for L = 0); the predictor products run as GEMMs over runs of consecutive rows (all chunks of a
// forward at once).
hwkv_status aqua_step(const char* fn, const Codec& cd, const std::vector<ChunkRow>& list, int32_t L, const float* SK,
                      const float* SV, float* YK, float* YV, CodecTemp& tmp) {
  const int64_t nj = static_cast<int64_t>(list.size());
  if (nj == 0) return HWKV_OK;
  const int32_t Ck = cd.Ck, Cv = cd.Cv;
  const DecJob *jk, *jv;
  HWKV_TRY(upload_jobs(fn, tmp, jobs_for(list, L, false), &jk));
  HWKV_TRY(upload_jobs(fn, tmp, jobs_for(list, L, true), &jv));
  const auto runs = runs_of(list, cd.n);
  hwkv_higgs_params kp, vp;
  const DevGrid *gk, *gv;
  higgs_params_for(cd, L, false, &kp, &gk);
  higgs_params_for(cd, L, true, &vp, &gv);
  if (L == 0) {
    if (cd.c.layer0_exact) {
      exact_decode_kernel<<<grid_for(nj * cd.n * Ck, 256), 256, 0, stream()>>>(jk, nj, cd.n, Ck, YK);
      HWKV_CU_LAUNCH(exact_decode_kernel);
      exact_decode_kernel<<<grid_for(nj * cd.n * Cv, 256), 256, 0, stream()>>>(jv, nj, cd.n, Cv, YV);
      HWKV_CU_LAUNCH(exact_decode_kernel);
      return HWKV_OK;
    }
    for (const auto& r : runs) {
      fill_rows_kernel<<<grid_for((r.second - r.first) * Ck, 256), 256, 0, stream()>>>(YK + r.first * Ck,
                                                                                      r.second - r.first, Ck, cd.bk0());
      HWKV_CU_LAUNCH(fill_rows_kernel);
      fill_rows_kernel<<<grid_for((r.second - r.first) * Cv, 256), 256, 0, stream()>>>(YV + r.first * Cv,
                                                                                      r.second - r.first, Cv, cd.bv0());
      HWKV_CU_LAUNCH(fill_rows_kernel);
    }
    HWKV_TRY(higgs_decode_dev(fn, kp, *gk, cd.sgn(false), jk, nj, cd.n, YK, 1));
    return higgs_decode_dev(fn, vp, *gv, cd.sgn(true), jv, nj, cd.n, YV, 1);
  }
  for (const auto& r : runs)
    HWKV_TRY(gemm_nt(fn, SK + r.first * Ck, Ck, cd.wk(L), Ck, YK + r.first * Ck, Ck, r.second - r.first, Ck, Ck, 0,
                     cd.bk(L)));
  HWKV_TRY(higgs_decode_dev(fn, kp, *gk, cd.sgn(false), jk, nj, cd.n, YK, 1));
  for (const auto& r : runs) {
    HWKV_TRY(gemm_nt(fn, YK + r.first * Ck, Ck, cd.wvk(L), Ck, YV + r.first * Cv, Cv, r.second - r.first, Cv, Ck, 0,
                     nullptr));
    HWKV_TRY(gemm_nt(fn, SV + r.first * Cv, Cv, cd.wvv(L), Cv, YV + r.first * Cv, Cv, r.second - r.first, Cv, Cv, 1,
                     cd.bv(L)));
  }
  return higgs_decode_dev(fn, vp, *gv, cd.sgn(true), jv, nj, cd.n, YV, 1);
}

// Rows -> pages (layer L) of each chunk; ptrs[k] for the pages of list[k] (cp each, in order).
hwkv_status store_rows(const char* fn, const hwkv_store* s, const std::vector<ChunkRow>& list, int32_t L,
                       const float* yk, const float* yv, const std::vector<float*>& ptrs, CodecTemp& tmp) {
  const Codec& cd = *s->codec;
  if (list.empty()) return HWKV_OK;
  std::vector<StJob> jobs;
  for (size_t i = 0; i < list.size(); ++i) jobs.push_back(StJob{list[i].row, list[i].c->pos0, static_cast<int32_t>(i * cd.cp)});
  hwkv_status st;
  unsigned char* dj = tmp.get(fn, jobs.size() * sizeof(StJob), &st);
  HWKV_TRY(st);
  unsigned char* dp = tmp.get(fn, ptrs.size() * sizeof(float*), &st);
  HWKV_TRY(st);
  HWKV_TRY(h2d(fn, dj, jobs.data(), jobs.size() * sizeof(StJob)));
  HWKV_TRY(h2d(fn, dp, ptrs.data(), ptrs.size() * sizeof(float*)));
  const RopeDev rd = rope_dev(cd.aqua ? &cd.rope : nullptr, s->geo.D);
  const int64_t per = static_cast<int64_t>(cd.n) * s->geo.n_kv * (rope_units(rd) + s->geo.Dv);
  const int64_t items = per * static_cast<int64_t>(jobs.size());
  chunk_store_kernel<<<grid_for(items, 256), 256, 0, stream()>>>(s->geo, rd, L, cd.n, reinterpret_cast<const StJob*>(dj),
                                                                 static_cast<int64_t>(jobs.size()),
                                                                 reinterpret_cast<float* const*>(dp), cd.rtab(), yk, yv);
  HWKV_CU_LAUNCH(chunk_store_kernel);
  return HWKV_OK;
}

// Decodes layers [L0, L1] of one chunk into full pages dst[0..cp) (private chain state).
hwkv_status decode_chunk_layers(const char* fn, const hwkv_store* s, const CodecChunk& c, int32_t L0, int32_t L1,
                                const std::vector<float*>& dst, CodecTemp& tmp) {
  const Codec& cd = *s->codec;
  hwkv_status st;
  const size_t kb = static_cast<size_t>(cd.n) * cd.Ck * 4, vb = static_cast<size_t>(cd.n) * cd.Cv * 4;
  float* yk = reinterpret_cast<float*>(tmp.get(fn, kb, &st));
  HWKV_TRY(st);
  float* yv = reinterpret_cast<float*>(tmp.get(fn, vb, &st));
  HWKV_TRY(st);
  std::vector<ChunkRow> one{{&c, 0}};
  if (!cd.aqua) {
    for (int32_t l = L0; l <= L1; ++l) {
      HWKV_TRY(plain_decode(fn, cd, one, l, yk, yv, tmp));
      HWKV_TRY(store_rows(fn, s, one, l, yk, yv, dst, tmp));
    }
    return HWKV_OK;
  }
  float* pk = reinterpret_cast<float*>(tmp.get(fn, kb, &st));
  HWKV_TRY(st);
  float* pv = reinterpret_cast<float*>(tmp.get(fn, vb, &st));
  HWKV_TRY(st);
  for (int32_t l = 0; l <= L1; ++l) {
    HWKV_TRY(aqua_step(fn, cd, one, l, pk, pv, yk, yv, tmp));
    if (l >= L0) HWKV_TRY(store_rows(fn, s, one, l, yk, yv, dst, tmp));
    std::swap(pk, yk);
    std::swap(pv, yv);
  }
  return HWKV_OK;
}

struct ChunkLayout {
  std::vector<CodecChunk::Layer> layers;
  int64_t bytes_dev = 0, bytes = 0;
};

hwkv_status chunk_layout(const Codec& cd, int32_t n_layer, ChunkLayout* out) {
  int64_t off = 0;
  auto take = [&off](int64_t bytes) {
    const int64_t o = off;
    off += (bytes + 15) & ~int64_t(15);
    return o;
  };
  out->layers.assign(static_cast<size_t>(n_layer), CodecChunk::Layer{});
  out->bytes = 0;
  for (int32_t L = 0; L < n_layer; ++L) {
    CodecChunk::Layer& Ly = out->layers[L];
    int64_t nw, ns;
    if (cd.c.type == HWKV_KV_UNIFORM) {
      hwkv_uniform_params kp, vp;
      uniform_params(cd, &kp, &vp);
      HWKV_TRY(hwkv::quant::uniform_size(&kp, cd.n, &nw, &ns));
      Ly.nkw = nw, Ly.nks = ns, Ly.nkz = ns;
      HWKV_TRY(hwkv::quant::uniform_size(&vp, cd.n, &nw, &ns));
      Ly.nvw = nw, Ly.nvs = ns, Ly.nvz = ns;
    } else if (cd.aqua && L == 0 && cd.c.layer0_exact) {
      Ly.nks = int64_t(cd.n) * cd.Ck;
      Ly.nvs = int64_t(cd.n) * cd.Cv;
    } else {
      hwkv_higgs_params kp, vp;
      const DevGrid *gk, *gv;
      higgs_params_for(cd, L, false, &kp, &gk);
      higgs_params_for(cd, L, true, &vp, &gv);
      HWKV_TRY(hwkv::quant::higgs_size(&kp, cd.n, &nw, &ns));
      Ly.nkw = nw, Ly.nks = ns;
      HWKV_TRY(hwkv::quant::higgs_size(&vp, cd.n, &nw, &ns));
      Ly.nvw = nw, Ly.nvs = ns;
    }
    Ly.kw = take(Ly.nkw * 4);
    Ly.vw = take(Ly.nvw * 4);
    Ly.ks = take(Ly.nks * 2);
    Ly.kz = take(Ly.nkz * 2);
    Ly.vs = take(Ly.nvs * 2);
    Ly.vz = take(Ly.nvz * 2);
    out->bytes += 4 * (Ly.nkw + Ly.nvw) + 2 * (Ly.nks + Ly.nkz + Ly.nvs + Ly.nvz);
  }
  out->bytes_dev = off;
  return HWKV_OK;
}

// Encodes the chunk of block blk starting at page p0 (all layers); see store.cpp encode_chunk.
hwkv_status encode_chunk(const char* fn, hwkv_store* s, const StoreBlock& blk, int32_t p0,
                         std::shared_ptr<CodecChunk>* out) {
  Codec& cd = *s->codec;
  const PageGeo& geo = s->geo;
  const int32_t n = cd.n, Ck = cd.Ck, Cv = cd.Cv, nL = geo.n_layer;
  auto c = std::make_shared<CodecChunk>();
  c->n_pages = cd.cp;
  c->n_tok = n;
  c->pos0 = p0 * geo.T;
  ChunkLayout lay;
  HWKV_TRY(chunk_layout(cd, nL, &lay));
  c->layers = lay.layers;
  c->bytes = lay.bytes;
  c->mem = std::make_shared<DevMem>();
  HWKV_TRY(c->mem->alloc(fn, static_cast<size_t>(lay.bytes_dev)));
  HWKV_TRY(ensure_tab(fn, cd, c->pos0 + n));
  unsigned char* base = c->mem->p();

  CodecTemp tmp;
  hwkv_status st;
  const size_t kb = static_cast<size_t>(n) * Ck * 4, vb = static_cast<size_t>(n) * Cv * 4;
  auto fbuf = [&](size_t bytes) { return reinterpret_cast<float*>(tmp.get(fn, bytes, &st)); };
  float* xk = fbuf(kb);
  HWKV_TRY(st);
  float* xv = fbuf(vb);
  HWKV_TRY(st);
  float *pk = nullptr, *pv = nullptr, *yk = nullptr, *yv = nullptr, *rk = nullptr, *rv = nullptr;
  if (cd.aqua) {
    pk = fbuf(kb); HWKV_TRY(st);
    pv = fbuf(vb); HWKV_TRY(st);
    yk = fbuf(kb); HWKV_TRY(st);
    yv = fbuf(vb); HWKV_TRY(st);
    rk = fbuf(kb); HWKV_TRY(st);
    rv = fbuf(vb); HWKV_TRY(st);
  }
  uint16_t* idx = reinterpret_cast<uint16_t*>(tmp.get(fn, static_cast<size_t>(n) * std::max(Ck, Cv) * 2, &st));
  HWKV_TRY(st);
  unsigned long long* err = reinterpret_cast<unsigned long long*>(tmp.get(fn, 2 * sizeof(unsigned long long), &st));
  HWKV_TRY(st);
  HWKV_CU(cudaMemsetAsync(err, 0xff, 2 * sizeof(unsigned long long), stream()));
  std::vector<float*> src;
  for (int32_t i = 0; i < cd.cp; ++i) src.push_back(s->page_ptr[blk.pages[p0 + i]]);
  float** dsrc = reinterpret_cast<float**>(tmp.get(fn, src.size() * sizeof(float*), &st));
  HWKV_TRY(st);
  HWKV_TRY(h2d(fn, dsrc, src.data(), src.size() * sizeof(float*)));
  const RopeDev rd = rope_dev(cd.aqua ? &cd.rope : nullptr, geo.D);
  const int64_t gitems = static_cast<int64_t>(n) * geo.n_kv * (rope_units(rd) + geo.Dv);
  std::vector<ChunkRow> one{{c.get(), 0}};
  auto W = [&](int64_t off) { return reinterpret_cast<uint32_t*>(base + off); };
  auto H = [&](int64_t off) { return reinterpret_cast<uint16_t*>(base + off); };
  for (int32_t L = 0; L < nL; ++L) {
    const CodecChunk::Layer& Ly = c->layers[L];
    chunk_gather_kernel<<<grid_for(gitems, 256), 256, 0, stream()>>>(geo, rd, L, n, c->pos0, dsrc, cd.rtab(), xk, xv);
    HWKV_CU_LAUNCH(chunk_gather_kernel);
    if (cd.c.type == HWKV_KV_UNIFORM) {
      hwkv_uniform_params kp, vp;
      uniform_params(cd, &kp, &vp);
      HWKV_TRY(uniform_encode_dev(fn, kp, xk, n, W(Ly.kw), H(Ly.ks), H(Ly.kz), idx, err, err + 1));
      HWKV_TRY(uniform_encode_dev(fn, vp, xv, n, W(Ly.vw), H(Ly.vs), H(Ly.vz), idx, err, err + 1));
      continue;
    }
    hwkv_higgs_params kp, vp;
    const DevGrid *gk, *gv;
    higgs_params_for(cd, L, false, &kp, &gk);
    higgs_params_for(cd, L, true, &vp, &gv);
    const float* ek = xk;
    const float* ev = xv;
    if (cd.aqua) {
      if (L == 0 && cd.c.layer0_exact) {
        exact_encode_kernel<<<grid_for(int64_t(n) * Ck, 256), 256, 0, stream()>>>(xk, int64_t(n) * Ck, H(Ly.ks), err);
        HWKV_CU_LAUNCH(exact_encode_kernel);
        exact_encode_kernel<<<grid_for(int64_t(n) * Cv, 256), 256, 0, stream()>>>(xv, int64_t(n) * Cv, H(Ly.vs), err);
        HWKV_CU_LAUNCH(exact_encode_kernel);
        HWKV_TRY(aqua_step(fn, cd, one, 0, nullptr, nullptr, pk, pv, tmp));
        continue;
      }
      if (L > 0) {
        HWKV_TRY(gemm_nt(fn, pk, Ck, cd.wk(L), Ck, yk, Ck, n, Ck, Ck, 0, cd.bk(L)));
        sub_kernel<<<grid_for(int64_t(n) * Ck, 256), 256, 0, stream()>>>(xk, yk, nullptr, int64_t(n) * Ck, Ck, rk);
        HWKV_CU_LAUNCH(sub_kernel);
        ek = rk;
      } else {
        sub_kernel<<<grid_for(int64_t(n) * Ck, 256), 256, 0, stream()>>>(xk, nullptr, cd.bk0(), int64_t(n) * Ck, Ck, rk);
        HWKV_CU_LAUNCH(sub_kernel);
        sub_kernel<<<grid_for(int64_t(n) * Cv, 256), 256, 0, stream()>>>(xv, nullptr, cd.bv0(), int64_t(n) * Cv, Cv, rv);
        HWKV_CU_LAUNCH(sub_kernel);
        ek = rk;
        ev = rv;
      }
    }
    HWKV_TRY(higgs_encode_dev(fn, kp, *gk, cd.sgn(false), ek, n, W(Ly.kw), H(Ly.ks), idx, err));
    if (cd.aqua && L > 0) {
      const DecJob* jk;
      HWKV_TRY(upload_jobs(fn, tmp, jobs_for(one, L, false), &jk));
      HWKV_TRY(higgs_decode_dev(fn, kp, *gk, cd.sgn(false), jk, 1, n, yk, 1));
      HWKV_TRY(gemm_nt(fn, yk, Ck, cd.wvk(L), Ck, yv, Cv, n, Cv, Ck, 0, nullptr));
      HWKV_TRY(gemm_nt(fn, pv, Cv, cd.wvv(L), Cv, yv, Cv, n, Cv, Cv, 1, cd.bv(L)));
      sub_kernel<<<grid_for(int64_t(n) * Cv, 256), 256, 0, stream()>>>(xv, yv, nullptr, int64_t(n) * Cv, Cv, rv);
      HWKV_CU_LAUNCH(sub_kernel);
      ev = rv;
    }
    HWKV_TRY(higgs_encode_dev(fn, vp, *gv, cd.sgn(true), ev, n, W(Ly.vw), H(Ly.vs), idx, err));
    if (cd.aqua) {
      if (L == 0) {
        HWKV_TRY(aqua_step(fn, cd, one, 0, nullptr, nullptr, pk, pv, tmp));
      } else {
        const DecJob* jv;
        HWKV_TRY(upload_jobs(fn, tmp, jobs_for(one, L, true), &jv));
        HWKV_TRY(higgs_decode_dev(fn, vp, *gv, cd.sgn(true), jv, 1, n, yv, 1));
        std::swap(pk, yk);
        std::swap(pv, yv);
      }
    }
  }
  unsigned long long herr[2];
  HWKV_TRY(d2h(fn, herr, err, sizeof herr));
  HWKV_TRY(sync(fn));
  if (herr[0] != kNoErr || herr[1] != kNoErr)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: the quantizer rejected a chunk (values beyond the fp16 range)", fn);
  *out = std::move(c);
  return HWKV_OK;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// creation
// ------------------------------------------------------------------------------------------------
hwkv_status codec_create(const char* fn, hwkv_store* s, const hwkv_store_codec& c) {
  const hwkv_store_params& p = s->p;
  HWKV_TRY(hwkv::codec::check_codec(fn, p, c));
  std::unique_ptr<Codec> cd(new Codec());
  cd->sp = p;
  cd->Ck = p.n_kv_head * p.head_dim;
  cd->Cv = p.n_kv_head * p.head_dim_v;
  cd->n = c.chunk_tokens;
  cd->cp = c.chunk_tokens / p.page_tokens;
  const int32_t Ck = cd->Ck, Cv = cd->Cv, nL = p.n_layer;
  if (c.type != HWKV_KV_UNIFORM) {
    HWKV_TRY(use_device(fn));
    HWKV_TRY(cd->grid.upload(fn, c.grid, c.grid_n, c.grid_dim));
    if (hwkv::codec::uses_grid0(c)) {
      HWKV_TRY(cd->grid0.upload(fn, c.grid0, c.grid0_n, c.grid0_dim));
      cd->has_grid0 = true;
    }
    std::vector<float> sg(static_cast<size_t>(std::max(Ck, Cv)));
    hwkv::quant::make_signs(c.seed, Ck, sg.data());
    HWKV_TRY(upload_vec(fn, cd->signs_k, sg.data(), static_cast<size_t>(Ck)));
    hwkv::quant::make_signs(c.seed + 1u, Cv, sg.data());
    HWKV_TRY(upload_vec(fn, cd->signs_v, sg.data(), static_cast<size_t>(Cv)));
    if (c.type == HWKV_KV_AQUA) {
      // aqua_init (store.cpp)
      if (!c.rope) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: the aqua codec needs the model's rope (keys are compressed before RoPE)", fn);
      HWKV_TRY(store_rope(fn, s, c.rope, &cd->rope));
      HWKV_TRY(hwkv::codec::check_aqua_predictors(fn, p, c));
      // device layout: bk0, bv0, then per layer wk, bk, wvk [Cv, Ck], wvv [Cv, Cv], bv (Wv split as on the CPU)
      std::vector<float> h(static_cast<size_t>(c.n_predictors));
      const hwkv::codec::AquaView v0 = hwkv::codec::aqua_layer(p, c.predictors, 0);
      std::memcpy(h.data(), v0.bk, size_t(Ck) * 4);
      std::memcpy(h.data() + Ck, v0.bv, size_t(Cv) * 4);
      cd->pred_off.assign(static_cast<size_t>(nL), 0);
      int64_t o = Ck + Cv;
      for (int32_t l = 1; l < nL; ++l) {
        const hwkv::codec::AquaView v = hwkv::codec::aqua_layer(p, c.predictors, l);
        cd->pred_off[l] = o;
        std::memcpy(h.data() + o, v.wk, size_t(int64_t(Ck) * Ck) * 4);
        o += int64_t(Ck) * Ck;
        std::memcpy(h.data() + o, v.bk, size_t(Ck) * 4);
        o += Ck;
        hwkv::codec::split_wv(v.wv, Ck, Cv, h.data() + o, h.data() + o + int64_t(Cv) * Ck);
        o += int64_t(Cv) * (Ck + Cv);
        std::memcpy(h.data() + o, v.bv, size_t(Cv) * 4);
        o += Cv;
      }
      HWKV_TRY(upload_vec(fn, cd->pred, h.data(), h.size()));
      cd->aqua = true;
    }
  }
  cd->c = hwkv::codec::kept_codec(c);
  cd->sink_tokens = hwkv::codec::sink_tokens(p, c);
  // Virtual page stride S (codec.cuh): every layer's K and V ranges of all slots disjoint.
  {
    const int64_t KL = int64_t(p.n_kv_head) * p.page_tokens * p.head_dim;
    const int64_t VL = int64_t(p.n_kv_head) * p.page_tokens * p.head_dim_v;
    const int64_t page_elems = (KL + VL) * nL;
    int64_t S = page_elems;
    for (int64_t cand = (KL + VL + 7) / 8 * 8; cand < page_elems; cand += 8) {
      bool ok = true;
      for (int32_t L = 0; L < nL && ok; ++L) {
        const int64_t delta = KL * nL + int64_t(L) * (VL - KL);
        const int64_t r = ((delta % cand) + cand) % cand;
        ok = r >= KL && r <= cand - VL;
      }
      if (ok) {
        S = cand;
        break;
      }
    }
    cd->slot_elems = S;
  }
  HWKV_TRY(sync(fn));
  s->codec.reset(cd.release());
  return HWKV_OK;
}

// ------------------------------------------------------------------------------------------------
// compaction
// ------------------------------------------------------------------------------------------------
void codec_compact(hwkv_store* s, int32_t b) {
  if (!s->codec || !is_live(s, b)) return;
  Codec& cd = *s->codec;
  StoreBlock& blk = s->blocks[b];
  if (blk.no_compress) return;
  const char* fn = "store codec";
  const int64_t cp = cd.cp;
  try {
    std::vector<int32_t> p0s;
    hwkv::codec::compact_candidates(s->p, cd.c, cd.sink_tokens, blk.pages, blk.len, &p0s);
    for (const int32_t p0 : p0s) {
      std::shared_ptr<CodecChunk> c;
      if (encode_chunk(fn, s, blk, p0, &c) != HWKV_OK) {
        blk.no_compress = true;
        return;
      }
      if (blk.comp.size() < blk.pages.size()) blk.comp.resize(blk.pages.size());
      for (int64_t i = 0; i < cp; ++i) {
        s->free_pages.push_back(blk.pages[p0 + i]);
        --s->pages_in_use;
        blk.pages[p0 + i] = -1;
        blk.comp[p0 + i] = CompRef{c, static_cast<int32_t>(i)};
      }
    }
  } catch (...) {
    blk.no_compress = true;
  }
}

void codec_compact_all(hwkv_store* s) {
  if (!s->codec) return;
  for (int32_t b = 0; b < static_cast<int32_t>(s->blocks.size()); ++b)
    if (s->blocks[b].live) codec_compact(s, b);
}

// ------------------------------------------------------------------------------------------------
// prepare_layer (attention's per-forward decode)
// ------------------------------------------------------------------------------------------------
hwkv_status codec_prepare_layer(const char* fn, hwkv_store* s, int32_t layer, const int32_t* only, int64_t n_only) {
  if (!s->codec) return HWKV_OK;
  Codec& cd = *s->codec;
  ++cd.dec_epoch;
  std::vector<CodecChunk*> every, list;
  int64_t kept_bytes = 0;
  for (const StoreBlock& blk : s->blocks)
    for (const CompRef& r : blk.comp)
      if (blk.live && r.c && r.page == 0) kept_bytes += static_cast<int64_t>(r.c->kept.size());
  auto collect = [&](const StoreBlock& blk) {
    if (!blk.live || blk.comp.empty()) return;
    for (size_t p = 0; p < blk.pages.size(); ++p) {
      if (blk.pages[p] >= 0) continue;
      CodecChunk& c = *blk.comp[p].c;
      if (c.dec_epoch == cd.dec_epoch) continue;
      c.dec_epoch = cd.dec_epoch;
      every.push_back(&c);
    }
  };
  if (only) {
    for (int64_t i = 0; i < n_only; ++i)
      if (is_live(s, only[i])) collect(s->blocks[only[i]]);
  } else {
    for (const StoreBlock& blk : s->blocks) collect(blk);
  }
  const int64_t es = s->geo.f16 ? 2 : 4;
  const int64_t slot_bytes = cd.slot_elems * es;
  const int32_t nL = s->p.n_layer;
  int64_t n_slots = 0;
  std::vector<int64_t> slot_of;
  for (CodecChunk* cp : every) {
    CodecChunk& c = *cp;
    const int64_t all = int64_t(c.n_pages) * s->page_bytes;
    // Keeping is decided at layer 0 only: a forward's page pointers (its attention plan) are fixed after its
    // layer-0 decode, so a chunk must not move from the scratch to kept pages between its layers.
    if (!c.kept.p() && layer == 0 && cd.c.cache_bytes > 0 && kept_bytes + all <= cd.c.cache_bytes) {
      if (c.kept.alloc(fn, static_cast<size_t>(all)) == HWKV_OK) {
        c.kept_layers.assign(static_cast<size_t>(nL), 0);
        kept_bytes += all;
      } else {
        c.kept.reset();
      }
    }
    if (c.kept.p()) {
      if (c.kept_layers[layer]) continue;
      slot_of.push_back(-1);
    } else {
      slot_of.push_back(n_slots);
      n_slots += c.n_pages;
    }
    list.push_back(&c);
  }
  if (list.empty()) return HWKV_OK;
  const size_t need = n_slots > 0 ? static_cast<size_t>(((n_slots - 1) * cd.slot_elems + s->page_bytes / es) * es) : 0;
  if (cd.scratch.size() < need) {
    HWKV_TRY(sync(fn));  // queued kernels may still read the old scratch
    HWKV_TRY(cd.scratch.alloc(fn, need));
  }
  std::vector<float*> ptrs;
  for (size_t i = 0; i < list.size(); ++i) {
    CodecChunk& c = *list[i];
    if (slot_of[i] >= 0) c.dec_base = cd.scratch.p() + slot_of[i] * slot_bytes;
    for (int32_t pg = 0; pg < c.n_pages; ++pg)
      ptrs.push_back(reinterpret_cast<float*>(c.page_ptr(pg, s->page_bytes, slot_bytes)));
  }
  CodecTemp tmp;
  const int64_t n = cd.n;
  if (!cd.aqua) {
    std::vector<ChunkRow> rows;
    for (size_t i = 0; i < list.size(); ++i) rows.push_back(ChunkRow{list[i], static_cast<int64_t>(i) * n});
    hwkv_status st;
    const int64_t R = static_cast<int64_t>(list.size()) * n;
    float* yk = reinterpret_cast<float*>(tmp.get(fn, static_cast<size_t>(R) * cd.Ck * 4, &st));
    HWKV_TRY(st);
    float* yv = reinterpret_cast<float*>(tmp.get(fn, static_cast<size_t>(R) * cd.Cv * 4, &st));
    HWKV_TRY(st);
    HWKV_TRY(plain_decode(fn, cd, rows, layer, yk, yv, tmp));
    HWKV_TRY(store_rows(fn, s, rows, layer, yk, yv, ptrs, tmp));
  } else {
    int64_t max_pos = 0;
    for (CodecChunk* c : list) max_pos = std::max<int64_t>(max_pos, c->pos0 + c->n_tok);
    HWKV_TRY(ensure_tab(fn, cd, max_pos));
    if (layer == 0) {
      ++cd.st_epoch;
      cd.st_rows = 0;
    }
    // rows of this epoch; chunks without a state of layer-1 restart the chain from layer 0, in the rows they
    // already have in this epoch (as the CPU's aq_state_), else on new rows (repeated calls for one layer >= 1,
    // e.g. attn_views, must not grow the state)
    std::vector<CodecChunk*> restart;
    for (CodecChunk* c : list) {
      if (c->st_epoch == cd.st_epoch && c->st_layer == layer - 1 && layer > 0) continue;
      if (c->st_epoch != cd.st_epoch) {
        c->st_epoch = cd.st_epoch;
        c->st_off = cd.st_rows;
        cd.st_rows += n;
      }
      c->st_layer = -1;
      if (layer > 0) restart.push_back(c);
    }
    const bool keep = layer > 0;
    HWKV_TRY(ensure_rows(fn, cd.sk, cd.st_rows, cd.Ck, keep));
    HWKV_TRY(ensure_rows(fn, cd.sv, cd.st_rows, cd.Cv, keep));
    HWKV_TRY(ensure_rows(fn, cd.yk, cd.st_rows, cd.Ck, false));
    HWKV_TRY(ensure_rows(fn, cd.yv, cd.st_rows, cd.Cv, false));
    float* SK = reinterpret_cast<float*>(cd.sk.p());
    float* SV = reinterpret_cast<float*>(cd.sv.p());
    float* YK = reinterpret_cast<float*>(cd.yk.p());
    float* YV = reinterpret_cast<float*>(cd.yv.p());
    auto commit = [&](const std::vector<ChunkRow>& rows) -> hwkv_status {
      for (const auto& r : runs_of(rows, n)) {
        HWKV_CU(cudaMemcpyAsync(SK + r.first * cd.Ck, YK + r.first * cd.Ck, size_t(r.second - r.first) * cd.Ck * 4,
                                cudaMemcpyDeviceToDevice, stream()));
        HWKV_CU(cudaMemcpyAsync(SV + r.first * cd.Cv, YV + r.first * cd.Cv, size_t(r.second - r.first) * cd.Cv * 4,
                                cudaMemcpyDeviceToDevice, stream()));
      }
      return HWKV_OK;
    };
    if (!restart.empty()) {
      std::vector<ChunkRow> rr;
      for (CodecChunk* c : restart) rr.push_back(ChunkRow{c, c->st_off});
      for (int32_t l = 0; l < layer; ++l) {
        HWKV_TRY(aqua_step(fn, cd, rr, l, SK, SV, YK, YV, tmp));
        HWKV_TRY(commit(rr));
      }
    }
    std::vector<ChunkRow> rows;
    for (CodecChunk* c : list) rows.push_back(ChunkRow{c, c->st_off});
    HWKV_TRY(aqua_step(fn, cd, rows, layer, SK, SV, YK, YV, tmp));
    HWKV_TRY(commit(rows));
    for (CodecChunk* c : list) c->st_layer = layer;
    HWKV_TRY(store_rows(fn, s, rows, layer, SK, SV, ptrs, tmp));
  }
  for (CodecChunk* c : list)
    if (c->kept.p()) c->kept_layers[layer] = 1;
  return HWKV_OK;
}

// ------------------------------------------------------------------------------------------------
// reads, merge, truncate through the codec
// ------------------------------------------------------------------------------------------------
hwkv_status codec_page_ptrs(const char* fn, hwkv_store* s, const StoreBlock& b, int32_t layer, CodecTemp& tmp,
                            std::vector<float*>& ptrs) {
  ptrs.clear();
  const CodecChunk* last = nullptr;
  unsigned char* dec = nullptr;
  for (size_t i = 0; i < b.pages.size(); ++i) {
    if (b.pages[i] >= 0) {
      ptrs.push_back(s->page_ptr[b.pages[i]]);
      continue;
    }
    const CompRef& r = b.comp[i];
    if (r.c.get() != last) {
      last = r.c.get();
      hwkv_status st;
      dec = tmp.get(fn, static_cast<size_t>(r.c->n_pages) * s->page_bytes, &st);
      HWKV_TRY(st);
      std::vector<float*> dst;
      for (int32_t p = 0; p < r.c->n_pages; ++p) dst.push_back(reinterpret_cast<float*>(dec + p * s->page_bytes));
      HWKV_TRY(ensure_tab(fn, *s->codec, r.c->pos0 + r.c->n_tok));
      HWKV_TRY(decode_chunk_layers(fn, s, *r.c, layer < 0 ? 0 : layer, layer < 0 ? s->p.n_layer - 1 : layer, dst, tmp));
    }
    ptrs.push_back(reinterpret_cast<float*>(dec + r.page * s->page_bytes));
  }
  return HWKV_OK;
}

hwkv_status codec_truncate_page(const char* fn, hwkv_store* s, StoreBlock& b, size_t page) {
  const CompRef r = b.comp[page];
  CodecTemp tmp;
  hwkv_status st;
  unsigned char* dec = tmp.get(fn, static_cast<size_t>(r.c->n_pages) * s->page_bytes, &st);
  HWKV_TRY(st);
  std::vector<float*> dst;
  for (int32_t p = 0; p < r.c->n_pages; ++p) dst.push_back(reinterpret_cast<float*>(dec + p * s->page_bytes));
  HWKV_TRY(ensure_tab(fn, *s->codec, r.c->pos0 + r.c->n_tok));
  HWKV_TRY(decode_chunk_layers(fn, s, *r.c, 0, s->p.n_layer - 1, dst, tmp));
  // one page: a free one or a new allocation within max_bytes (the store's acquire rules)
  std::vector<int32_t> got;
  HWKV_TRY(acquire_pages(fn, s, 1, got));
  const int32_t idx = got[0];
  ++s->pages_in_use;
  const cudaError_t e = cudaMemcpyAsync(s->page_ptr[idx], dec + r.page * s->page_bytes, static_cast<size_t>(s->page_bytes),
                                        cudaMemcpyDeviceToDevice, stream());
  const hwkv_status st2 = e == cudaSuccess ? sync(fn) : cuda_fail(e, fn, "cudaMemcpyAsync");
  if (st2 != HWKV_OK) {
    release_pages(s, &idx, 1);
    return st2;
  }
  b.pages[page] = idx;
  b.comp[page].c.reset();
  return HWKV_OK;
}

hwkv_status codec_merge_aqua(const char* fn, hwkv_store* s, int32_t dst, int32_t src, const RopeHost* rope, bool* done) {
  *done = false;
  if (!s->codec || !s->codec->aqua) return HWKV_OK;
  Codec& cd = *s->codec;
  StoreBlock& d = s->blocks[dst];
  const StoreBlock& sb = s->blocks[src];
  const int64_t pt = s->p.page_tokens, a = d.len, n = sb.len;
  if (sb.comp.empty() || a % pt != 0) return HWKV_OK;
  if (rope && !(rope->head_dim == cd.rope.head_dim && rope->rotary_dim == cd.rope.rotary_dim &&
                rope->style == cd.rope.style && rope->inv_freq == cd.rope.inv_freq))
    return HWKV_OK;
  *done = true;
  const size_t np = sb.pages.size();
  std::vector<CompRef> refs(np);
  std::shared_ptr<CodecChunk> cur;
  for (size_t p = 0; p < np; ++p) {
    if (sb.pages[p] >= 0) continue;
    const CompRef& r = sb.comp[p];
    if (p == 0 || sb.pages[p - 1] >= 0 || sb.comp[p - 1].c != r.c) {
      auto c = std::make_shared<CodecChunk>();
      c->n_pages = r.c->n_pages;
      c->n_tok = r.c->n_tok;
      c->pos0 = r.c->pos0 + static_cast<int32_t>(rope ? a : 0);
      c->layers = r.c->layers;
      c->mem = r.c->mem;  // codes are immutable: shared
      c->bytes = r.c->bytes;
      cur = std::move(c);
    }
    refs[p] = CompRef{cur, r.page};
  }
  // exact pages of src: copied in runs (keys rotated by +len(dst) with rope)
  int64_t n_exact = 0;
  for (int32_t idx : sb.pages) n_exact += idx >= 0 ? 1 : 0;
  const size_t old = d.pages.size();
  std::vector<int32_t> got;
  HWKV_TRY(acquire_pages(fn, s, static_cast<int32_t>(n_exact), got));
  if (d.comp.size() < old) d.comp.resize(old);
  size_t gi = 0;
  for (size_t p = 0; p < np; ++p) {
    if (sb.pages[p] < 0) {
      d.pages.push_back(-1);
      d.comp.push_back(refs[p]);
    } else {
      d.pages.push_back(got[gi++]);
      d.comp.push_back(CompRef{});
    }
  }
  s->pages_in_use += static_cast<int32_t>(n_exact);
  // copy the exact pages' rows: one launch per run of exact pages
  hwkv_status st = HWKV_OK;
  for (size_t p = 0; p < np && st == HWKV_OK;) {
    if (sb.pages[p] < 0) {
      ++p;
      continue;
    }
    size_t q = p;
    while (q < np && sb.pages[q] >= 0) ++q;
    const int64_t t0 = int64_t(p) * pt, t1 = std::min<int64_t>(n, int64_t(q) * pt);
    std::vector<float*> sp;
    for (size_t i = p; i < q; ++i) sp.push_back(s->page_ptr[sb.pages[i]]);
    std::vector<float> tab;
    if (rope) rope_table_row(*rope, static_cast<double>(a), tab);
    st = store_copy_rows(fn, s, d, static_cast<int32_t>(a + t0), static_cast<int32_t>(t1 - t0), rope, tab, sp);
    p = q;
  }
  if (st != HWKV_OK) {  // undo
    release_pages(s, d.pages.data() + old, d.pages.size() - old);
    d.pages.resize(old);
    d.comp.resize(old);
    return st;
  }
  d.len = static_cast<int32_t>(a + n);
  return HWKV_OK;
}

// ------------------------------------------------------------------------------------------------
// stats and codes
// ------------------------------------------------------------------------------------------------
hwkv_status store_codec_stats(hwkv_store_t* s, hwkv_store_codec_stats* out) {
  const char* fn = "store_codec_stats";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = hwkv_store_codec_stats{};
    hwkv::codec::count_chunks(s->blocks, s->p.page_tokens,
                              [](const CodecChunk& c) { return static_cast<int64_t>(c.kept.size()); }, out);
    if (s->codec) {
      const Codec& cd = *s->codec;
      out->bytes_scratch += static_cast<int64_t>(cd.scratch.size() + cd.sk.size() + cd.sv.size() + cd.yk.size() +
                                                 cd.yv.size());
    }
    out->values_compressed = hwkv::codec::values_compressed(s->p, out->tokens_compressed);
    return HWKV_OK;
  });
}

hwkv_status store_codec_chunk(hwkv_store_t* s, int32_t b, int32_t token, int32_t layer, int32_t which, uint32_t* codes,
                              uint16_t* scales, uint16_t* zeros, int64_t* info) {
  const char* fn = "store_codec_chunk";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    HWKV_TRY(check_block(fn, s, b));
    HWKV_TRY(check_layer(fn, s, layer));
    if (which != 0 && which != 1)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: which must be 0 (keys) or 1 (values), got %d", fn, which);
    if (!info) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: info is NULL", fn);
    const StoreBlock& blk = s->blocks[b];
    if (token < 0 || token >= blk.len)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: token %d is out of range (block %d holds %d tokens)", fn, token, b, blk.len);
    const int32_t page = token / s->p.page_tokens;
    if (blk.pages[page] >= 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: token %d of block %d is not held compressed", fn, token, b);
    const CompRef& r = blk.comp[page];
    const CodecChunk& c = *r.c;
    const CodecChunk::Layer& Ly = c.layers[layer];
    const int64_t nw = which ? Ly.nvw : Ly.nkw, ns = which ? Ly.nvs : Ly.nks, nz = which ? Ly.nvz : Ly.nkz;
    const int64_t ow = which ? Ly.vw : Ly.kw, os = which ? Ly.vs : Ly.ks, oz = which ? Ly.vz : Ly.kz;
    info[0] = int64_t(page - r.page) * s->p.page_tokens;
    info[1] = c.n_tok;
    info[2] = nw;
    info[3] = ns;
    info[4] = nz;
    info[5] = s->codec->aqua && layer == 0 && s->codec->c.layer0_exact ? 1 : 0;
    HWKV_TRY(use_device(fn));
    const unsigned char* m = c.mem->p();
    if (codes && nw) HWKV_TRY(d2h(fn, codes, m + ow, size_t(nw) * 4));
    if (scales && ns) HWKV_TRY(d2h(fn, scales, m + os, size_t(ns) * 2));
    if (zeros && nz) HWKV_TRY(d2h(fn, zeros, m + oz, size_t(nz) * 2));
    return sync(fn);
  });
}

}  // namespace hwkv_cuda
