// AVX2 bit packing: fast paths for 1, 2, 4, 8 and 16 bits; other widths use the scalar 64-bit accumulator loop.
#include "avx2_common.h"
#if defined(HWKV_AVX2_BODY)
#include <cstring>

#include "../../dispatch.h"

namespace hwkv {
namespace {

// 32 codes (each < 256) -> 32 bytes in order.
inline __m256i codes_to_bytes(const uint16_t* c) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 16));
  return _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8);
}
// Pairs of bytes (lo, hi) with values < 2^w -> one byte lo | hi << w, for 64 input bytes -> 32 output bytes.
inline __m256i merge_pairs(__m256i x0, __m256i x1, int w) {
  const __m256i m = _mm256_set1_epi16(0x00FF);
  const __m128i sh = _mm_cvtsi32_si128(8 - w);
  const __m256i t0 = _mm256_and_si256(_mm256_or_si256(x0, _mm256_srl_epi16(x0, sh)), m);
  const __m256i t1 = _mm256_and_si256(_mm256_or_si256(x1, _mm256_srl_epi16(x1, sh)), m);
  return _mm256_permute4x64_epi64(_mm256_packus_epi16(t0, t1), 0xD8);
}
inline void store_codes_from_bytes(uint16_t* c, __m128i bytes16) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), _mm256_cvtepu8_epi16(bytes16));
}

void pack_bits_avx2(const uint16_t* codes, int64_t n, int bits, uint32_t* words) {
  int64_t i = 0;  // codes done; always a multiple of the chunk, so words done = i*bits/32
  switch (bits) {
    case 16: {
      std::memcpy(words, codes, static_cast<size_t>(n / 2) * 4);
      if (n & 1) words[n / 2] = codes[n - 1];
      return;
    }
    case 8:
      for (; i + 32 <= n; i += 32)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + i / 4), codes_to_bytes(codes + i));
      break;
    case 4:
      for (; i + 64 <= n; i += 64) {
        const __m256i r = merge_pairs(codes_to_bytes(codes + i), codes_to_bytes(codes + i + 32), 4);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + i / 8), r);
      }
      break;
    case 2:
      for (; i + 128 <= n; i += 128) {
        const __m256i q0 = merge_pairs(codes_to_bytes(codes + i), codes_to_bytes(codes + i + 32), 2);
        const __m256i q1 = merge_pairs(codes_to_bytes(codes + i + 64), codes_to_bytes(codes + i + 96), 2);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(words + i / 16), merge_pairs(q0, q1, 4));
      }
      break;
    case 1:
      for (; i + 32 <= n; i += 32)
        words[i / 32] = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(codes_to_bytes(codes + i), 7)));
      break;
    default:
      break;
  }
  pack_bits_scalar(codes + i, n - i, bits, words + i * bits / 32);
}

void unpack_bits_avx2(const uint32_t* words, int64_t n, int bits, uint16_t* codes) {
  int64_t i = 0;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words);
  switch (bits) {
    case 16:
      std::memcpy(codes, words, static_cast<size_t>(n) * 2);
      return;
    case 8:
      for (; i + 16 <= n; i += 16)
        store_codes_from_bytes(codes + i, _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + i)));
      break;
    case 4: {
      const __m128i m = _mm_set1_epi8(0x0F);
      for (; i + 32 <= n; i += 32) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + i / 2));
        const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
        store_codes_from_bytes(codes + i, _mm_unpacklo_epi8(lo, hi));
        store_codes_from_bytes(codes + i + 16, _mm_unpackhi_epi8(lo, hi));
      }
      break;
    }
    case 2: {
      const __m128i m = _mm_set1_epi8(0x03);
      for (; i + 64 <= n; i += 64) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + i / 4));
        const __m128i c0 = _mm_and_si128(b, m), c1 = _mm_and_si128(_mm_srli_epi16(b, 2), m);
        const __m128i c2 = _mm_and_si128(_mm_srli_epi16(b, 4), m), c3 = _mm_and_si128(_mm_srli_epi16(b, 6), m);
        const __m128i x01l = _mm_unpacklo_epi8(c0, c1), x23l = _mm_unpacklo_epi8(c2, c3);
        const __m128i x01h = _mm_unpackhi_epi8(c0, c1), x23h = _mm_unpackhi_epi8(c2, c3);
        store_codes_from_bytes(codes + i, _mm_unpacklo_epi16(x01l, x23l));
        store_codes_from_bytes(codes + i + 16, _mm_unpackhi_epi16(x01l, x23l));
        store_codes_from_bytes(codes + i + 32, _mm_unpacklo_epi16(x01h, x23h));
        store_codes_from_bytes(codes + i + 48, _mm_unpackhi_epi16(x01h, x23h));
      }
      break;
    }
    case 1: {
      const __m256i idx = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                                           3, 3, 3, 3);
      const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
      const __m256i one = _mm256_set1_epi8(1);
      for (; i + 32 <= n; i += 32) {
        const __m256i w = _mm256_set1_epi32(static_cast<int>(words[i / 32]));
        const __m256i sel = _mm256_and_si256(_mm256_shuffle_epi8(w, idx), bit);
        const __m256i b01 = _mm256_and_si256(_mm256_cmpeq_epi8(sel, bit), one);
        store_codes_from_bytes(codes + i, _mm256_castsi256_si128(b01));
        store_codes_from_bytes(codes + i + 16, _mm256_extracti128_si256(b01, 1));
      }
      break;
    }
    default:
      break;
  }
  unpack_bits_scalar(words + i * bits / 32, n - i, bits, codes + i);
}

uint16_t max_u16_avx2(const uint16_t* x, int64_t n) {
  int64_t i = 0;
  __m256i m = _mm256_setzero_si256();
  for (; i + 16 <= n; i += 16) m = _mm256_max_epu16(m, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
  alignas(32) uint16_t lanes[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m);
  uint16_t r = 0;
  for (uint16_t v : lanes) r = v > r ? v : r;
  for (; i < n; ++i) r = x[i] > r ? x[i] : r;
  return r;
}

}  // namespace

void install_avx2_pack(Kernels& k) {
  k.pack_bits = pack_bits_avx2;
  k.unpack_bits = unpack_bits_avx2;
  k.max_u16 = max_u16_avx2;
}

}  // namespace hwkv
#endif
