// model_q8.cuh — Q8_0 weights on the GPU (model_q8.cu), used in place as GGUF stores them: per row, blocks of
// 32 values, each block a binary16 scale d followed by 32 int8 q (34 bytes, so blocks are only 2-byte aligned);
// value = d * q.
//
// The products follow the ABI's Q8_0 contract (hwkv_model.h, the CPU core's core/src/kernels_matmul.cpp and
// simd/*/matmul*.cpp): the activations are quantized per 32-value block to int8 with a float scale
// (dx = max|x| / 127, q = round-to-nearest-even(x * (1 / dx)), the same float32 operations as the CPU core, so
// the same x gives the same codes), and each block's dot product is an exact int32 sum (dp4a) scaled by
// dw * dx and accumulated in float32. Only the float32 accumulation order differs from the CPU core.
//
//   q8_quantize   x [n_tok, ldx] f32 -> codes [n_tok, n_in] int8 + scales [n_tok, n_in / 32] f32 in `act`
//   q8_gemv       <= kGemvMaxTok rows (gemv.cuh): one pass over the weights for all rows (the F16/BF16 GEMV's structure,
//                 4 warps x 4 rows per CTA, the warps split n_in, fixed-order reduction); optional gate|up
//                 SwiGLU epilogue
//   q8_gemm       any number of rows: 64 weight rows x 64 tokens per CTA, 4 blocks of k per shared-memory stage
//   q8_embed      token rows of a Q8_0 table widened to f32 (d * q: bit-identical to the CPU core)
#ifndef HWKV_CUDA_MODEL_Q8_CUH
#define HWKV_CUDA_MODEL_Q8_CUH

#include <cstddef>
#include <cstdint>

#include "common.cuh"

namespace hwkv_cuda {

constexpr int kQ8Block = 32;
constexpr int kQ8BlockBytes = 34;

// Bytes of the quantized activations of n_tok rows of n_in (codes, then 16-byte aligned scales).
size_t q8_act_bytes(int64_t n_tok, int64_t n_in);

// Quantizes x (n_tok rows of n_in, row stride ldx) into act (q8_act_bytes(n_tok, n_in) bytes, 16-byte aligned).
hwkv_status q8_quantize(const char* fn, const float* x, int64_t ldx, int64_t n_tok, int64_t n_in, void* act);

// y[n_tok, n_out] (row stride ldy) = beta * y + x . W^T, x already quantized into act. W: n_out Q8_0 rows of
// n_in (n_in % 32 == 0), 2-byte aligned. gemv: n_tok <= kGemvMaxTok.
// glu (gemv only): W holds 2 n_out rows (gate, then up) and y[t, i] = silu(gate_i) * up_i (beta unused).
hwkv_status q8_gemv(const char* fn, const uint8_t* W, int64_t n_out, int64_t n_in, const void* act, int64_t n_tok,
                    float* y, int64_t ldy, float beta, bool glu);
hwkv_status q8_gemm(const char* fn, const uint8_t* W, int64_t n_out, int64_t n_in, const void* act, int64_t n_tok,
                    float* y, int64_t ldy, float beta);

// x[t, 0..D) = row tokens[t] of the Q8_0 table [n_vocab, D] widened to f32.
hwkv_status q8_embed(const char* fn, const uint8_t* table, int64_t D, const int32_t* tokens, int64_t n_tok, float* x);

}  // namespace hwkv_cuda

#endif
