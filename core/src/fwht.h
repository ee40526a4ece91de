// fwht.h — in-place unnormalised Sylvester fast Walsh–Hadamard transform over rows (see hwkv.h).
#ifndef HWKV_CORE_FWHT_H
#define HWKV_CORE_FWHT_H

#include <cstdint>

#include "common.h"

namespace hwkv {

constexpr int32_t kFwhtMaxN = 1 << 20;
// Rows are processed in chunks of this many floats for strides below it (cache blocking; results are
// bit-identical to the plain stride loop because every element sees the same additions).
constexpr int64_t kFwhtBlock = 4096;

// x[rows, n] <- scale * H_n x[rows, n]; validates.
hwkv_status fwht(float* x, int64_t rows, int32_t n, float scale);

}  // namespace hwkv

#endif
