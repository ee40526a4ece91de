// quant_ridge.cpp — ridge regression with an implicit bias column: chunked normal equations and a
// Cholesky solve in double (hwkv_quant.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/threadpool.h"
#include "quant_internal.h"

namespace hwkv {
namespace quant {

// Scalar dot tiles: 8 independent partial sums per pair (vectorisable, deterministic order).
void dots_scalar(const float* A, int32_t na, const float* B, int32_t nb, int64_t R, float* out, int64_t ldo) {
  for (int32_t i = 0; i < na; ++i) {
    const float* a = A + int64_t(i) * R;
    for (int32_t j = 0; j < nb; ++j) {
      const float* b = B + int64_t(j) * R;
      float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t r = 0; r < R; r += 8)
        for (int k = 0; k < 8; ++k) s[k] += a[r + k] * b[r + k];
      out[int64_t(i) * ldo + j] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
  }
}

namespace {

constexpr int64_t kRows = 256;   // rows per float block
constexpr int32_t kPanel = 64;   // j-panel (rows of the transposed block kept hot in cache)

void dots(const float* A, int32_t na, const float* B, int32_t nb, int64_t R, float* out, int64_t ldo) {
#if defined(HWKV_QUANT_AVX2)
  if (simd_avx2_active()) return dots_avx2(A, na, B, nb, R, out, ldo);
#endif
  dots_scalar(A, na, B, nb, R, out, ldo);
}

}  // namespace

hwkv_status ridge_accumulate(const float* x, const float* y, int64_t n, int32_t p, int32_t q, double* xtx,
                             double* xty, double* yy) {
  const char* fn = "ridge_accumulate";
  bool skip;
  HWKV_TRY(check_ridge_accumulate(fn, x, y, n, p, q, xtx, xty, &skip));
  if (skip) return HWKV_OK;
  const int32_t p1 = p + 1;
  const int64_t R = kRows;
  std::vector<float> At(static_cast<size_t>(p1) * R), Yt(static_cast<size_t>(q) * R);
  std::vector<float> tile(static_cast<size_t>(kPanel) * std::max<int32_t>(kPanel, 1));
  for (int64_t r0 = 0; r0 < n; r0 += R) {
    const int64_t nr = std::min(R, n - r0);
    // Transpose the block (zero padding past nr).
    for (int32_t i = 0; i < p; ++i) {
      float* a = At.data() + int64_t(i) * R;
      for (int64_t r = 0; r < nr; ++r) a[r] = x[(r0 + r) * p + i];
      for (int64_t r = nr; r < R; ++r) a[r] = 0.0f;
    }
    {
      float* a = At.data() + int64_t(p) * R;
      for (int64_t r = 0; r < R; ++r) a[r] = r < nr ? 1.0f : 0.0f;
    }
    for (int32_t k = 0; k < q; ++k) {
      float* b = Yt.data() + int64_t(k) * R;
      for (int64_t r = 0; r < nr; ++r) b[r] = y[(r0 + r) * q + k];
      for (int64_t r = nr; r < R; ++r) b[r] = 0.0f;
    }
    // XᵀX, upper triangle by panels: tiles (i-range, j-panel) with i0 <= j-panel end.
    for (int32_t j0 = 0; j0 < p1; j0 += kPanel) {
      const int32_t nj = std::min(kPanel, p1 - j0);
      for (int32_t i0 = 0; i0 < j0 + nj; i0 += kPanel) {
        const int32_t ni = std::min(kPanel, p1 - i0);
        dots(At.data() + int64_t(i0) * R, ni, At.data() + int64_t(j0) * R, nj, R, tile.data(), kPanel);
        for (int32_t i = 0; i < ni; ++i)
          for (int32_t j = 0; j < nj; ++j)
            if (i0 + i <= j0 + j) xtx[int64_t(i0 + i) * p1 + (j0 + j)] += double(tile[int64_t(i) * kPanel + j]);
      }
    }
    // XᵀY.
    for (int32_t j0 = 0; j0 < q; j0 += kPanel) {
      const int32_t nj = std::min(kPanel, q - j0);
      for (int32_t i0 = 0; i0 < p1; i0 += kPanel) {
        const int32_t ni = std::min(kPanel, p1 - i0);
        dots(At.data() + int64_t(i0) * R, ni, Yt.data() + int64_t(j0) * R, nj, R, tile.data(), kPanel);
        for (int32_t i = 0; i < ni; ++i)
          for (int32_t j = 0; j < nj; ++j) xty[int64_t(i0 + i) * q + (j0 + j)] += double(tile[int64_t(i) * kPanel + j]);
      }
    }
    if (yy) {
      for (int32_t k = 0; k < q; ++k) {
        const float* b = Yt.data() + int64_t(k) * R;
        double s = 0.0;
        for (int64_t r = 0; r < nr; ++r) s += double(b[r]) * double(b[r]);
        yy[k] += s;
      }
    }
  }
  // Mirror the upper triangle.
  for (int32_t i = 0; i < p1; ++i)
    for (int32_t j = i + 1; j < p1; ++j) xtx[int64_t(j) * p1 + i] = xtx[int64_t(i) * p1 + j];
  return HWKV_OK;
}

hwkv_status ridge_solve(const double* xtx, const double* xty, int32_t p, int32_t q, double lambda_rel, float* w) {
  const char* fn = "ridge_solve";
  if (p < 0 || p > 65535) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: p must be in 0..65535, got %d", fn, p);
  if (q < 1 || q > 65536) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: q must be in 1..65536, got %d", fn, q);
  if (!(lambda_rel >= 0.0) || !std::isfinite(lambda_rel))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: lambda_rel must be a finite number >= 0, got %g", fn, lambda_rel);
  if (!xtx || !xty || !w) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: xtx, xty and w must not be NULL", fn);
  const int64_t n = int64_t(p) + 1;
  std::vector<double> U(xtx, xtx + n * n);
  double mean_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(U[i * n + i]))
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: xtx[%lld][%lld] is not finite", fn, (long long)i, (long long)i);
    mean_diag += U[i * n + i];
  }
  mean_diag /= double(n);
  const double lam = lambda_rel * mean_diag;
  std::vector<double> d0(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    U[i * n + i] += lam;
    d0[i] = U[i * n + i];
  }
  // Right-looking Cholesky A = UᵀU on the upper triangle (row-major; inner loops contiguous). The rank-1
  // update of the rows below k is spread over the pool in row ranges (each row's arithmetic is the same
  // whatever the split, so the result does not depend on the thread count).
  ThreadPool& pool = default_pool();
  constexpr int64_t kRowTask = 32;
  for (int64_t k = 0; k < n; ++k) {
    double* uk = U.data() + k * n;
    const double piv = uk[k];
    if (!(piv > 1e-11 * d0[k]) || !std::isfinite(piv))
      return fail(HWKV_ERR_INVALID_ARGUMENT,
                  "%s: the regularised normal matrix is not positive definite (pivot %lld of %lld is %g; collinear or "
                  "constant inputs?): raise lambda_rel",
                  fn, (long long)k, (long long)n, piv);
    const double dk = std::sqrt(piv);
    const double inv = 1.0 / dk;
    uk[k] = dk;
    for (int64_t j = k + 1; j < n; ++j) uk[j] *= inv;
    auto update = [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const double f = uk[i];
        if (f == 0.0) continue;
        double* ui = U.data() + i * n;
        for (int64_t j = i; j < n; ++j) ui[j] -= f * uk[j];
      }
    };
    const int64_t rows = n - (k + 1);
    if (rows < 4 * kRowTask || pool.size() == 1) {
      update(k + 1, n);
    } else {
      pool.parallel_for(ceil_div(rows, kRowTask), [&](int64_t t, int) {
        update(k + 1 + t * kRowTask, std::min(n, k + 1 + (t + 1) * kRowTask));
      });
    }
  }
  // Forward: Uᵀ Z = B, then back: U W = Z (rows of q contiguous). Columns of Z are independent: each task
  // solves a slice of them, in the same order as a single thread would.
  std::vector<double> Z(xty, xty + n * q);
  auto solve_cols = [&](int32_t c0, int32_t c1) {
    for (int64_t i = 0; i < n; ++i) {
      double* zi = Z.data() + i * q;
      const double inv = 1.0 / U[i * n + i];
      for (int32_t c = c0; c < c1; ++c) zi[c] *= inv;
      const double* ui = U.data() + i * n;
      for (int64_t j = i + 1; j < n; ++j) {
        const double f = ui[j];
        if (f == 0.0) continue;
        double* zj = Z.data() + j * q;
        for (int32_t c = c0; c < c1; ++c) zj[c] -= f * zi[c];
      }
    }
    for (int64_t i = n - 1; i >= 0; --i) {
      double* zi = Z.data() + i * q;
      const double* ui = U.data() + i * n;
      for (int64_t j = i + 1; j < n; ++j) {
        const double f = ui[j];
        if (f == 0.0) continue;
        const double* zj = Z.data() + j * q;
        for (int32_t c = c0; c < c1; ++c) zi[c] -= f * zj[c];
      }
      const double inv = 1.0 / ui[i];
      for (int32_t c = c0; c < c1; ++c) zi[c] *= inv;
    }
  };
  constexpr int32_t kColTask = 64;
  if (q <= kColTask || pool.size() == 1 || n < 64) {
    solve_cols(0, q);
  } else {
    pool.parallel_for(ceil_div(q, kColTask), [&](int64_t t, int) {
      solve_cols(static_cast<int32_t>(t * kColTask), std::min<int32_t>(q, static_cast<int32_t>((t + 1) * kColTask)));
    });
  }
  for (int64_t i = 0; i < n * q; ++i) {
    if (!std::isfinite(Z[i])) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: the solution is not finite (check xty)", fn);
  }
  for (int64_t i = 0; i < n * q; ++i) w[i] = static_cast<float>(Z[i]);
  return HWKV_OK;
}

hwkv_status linear_apply(const float* x, int64_t n, int32_t p, int32_t q, const float* w, float* y) {
  bool skip;
  HWKV_TRY(check_linear_apply("linear_apply", x, n, p, q, w, y, &skip));
  if (skip) return HWKV_OK;
  // 8 rows share each pass over w (its rows stream once per block); y rows are the accumulators: bias
  // first, then x_i · w_i for i in order, so each output's sum has a fixed order whatever the threads.
  constexpr int64_t kBlk = 8;
  const float* bias = w + int64_t(p) * q;
  default_pool().parallel_for(ceil_div(n, kBlk), [&](int64_t t, int) {
    const int64_t r0 = t * kBlk, r1 = std::min(n, r0 + kBlk);
    for (int64_t r = r0; r < r1; ++r) std::memcpy(y + r * q, bias, sizeof(float) * size_t(q));
    for (int32_t i = 0; i < p; ++i) {
      const float* wi = w + int64_t(i) * q;
      for (int64_t r = r0; r < r1; ++r) {
        const float xi = x[r * p + i];
        float* yr = y + r * q;
        for (int32_t j = 0; j < q; ++j) yr[j] += xi * wi[j];
      }
    }
  });
  return HWKV_OK;
}

}  // namespace quant
}  // namespace hwkv
