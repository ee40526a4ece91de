// pack.cpp — bit packing: validation and the scalar kernels.
#include "pack.h"

#include <cstring>

#include "dispatch.h"

namespace hwkv {

// Generic: a 64-bit accumulator; each code is or-ed in at the current fill, full words are flushed.
void pack_bits_scalar(const uint16_t* codes, int64_t n, int bits, uint32_t* words) {
  if (bits == 16) {
    for (int64_t w = 0; w < n / 2; ++w) words[w] = uint32_t(codes[2 * w]) | (uint32_t(codes[2 * w + 1]) << 16);
    if (n & 1) words[n / 2] = codes[n - 1];
    return;
  }
  if (bits == 8 || bits == 4 || bits == 2 || bits == 1) {  // whole codes per word
    const int per = 32 / bits;
    const int64_t full = n / per;
    for (int64_t w = 0; w < full; ++w) {
      const uint16_t* c = codes + w * per;
      uint32_t x = 0;
      for (int j = 0; j < per; ++j) x |= uint32_t(c[j]) << (j * bits);
      words[w] = x;
    }
    const int64_t rest = n - full * per;
    if (rest) {
      uint32_t x = 0;
      for (int64_t j = 0; j < rest; ++j) x |= uint32_t(codes[full * per + j]) << (j * bits);
      words[full] = x;
    }
    return;
  }
  uint64_t acc = 0;
  int fill = 0;
  int64_t w = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc |= uint64_t(codes[i]) << fill;
    fill += bits;
    if (fill >= 32) {
      words[w++] = static_cast<uint32_t>(acc);
      acc >>= 32;
      fill -= 32;
    }
  }
  if (fill > 0) words[w] = static_cast<uint32_t>(acc);
}

void unpack_bits_scalar(const uint32_t* words, int64_t n, int bits, uint16_t* codes) {
  if (bits == 16) {
    for (int64_t w = 0; w < n / 2; ++w) {
      codes[2 * w] = static_cast<uint16_t>(words[w]);
      codes[2 * w + 1] = static_cast<uint16_t>(words[w] >> 16);
    }
    if (n & 1) codes[n - 1] = static_cast<uint16_t>(words[n / 2]);
    return;
  }
  const uint32_t mask = (1u << bits) - 1;
  if (bits == 8 || bits == 4 || bits == 2 || bits == 1) {
    const int per = 32 / bits;
    const int64_t full = n / per;
    for (int64_t w = 0; w < full; ++w) {
      const uint32_t x = words[w];
      uint16_t* c = codes + w * per;
      for (int j = 0; j < per; ++j) c[j] = static_cast<uint16_t>((x >> (j * bits)) & mask);
    }
    const int64_t rest = n - full * per;
    if (rest) {
      const uint32_t x = words[full];
      for (int64_t j = 0; j < rest; ++j) codes[full * per + j] = static_cast<uint16_t>((x >> (j * bits)) & mask);
    }
    return;
  }
  uint64_t acc = 0;
  int fill = 0;
  int64_t w = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (fill < bits) {
      acc |= uint64_t(words[w++]) << fill;
      fill += 32;
    }
    codes[i] = static_cast<uint16_t>(acc & mask);
    acc >>= bits;
    fill -= bits;
  }
}

uint16_t max_u16_scalar(const uint16_t* x, int64_t n) {
  uint16_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

hwkv_status pack_bits(const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words, int64_t n_words) {
  if (bits < 1 || bits > 16) return fail(HWKV_ERR_OUT_OF_RANGE, "pack_bits: bits must be in 1..16, got %d", bits);
  if (n < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: n must be >= 0, got %lld", (long long)n);
  if (n_words < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: n_words must be >= 0, got %lld", (long long)n_words);
  if (n > (INT64_MAX - 31) / 16) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: n is too large (%lld)", (long long)n);
  const int64_t need = packed_words(n, bits);
  if (n_words < need)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: %lld codes of %d bits need %lld words, n_words is %lld", (long long)n,
                bits, (long long)need, (long long)n_words);
  if (n == 0) return HWKV_OK;
  if (!codes) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: codes is NULL");
  if (!words) return fail(HWKV_ERR_INVALID_ARGUMENT, "pack_bits: words is NULL");
  const Kernels& k = kernels();
  if (bits < 16) {
    const uint32_t limit = 1u << bits;
    if (k.max_u16(codes, n) >= limit) {
      for (int64_t i = 0; i < n; ++i)
        if (codes[i] >= limit)
          return fail(HWKV_ERR_OUT_OF_RANGE, "pack_bits: code %u at index %lld does not fit in %d bits", unsigned(codes[i]),
                      (long long)i, bits);
    }
  }
  k.pack_bits(codes, n, bits, words);
  return HWKV_OK;
}

hwkv_status unpack_bits(const uint32_t* words, int64_t n_words, int32_t bits, uint16_t* codes, int64_t n) {
  if (bits < 1 || bits > 16) return fail(HWKV_ERR_OUT_OF_RANGE, "unpack_bits: bits must be in 1..16, got %d", bits);
  if (n < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: n must be >= 0, got %lld", (long long)n);
  if (n_words < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: n_words must be >= 0, got %lld", (long long)n_words);
  if (n > (INT64_MAX - 31) / 16) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: n is too large (%lld)", (long long)n);
  const int64_t need = packed_words(n, bits);
  if (n_words < need)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: %lld codes of %d bits need %lld words, n_words is %lld",
                (long long)n, bits, (long long)need, (long long)n_words);
  if (n == 0) return HWKV_OK;
  if (!codes) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: codes is NULL");
  if (!words) return fail(HWKV_ERR_INVALID_ARGUMENT, "unpack_bits: words is NULL");
  kernels().unpack_bits(words, n, bits, codes);
  return HWKV_OK;
}

}  // namespace hwkv
