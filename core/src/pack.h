// pack.h — bit packing of 1..16-bit codes into an LSB-first stream of uint32 words (see hwkv.h).
#ifndef HWKV_CORE_PACK_H
#define HWKV_CORE_PACK_H

#include <cstdint>

#include "common.h"

namespace hwkv {

// Number of uint32 words that hold n codes of `bits` bits.
inline int64_t packed_words(int64_t n, int32_t bits) { return (n * bits + 31) / 32; }

// Validating entry points (the ABI calls these; engine code may call them directly).
hwkv_status pack_bits(const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words, int64_t n_words);
hwkv_status unpack_bits(const uint32_t* words, int64_t n_words, int32_t bits, uint16_t* codes, int64_t n);

}  // namespace hwkv

#endif
