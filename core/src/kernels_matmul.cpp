// kernels_matmul.cpp — validation, ISA dispatch, threading and the portable scalar path of kern::matmul.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/matmul_impl.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace hwkv {
namespace kern {

// ------------------------------------------------------------------------------------------------
// Scalar path
// ------------------------------------------------------------------------------------------------
namespace scalar {

namespace {
// 8 independent partial sums: lets compilers vectorize without -ffast-math and keeps the error of long
// sums small.
inline float dot_f32(const float* HWKV_RESTRICT a, const float* HWKV_RESTRICT b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  for (; i < n; ++i) s[i & 7] += a[i] * b[i];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

inline void store(const MMTask& t, int64_t tok, int64_t r, float v) {
  float* dst = t.y + tok * t.ldy + r;
  *dst = t.accumulate ? *dst + v : v;
}
}  // namespace

void rows(const MMTask& t, int64_t r0, int64_t r1) {
  const int64_t n_in = t.n_in;
  if (t.wtype == HWKV_WT_Q8_0) {
    const int64_t nb = n_in / kQ8Block;
    const int64_t rb = q8_row_bytes(n_in);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = static_cast<const uint8_t*>(t.W) + r * rb;
      for (int64_t tok = 0; tok < t.n_tok; ++tok) {
        const int8_t* xq = t.xq + tok * n_in;
        const float* xd = t.xd + tok * nb;
        float acc = 0.f;
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* blk = row + b * kQ8BlockBytes;
          const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
          const int8_t* qx = xq + b * kQ8Block;
          int32_t isum = 0;
          for (int j = 0; j < kQ8Block; ++j) isum += int32_t(qs[j]) * int32_t(qx[j]);
          acc += f16_to_f32(load_u16(blk)) * xd[b] * static_cast<float>(isum);
        }
        store(t, tok, r, acc);
      }
    }
    return;
  }
  thread_local std::vector<float> buf;
  if (t.wtype != HWKV_WT_F32 && static_cast<int64_t>(buf.size()) < n_in) buf.resize(static_cast<size_t>(n_in));
  for (int64_t r = r0; r < r1; ++r) {
    const float* w;
    if (t.wtype == HWKV_WT_F32) {
      w = static_cast<const float*>(t.W) + r * n_in;
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(t.W) + r * n_in;
      float* d = buf.data();
      if (t.wtype == HWKV_WT_F16)
        for (int64_t i = 0; i < n_in; ++i) d[i] = f16_to_f32(src[i]);
      else
        for (int64_t i = 0; i < n_in; ++i) d[i] = bf16_to_f32(src[i]);
      w = d;
    }
    for (int64_t tok = 0; tok < t.n_tok; ++tok) store(t, tok, r, dot_f32(w, t.x + tok * n_in, n_in));
  }
}

void quantize_q8(const float* x, int64_t n, int8_t* q, float* d) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    float amax = 0.f;
    for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.f;
    const float id = db != 0.f ? 1.f / db : 0.f;
    d[b] = db;
    for (int j = 0; j < kQ8Block; ++j) q[b * kQ8Block + j] = static_cast<int8_t>(std::nearbyint(xb[j] * id));
  }
}

}  // namespace scalar

// ------------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------------
namespace {

struct Path {
  RowKernel rows;
  QuantizeFn quantize;
  const char* name;
};

std::atomic<int> g_force_scalar{0};

#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2
bool cpu_has_avx2_fma_f16c() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!(fma && osxsave && avx && f16c)) return false;
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  if ((xlo & 6u) != 6u) return false;  // OS saves XMM and YMM state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (b & (1u << 5)) != 0;  // AVX2
#else
  return true;  // built with AVX2 for this target: trust the build
#endif
}
#endif

const Path& best_path() {
  static const Path p = [] {
#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2
    if (cpu_has_avx2_fma_f16c()) return Path{avx2::rows, avx2::quantize_q8, "avx2"};
#endif
#if defined(HWKV_HAVE_WASM_SIMD) && HWKV_HAVE_WASM_SIMD
    return Path{wasm::rows, wasm::quantize_q8, "simd128"};
#endif
    return Path{scalar::rows, scalar::quantize_q8, "scalar"};
  }();
  return p;
}

const Path& current_path() {
  static const Path s{scalar::rows, scalar::quantize_q8, "scalar"};
  return g_force_scalar.load(std::memory_order_relaxed) ? s : best_path();
}

struct Chunk {
  int32_t job;
  int64_t r0, r1;
};

struct Ctx {
  const MMTask* jobs;
  const Chunk* chunks;
  RowKernel rows;
};

void run_chunk(void* c, int64_t i, int) {
  const Ctx& ctx = *static_cast<const Ctx*>(c);
  const Chunk& ch = ctx.chunks[i];
  ctx.rows(ctx.jobs[ch.job], ch.r0, ch.r1);
}

struct QCtx {
  const float* x;
  int64_t n_in;
  int8_t* q;
  float* d;
  QuantizeFn fn;
};

void run_quant(void* c, int64_t tok, int) {
  const QCtx& q = *static_cast<const QCtx*>(c);
  q.fn(q.x + tok * q.n_in, q.n_in, q.q + tok * q.n_in, q.d + tok * (q.n_in / kQ8Block));
}

}  // namespace

void set_force_scalar(bool force) { g_force_scalar.store(force ? 1 : 0, std::memory_order_relaxed); }
const char* matmul_path() { return current_path().name; }

int64_t row_bytes(int32_t wtype, int64_t n_in) {
  switch (wtype) {
    case HWKV_WT_F32: return n_in * 4;
    case HWKV_WT_F16:
    case HWKV_WT_BF16: return n_in * 2;
    case HWKV_WT_Q8_0: return n_in % kQ8Block ? 0 : q8_row_bytes(n_in);
    default: return 0;
  }
}

hwkv_status matmul_multi(const MatmulOut* outs, int32_t n_outs, int64_t n_in, const float* x, int64_t n_tok,
                         ThreadPool* pool) {
  if (n_outs < 0 || (n_outs > 0 && !outs)) return fail(HWKV_ERR_INVALID_ARGUMENT, "matmul: outs is null");
  if (n_in <= 0 || n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "matmul: n_in = %lld, n_tok = %lld", (long long)n_in, (long long)n_tok);
  if (n_tok == 0 || n_outs == 0) return HWKV_OK;
  if (!x) return fail(HWKV_ERR_INVALID_ARGUMENT, "matmul: x is null");
  bool any_q8 = false;
  int64_t total_bytes = 0;
  for (int32_t j = 0; j < n_outs; ++j) {
    const MatmulOut& o = outs[j];
    const int64_t rb = row_bytes(o.wtype, n_in);
    if (rb == 0) {
      if (o.wtype == HWKV_WT_Q8_0)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "matmul: Q8_0 needs n_in %% 32 == 0 (n_in = %lld)", (long long)n_in);
      return fail(HWKV_ERR_UNSUPPORTED, "matmul: weight type %d is not supported (F32=0, F16=1, Q8_0=8, BF16=30)", o.wtype);
    }
    if (!o.W || !o.y || o.n_out < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "matmul: output %d: null W/y or n_out < 0", j);
    const int64_t ldy = o.ldy ? o.ldy : o.n_out;
    if (ldy < o.n_out) return fail(HWKV_ERR_INVALID_ARGUMENT, "matmul: output %d: ldy %lld < n_out %lld", j, (long long)ldy, (long long)o.n_out);
    any_q8 |= o.wtype == HWKV_WT_Q8_0;
    total_bytes += rb * o.n_out;
  }
  return guarded("matmul", [&]() -> hwkv_status {
    const Path& path = current_path();
    const int n_threads = pool ? pool->size() : 1;

    // Activation quantization for Q8_0 weights (once for all outputs).
    thread_local std::vector<int8_t> xq;
    thread_local std::vector<float> xd;
    if (any_q8) {
      const size_t nq = static_cast<size_t>(n_tok * n_in);
      if (xq.size() < nq) xq.resize(nq);
      if (xd.size() < nq / kQ8Block) xd.resize(nq / kQ8Block);
      QCtx qc{x, n_in, xq.data(), xd.data(), path.quantize};
      if (pool && n_threads > 1 && n_tok * n_in >= 65536)
        pool->run(n_tok, run_quant, &qc);
      else
        for (int64_t t = 0; t < n_tok; ++t) run_quant(&qc, t, 0);
    }

    thread_local std::vector<MMTask> jobs;
    thread_local std::vector<Chunk> chunks;
    jobs.clear();
    chunks.clear();
    // Chunking: about 6 chunks per thread over all outputs (dynamic hand-out balances threads that get
    // preempted), but no chunk under ~24 KiB of weights, rows in multiples of 12.
    const int64_t target_chunks = n_threads > 1 ? int64_t(n_threads) * 6 : 1;
    const int64_t chunk_bytes = std::max<int64_t>(total_bytes / target_chunks, 24 * 1024);
    for (int32_t j = 0; j < n_outs; ++j) {
      const MatmulOut& o = outs[j];
      MMTask t;
      t.W = o.W;
      t.wtype = o.wtype;
      t.accumulate = o.accumulate;
      t.n_in = n_in;
      t.x = x;
      t.n_tok = n_tok;
      t.xq = o.wtype == HWKV_WT_Q8_0 ? xq.data() : nullptr;
      t.xd = o.wtype == HWKV_WT_Q8_0 ? xd.data() : nullptr;
      t.y = o.y;
      t.ldy = o.ldy ? o.ldy : o.n_out;
      jobs.push_back(t);
      const int64_t rb = row_bytes(o.wtype, n_in);
      int64_t rows = n_threads > 1 ? std::max<int64_t>(chunk_bytes / rb, 1) : o.n_out;
      rows = (rows + 11) / 12 * 12;  // multiples of 12: whole 4-row decode and 3-row batched tiles
      for (int64_t r0 = 0; r0 < o.n_out; r0 += rows) chunks.push_back(Chunk{j, r0, std::min(o.n_out, r0 + rows)});
    }
    Ctx ctx{jobs.data(), chunks.data(), path.rows};
    const int64_t nch = static_cast<int64_t>(chunks.size());
    if (pool && n_threads > 1 && nch > 1)
      pool->run(nch, run_chunk, &ctx);
    else
      for (int64_t i = 0; i < nch; ++i) run_chunk(&ctx, i, 0);
    return HWKV_OK;
  });
}

hwkv_status matmul(const void* W, int32_t wtype, int64_t n_out, int64_t n_in, const float* x, int64_t n_tok,
                   float* y, ThreadPool* pool) {
  MatmulOut o{W, wtype, 0, n_out, y, 0};
  return matmul_multi(&o, 1, n_in, x, n_tok, pool);
}

}  // namespace kern
}  // namespace hwkv
