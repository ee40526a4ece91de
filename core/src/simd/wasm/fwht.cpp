// WASM SIMD128 FWHT: strides 1 and 2 in-register, strides >= 4 as vector butterflies (bit-identical to scalar).
#include "wasm_common.h"
#if defined(HWKV_WASM_BODY)
#include "../../dispatch.h"
#include "../../fwht.h"

namespace hwkv {
namespace {

void fwht_strides_wasm(float* x, int64_t len, int64_t h_begin, int64_t h_end) {
  for (int64_t h = h_begin; h < h_end && h < len; h *= 2) {
    for (int64_t i = 0; i < len; i += 2 * h) {
      float* a = x + i;
      float* b = x + i + h;
      for (int64_t j = 0; j < h; j += 4) {
        const v128_t u = wasm_v128_load(a + j), v = wasm_v128_load(b + j);
        wasm_v128_store(a + j, wasm_f32x4_add(u, v));
        wasm_v128_store(b + j, wasm_f32x4_sub(u, v));
      }
    }
  }
}

void fwht_row_wasm(float* x, int64_t n, float scale) {
  if (n < 4) {
    fwht_row_scalar(x, n, scale);
    return;
  }
  const v128_t s1 = wasm_i32x4_make(0, INT32_MIN, 0, INT32_MIN);
  const v128_t s2 = wasm_i32x4_make(0, 0, INT32_MIN, INT32_MIN);
  const int64_t blk = n < kFwhtBlock ? n : kFwhtBlock;
  for (int64_t c = 0; c < n; c += blk) {
    float* y = x + c;
    for (int64_t i = 0; i < blk; i += 4) {
      v128_t a = wasm_v128_load(y + i);
      a = wasm_f32x4_add(wasm_i32x4_shuffle(a, a, 1, 0, 3, 2), wasm_v128_xor(a, s1));
      a = wasm_f32x4_add(wasm_i32x4_shuffle(a, a, 2, 3, 0, 1), wasm_v128_xor(a, s2));
      wasm_v128_store(y + i, a);
    }
    fwht_strides_wasm(y, blk, 4, blk);
  }
  fwht_strides_wasm(x, n, blk, n);
  if (scale != 1.0f) {
    const v128_t s = wasm_f32x4_splat(scale);
    for (int64_t i = 0; i < n; i += 4) wasm_v128_store(x + i, wasm_f32x4_mul(wasm_v128_load(x + i), s));
  }
}

}  // namespace

void install_wasm_fwht(Kernels& k) { k.fwht_row = fwht_row_wasm; }

}  // namespace hwkv
#endif
