// pack.cu — bit packing of `bits`-bit codes into a little-endian stream of 32-bit words, and back.
//
// Stream bit k is bit (k % 32) of words[k / 32]; code i occupies stream bits [i*bits, (i+1)*bits).
// pack: one thread per output word ORs in every code that overlaps it (so no atomics are needed);
// unpack: one thread per code reads its one or two words.
#include <vector>

#include "common.cuh"
#include "codec.cuh"
#include "ops.cuh"

namespace hwkv_cuda {

namespace {

__global__ void pack_kernel(const uint16_t* __restrict__ codes, int64_t n, int32_t bits, uint32_t* __restrict__ words,
                            int64_t n_words) {
  for (int64_t w = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; w < n_words; w += (int64_t)gridDim.x * blockDim.x) {
    const int64_t lo = w * 32, hi = lo + 32;  // stream bits [lo, hi)
    int64_t i = lo / bits;
    int64_t end = (hi + bits - 1) / bits;
    if (end > n) end = n;
    uint32_t acc = 0;
    for (; i < end; ++i) {
      const int64_t b = i * bits;  // first stream bit of code i
      const uint64_t c = codes[i];
      if (b >= lo) {
        acc |= static_cast<uint32_t>(c << (b - lo));  // high bits beyond 32 fall off
      } else {
        acc |= static_cast<uint32_t>(c >> (lo - b));
      }
    }
    words[w] = acc;
  }
}

__global__ void unpack_kernel(const uint32_t* __restrict__ words, int32_t bits, uint16_t* __restrict__ codes,
                              int64_t n) {
  const uint32_t mask = bits == 32 ? 0xffffffffu : ((1u << bits) - 1u);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i * bits;
    const int64_t w = b >> 5;
    const int32_t off = static_cast<int32_t>(b & 31);
    uint64_t v = words[w];
    if (off + bits > 32) v |= static_cast<uint64_t>(words[w + 1]) << 32;
    codes[i] = static_cast<uint16_t>((v >> off) & mask);
  }
}

}  // namespace

hwkv_status pack_dev(const char* fn, const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words) {
  const int64_t need = ceil_div(n * bits, 32);
  if (need == 0) return HWKV_OK;
  const int threads = 256;
  pack_kernel<<<grid_for(need, threads), threads, 0, stream()>>>(codes, n, bits, words, need);
  HWKV_CU_LAUNCH(pack_kernel);
  return HWKV_OK;
}

// Validation: same checks, order and wording as the CPU core (core/src/pack.cpp).
hwkv_status pack_bits(const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words, int64_t n_words) {
  const char* fn = "pack_bits";
  return guarded(fn, [&]() -> hwkv_status {
    if (bits < 1 || bits > 16) return fail(HWKV_ERR_OUT_OF_RANGE, "pack_bits: bits must be in 1..16, got %d", bits);
    if (n < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: n must be >= 0, got %lld", (long long)n);
    if (n_words < 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: n_words must be >= 0, got %lld", (long long)n_words);
    if (n > (INT64_MAX - 31) / 16) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: n is too large (%lld)", (long long)n);
    const int64_t need = ceil_div(n * bits, 32);
    if (n_words < need)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: %lld codes of %d bits need %lld words, n_words is %lld",
                  (long long)n, bits, (long long)need, (long long)n_words);
    if (n == 0) return HWKV_OK;
    if (!codes) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: codes is NULL");
    if (!words) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: words is NULL");
    if (bits < 16) {
      const uint32_t limit = 1u << bits;
      for (int64_t i = 0; i < n; ++i)
        if (codes[i] >= limit)
          return fail(HWKV_ERR_OUT_OF_RANGE, "pack_bits: code %u at index %lld does not fit in %d bits",
                      static_cast<unsigned>(codes[i]), (long long)i, bits);
    }
    HWKV_TRY(use_device(fn));
    Scratch dc, dw;
    const size_t c_bytes = static_cast<size_t>(n) * sizeof(uint16_t);
    const size_t w_bytes = static_cast<size_t>(need) * sizeof(uint32_t);
    HWKV_TRY(dc.alloc(fn, c_bytes));
    HWKV_TRY(dw.alloc(fn, w_bytes));
    HWKV_TRY(h2d(fn, dc.ptr(), codes, c_bytes));
    const int threads = 256;
    pack_kernel<<<grid_for(need, threads), threads, 0, stream()>>>(dc.as<uint16_t>(), n, bits, dw.as<uint32_t>(), need);
    HWKV_CU_LAUNCH(pack_kernel);
    HWKV_TRY(d2h(fn, words, dw.ptr(), w_bytes));
    return sync(fn);
  });
}

hwkv_status unpack_bits(const uint32_t* words, int64_t n_words, int32_t bits, uint16_t* codes, int64_t n) {
  const char* fn = "unpack_bits";
  return guarded(fn, [&]() -> hwkv_status {
    if (bits < 1 || bits > 16) return fail(HWKV_ERR_OUT_OF_RANGE, "unpack_bits: bits must be in 1..16, got %d", bits);
    if (n < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: n must be >= 0, got %lld", (long long)n);
    if (n_words < 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: n_words must be >= 0, got %lld", (long long)n_words);
    if (n > (INT64_MAX - 31) / 16)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: n is too large (%lld)", (long long)n);
    const int64_t need = ceil_div(n * bits, 32);
    if (n_words < need)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: %lld codes of %d bits need %lld words, n_words is %lld",
                  (long long)n, bits, (long long)need, (long long)n_words);
    if (n == 0) return HWKV_OK;
    if (!codes) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: codes is NULL");
    if (!words) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: words is NULL");
    HWKV_TRY(use_device(fn));
    Scratch dc, dw;
    const size_t c_bytes = static_cast<size_t>(n) * sizeof(uint16_t);
    const size_t w_bytes = static_cast<size_t>(need) * sizeof(uint32_t);
    HWKV_TRY(dc.alloc(fn, c_bytes));
    HWKV_TRY(dw.alloc(fn, w_bytes));
    HWKV_TRY(h2d(fn, dw.ptr(), words, w_bytes));
    const int threads = 256;
    unpack_kernel<<<grid_for(n, threads), threads, 0, stream()>>>(dw.as<uint32_t>(), bits, dc.as<uint16_t>(), n);
    HWKV_CU_LAUNCH(unpack_kernel);
    HWKV_TRY(d2h(fn, codes, dc.ptr(), c_bytes));
    return sync(fn);
  });
}

}  // namespace hwkv_cuda
