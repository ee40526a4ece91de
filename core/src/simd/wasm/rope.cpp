// WASM SIMD128 RoPE rotation (mul + add, bit-identical to the scalar kernel).
#include "wasm_common.h"
#if defined(HWKV_WASM_BODY)
#include "../../common.h"
#include "../../dispatch.h"

namespace hwkv {
namespace {

void rope_rotate_wasm(float* x, int64_t n_vec, int64_t stride, int32_t rotary_dim, int32_t style, const float* C,
                      const float* S) {
  const int32_t half = rotary_dim / 2;
  for (int64_t v = 0; v < n_vec; ++v) {
    float* y = x + v * stride;
    int32_t i = 0;
    if (style == HWKV_ROPE_NEOX) {
      for (; i + 4 <= half; i += 4) {
        const v128_t a = wasm_v128_load(y + i), b = wasm_v128_load(y + i + half);
        const v128_t ya = wasm_f32x4_add(wasm_f32x4_mul(a, wasm_v128_load(C + i)), wasm_f32x4_mul(b, wasm_v128_load(S + i)));
        const v128_t yb =
            wasm_f32x4_add(wasm_f32x4_mul(b, wasm_v128_load(C + i + half)), wasm_f32x4_mul(a, wasm_v128_load(S + i + half)));
        wasm_v128_store(y + i, ya);
        wasm_v128_store(y + i + half, yb);
      }
      for (; i < half; ++i) {
        const float a = y[i], b = y[i + half];
        y[i] = a * C[i] + b * S[i];
        y[i + half] = b * C[i + half] + a * S[i + half];
      }
    } else {
      for (; i + 4 <= rotary_dim; i += 4) {
        const v128_t a = wasm_v128_load(y + i);
        const v128_t sw = wasm_i32x4_shuffle(a, a, 1, 0, 3, 2);
        wasm_v128_store(y + i, wasm_f32x4_add(wasm_f32x4_mul(a, wasm_v128_load(C + i)), wasm_f32x4_mul(sw, wasm_v128_load(S + i))));
      }
      for (; i < rotary_dim; i += 2) {
        const float a = y[i], b = y[i + 1];
        y[i] = a * C[i] + b * S[i];
        y[i + 1] = b * C[i + 1] + a * S[i + 1];
      }
    }
  }
}

}  // namespace

void install_wasm_rope(Kernels& k) { k.rope_rotate = rope_rotate_wasm; }

}  // namespace hwkv
#endif
