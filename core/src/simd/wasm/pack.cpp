// WASM SIMD128 bit packing: fast paths for 1, 2, 4, 8 and 16 bits; other widths use the scalar loop.
#include "wasm_common.h"
#if defined(HWKV_WASM_BODY)
#include <cstring>

#include "../../dispatch.h"

namespace hwkv {
namespace {

inline v128_t ld(const void* p) { return wasm_v128_load(p); }
inline void st(void* p, v128_t v) { wasm_v128_store(p, v); }

// 16 codes (each < 256) -> 16 bytes in order.
inline v128_t codes_to_bytes(const uint16_t* c) { return wasm_u8x16_narrow_i16x8(ld(c), ld(c + 8)); }
// 32 bytes of values < 2^w, pairs (lo, hi) -> 16 bytes lo | hi << w.
inline v128_t merge_pairs(v128_t x0, v128_t x1, uint32_t w) {
  const v128_t m = wasm_i16x8_splat(0x00FF);
  const v128_t t0 = wasm_v128_and(wasm_v128_or(x0, wasm_u16x8_shr(x0, 8 - w)), m);
  const v128_t t1 = wasm_v128_and(wasm_v128_or(x1, wasm_u16x8_shr(x1, 8 - w)), m);
  return wasm_u8x16_narrow_i16x8(t0, t1);
}
inline void store_codes(uint16_t* c, v128_t bytes16) {
  st(c, wasm_u16x8_extend_low_u8x16(bytes16));
  st(c + 8, wasm_u16x8_extend_high_u8x16(bytes16));
}

void pack_bits_wasm(const uint16_t* codes, int64_t n, int bits, uint32_t* words) {
  int64_t i = 0;
  switch (bits) {
    case 16:
      std::memcpy(words, codes, static_cast<size_t>(n / 2) * 4);
      if (n & 1) words[n / 2] = codes[n - 1];
      return;
    case 8:
      for (; i + 16 <= n; i += 16) st(words + i / 4, codes_to_bytes(codes + i));
      break;
    case 4:
      for (; i + 32 <= n; i += 32) st(words + i / 8, merge_pairs(codes_to_bytes(codes + i), codes_to_bytes(codes + i + 16), 4));
      break;
    case 2:
      for (; i + 64 <= n; i += 64) {
        const v128_t q0 = merge_pairs(codes_to_bytes(codes + i), codes_to_bytes(codes + i + 16), 2);
        const v128_t q1 = merge_pairs(codes_to_bytes(codes + i + 32), codes_to_bytes(codes + i + 48), 2);
        st(words + i / 16, merge_pairs(q0, q1, 4));
      }
      break;
    case 1:
      for (; i + 32 <= n; i += 32) {
        const uint32_t lo = wasm_i8x16_bitmask(wasm_i16x8_shl(codes_to_bytes(codes + i), 7));
        const uint32_t hi = wasm_i8x16_bitmask(wasm_i16x8_shl(codes_to_bytes(codes + i + 16), 7));
        words[i / 32] = lo | (hi << 16);
      }
      break;
    default:
      break;
  }
  pack_bits_scalar(codes + i, n - i, bits, words + i * bits / 32);
}

void unpack_bits_wasm(const uint32_t* words, int64_t n, int bits, uint16_t* codes) {
  int64_t i = 0;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words);
  switch (bits) {
    case 16:
      std::memcpy(codes, words, static_cast<size_t>(n) * 2);
      return;
    case 8:
      for (; i + 16 <= n; i += 16) store_codes(codes + i, ld(bytes + i));
      break;
    case 4: {
      const v128_t m = wasm_i8x16_splat(0x0F);
      for (; i + 32 <= n; i += 32) {
        const v128_t b = ld(bytes + i / 2);
        const v128_t lo = wasm_v128_and(b, m), hi = wasm_v128_and(wasm_u16x8_shr(b, 4), m);
        store_codes(codes + i, wasm_i8x16_shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
        store_codes(codes + i + 16, wasm_i8x16_shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
      }
      break;
    }
    case 2: {
      const v128_t m = wasm_i8x16_splat(0x03);
      for (; i + 64 <= n; i += 64) {
        const v128_t b = ld(bytes + i / 4);
        const v128_t c0 = wasm_v128_and(b, m), c1 = wasm_v128_and(wasm_u16x8_shr(b, 2), m);
        const v128_t c2 = wasm_v128_and(wasm_u16x8_shr(b, 4), m), c3 = wasm_v128_and(wasm_u16x8_shr(b, 6), m);
        const v128_t x01l = wasm_i8x16_shuffle(c0, c1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const v128_t x23l = wasm_i8x16_shuffle(c2, c3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const v128_t x01h = wasm_i8x16_shuffle(c0, c1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        const v128_t x23h = wasm_i8x16_shuffle(c2, c3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        store_codes(codes + i, wasm_i16x8_shuffle(x01l, x23l, 0, 8, 1, 9, 2, 10, 3, 11));
        store_codes(codes + i + 16, wasm_i16x8_shuffle(x01l, x23l, 4, 12, 5, 13, 6, 14, 7, 15));
        store_codes(codes + i + 32, wasm_i16x8_shuffle(x01h, x23h, 0, 8, 1, 9, 2, 10, 3, 11));
        store_codes(codes + i + 48, wasm_i16x8_shuffle(x01h, x23h, 4, 12, 5, 13, 6, 14, 7, 15));
      }
      break;
    }
    case 1: {
      const v128_t idx_lo = wasm_i8x16_make(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
      const v128_t idx_hi = wasm_i8x16_make(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
      const v128_t bit = wasm_i8x16_make(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
      const v128_t one = wasm_i8x16_splat(1);
      for (; i + 32 <= n; i += 32) {
        const v128_t w = wasm_i32x4_splat(static_cast<int32_t>(words[i / 32]));
        const v128_t lo = wasm_v128_and(wasm_i8x16_eq(wasm_v128_and(wasm_i8x16_swizzle(w, idx_lo), bit), bit), one);
        const v128_t hi = wasm_v128_and(wasm_i8x16_eq(wasm_v128_and(wasm_i8x16_swizzle(w, idx_hi), bit), bit), one);
        store_codes(codes + i, lo);
        store_codes(codes + i + 16, hi);
      }
      break;
    }
    default:
      break;
  }
  unpack_bits_scalar(words + i * bits / 32, n - i, bits, codes + i);
}

uint16_t max_u16_wasm(const uint16_t* x, int64_t n) {
  int64_t i = 0;
  v128_t m = wasm_i16x8_splat(0);
  for (; i + 8 <= n; i += 8) m = wasm_u16x8_max(m, ld(x + i));
  uint16_t lanes[8];
  st(lanes, m);
  uint16_t r = 0;
  for (uint16_t v : lanes) r = v > r ? v : r;
  for (; i < n; ++i) r = x[i] > r ? x[i] : r;
  return r;
}

}  // namespace

void install_wasm_pack(Kernels& k) {
  k.pack_bits = pack_bits_wasm;
  k.unpack_bits = unpack_bits_wasm;
  k.max_u16 = max_u16_wasm;
}

}  // namespace hwkv
#endif
