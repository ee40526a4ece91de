// matmul.h — weight x activation products for the model forward: y[t, o] = sum_i W[o, i] * x[t, i].
//
//   W [n_out, n_in] row-major, used in place (may point into an mmap'ed GGUF file; never converted as a
//   whole). Element types use GGML's type ids so a GGUF loader can pass tensor types through:
//     HWKV_WT_F32  = 0   float32
//     HWKV_WT_F16  = 1   IEEE binary16
//     HWKV_WT_Q8_0 = 8   GGUF Q8_0: blocks of 32 values {uint16 f16 scale d; int8 qs[32]} (34 bytes),
//                        value = d * qs[j]; n_in % 32 == 0; row o starts at byte o * (n_in / 32) * 34
//     HWKV_WT_BF16 = 30  bfloat16 (upper half of a float32)
//   x [n_tok, n_in] f32, y [n_tok, ldy] f32 (ldy >= n_out; 0 means n_out). float32 accumulation.
//   accumulate != 0: y += W x (fuses the residual add), else y = W x.
//
//   Q8_0 follows llama.cpp: activations are quantized per 32-value block to int8 with a float scale
//   (d = max|x| / 127, q = round(x / d)) and the block dot products are exact int32 sums, scaled by
//   d_w * d_x. F32/F16/BF16 are plain float dot products (F16/BF16 widened exactly to float).
//
//   n_tok > 1 (prefill; batched decode of several Hogwild! workers) is register-tiled so each weight
//   row is streamed from memory once for all tokens. Rows are split across the pool's threads.
//   pool == nullptr runs on the calling thread only.
//
//   Paths: AVX2+FMA+F16C (native x86, HWKV_HAVE_AVX2 and the CPU supports it), WASM SIMD128
//   (HWKV_HAVE_WASM_SIMD), portable scalar otherwise or when forced (set_force_scalar).
#ifndef HWKV_KERNELS_MATMUL_H
#define HWKV_KERNELS_MATMUL_H

#include <cstdint>

#include "../common.h"
#include "threadpool.h"

namespace hwkv {
namespace kern {

enum WType : int32_t { HWKV_WT_F32 = 0, HWKV_WT_F16 = 1, HWKV_WT_Q8_0 = 8, HWKV_WT_BF16 = 30 };

// Bytes of one weight row of n_in elements (0 for an unknown type or a Q8_0 n_in not divisible by 32).
int64_t row_bytes(int32_t wtype, int64_t n_in);

hwkv_status matmul(const void* W, int32_t wtype, int64_t n_out, int64_t n_in, const float* x, int64_t n_tok,
                   float* y, ThreadPool* pool);

// One output of matmul_multi: several weight matrices applied to the same x in ONE dispatch (Q/K/V,
// gate/up), sharing the activation quantization of Q8_0.
struct MatmulOut {
  const void* W;
  int32_t wtype;
  int32_t accumulate;  // 0: y = W x; 1: y += W x
  int64_t n_out;
  float* y;            // [n_tok, ldy]
  int64_t ldy;         // 0 = n_out
};
hwkv_status matmul_multi(const MatmulOut* outs, int32_t n_outs, int64_t n_in, const float* x, int64_t n_tok,
                         ThreadPool* pool);

// Test hooks: force the portable scalar path (1) or best available (0); name of the path in effect.
void set_force_scalar(bool force);
const char* matmul_path();

}  // namespace kern
}  // namespace hwkv

#endif
