// ops.h — small fused row operations of the model forward (all f32, portable code written so compilers
// vectorize it; they are memory-trivial next to the matmuls). In-place use (out == x) is allowed
// everywhere unless stated otherwise.
#ifndef HWKV_KERNELS_OPS_H
#define HWKV_KERNELS_OPS_H

#include <cstdint>

namespace hwkv {
namespace kern {

// out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w[:]   (w may be null: no gain). Sum of squares in
// double (as ggml does).
void rmsnorm(const float* x, const float* w, int64_t n_tok, int64_t n, float eps, float* out);

// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i]   (Llama / Mistral / Qwen MLP)
void swiglu(const float* gate, const float* up, int64_t n, float* out);

// out[i] = a[i] + b[i]
void add(const float* a, const float* b, int64_t n, float* out);
// out[i] = a[i] * s
void scale(const float* a, float s, int64_t n, float* out);

// In place, one row of n: x <- softmax(x / temperature) (temperature > 0), max-subtracted. Returns
// log(sum(exp(x/temperature - max))) + max/temperature (the log-partition), handy for log-probs.
double softmax(float* x, int64_t n, float temperature);

// Index of the first maximum of x[0..n) (NaNs are skipped; -1 for n <= 0 or all NaN).
int64_t argmax(const float* x, int64_t n);

// exp(x) for a row, ~2 ulp; exp(-inf) = 0, large x saturates to +inf.
void exp_row(const float* x, int64_t n, float* out);

// Row conversions. f32 -> f16/bf16 round to nearest even (overflow -> inf, nan kept as nan).
void f16_to_f32_row(const uint16_t* src, int64_t n, float* dst);
void f32_to_f16_row(const float* src, int64_t n, uint16_t* dst);
void bf16_to_f32_row(const uint16_t* src, int64_t n, float* dst);
void f32_to_bf16_row(const float* src, int64_t n, uint16_t* dst);

// Row `row` of a weight matrix [n_rows, n] of GGML type wtype (F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30),
// widened to f32 (token-embedding lookup). Returns false for an unknown type / bad Q8_0 length.
bool dequantize_row(const void* W, int32_t wtype, int64_t n, int64_t row, float* out);

}  // namespace kern
}  // namespace hwkv

#endif
