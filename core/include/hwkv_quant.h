/*
 * hwkv_quant.h — quantizers and calibration algebra of the hogwild-kv core (AQUA-KV building blocks).
 *
 * Same conventions as hwkv.h (plain C, hwkv_status + hwkv_last_error(), caller-owned host buffers,
 * row-major shapes [outer, ..., inner]). The CPU core returns its table from hwkv_cpu_quant_api(); a CUDA
 * library may export `const hwkv_quant_api* hwkv_cuda_quant_api(void)` with the same table type later.
 *
 * Every function is stateless: parameters, grid and data come in with each call (no handles). The calls
 * are meant for whole chunks (e.g. 128 tokens × all KV heads of one layer): per-call set-up (grid layout
 * for the search, sign vector) is O(n·d + C) and negligible against the chunk.
 *
 * ---------------------------------------------------------------------------------------------------
 * HIGGS quantizer (vector quantization after a randomized Hadamard rotation)
 * ---------------------------------------------------------------------------------------------------
 *   Input  x[n_tok, C]: one row per token, C channels = all KV heads of one layer, head-major.
 *   Groups: channels [j·g, (j+1)·g) of a row, g a power of two, C % g == 0 (C not a multiple of g is
 *           HWKV_ERR_INVALID_ARGUMENT: nothing is padded, so storage never grows; pick g = the largest
 *           power of two <= 1024 dividing C — for C = 640 that is g = 128).
 *   Signs:  with use_signs, s_c = ±1 per channel c in [0, C) (hwkv_quant_sign below); else s_c = 1.
 *   Scale:  S = fp16(‖x_group‖₂) (norm summed in double, rounded to float, then to binary16 RNE),
 *           one per (token, group). S == 0 (zero group, or norm below the fp16 range) -> codes 0,
 *           decodes to exact zeros. A norm above 65504 (fp16 max) or a non-finite input is
 *           HWKV_ERR_OUT_OF_RANGE.
 *   Rotate: z = H_g (s ⊙ x_group) / S, H_g the unnormalised Sylvester Hadamard matrix (hwkv_api.fwht).
 *           Since H_g/√g is orthonormal, ‖z‖² = g·‖x‖²/S² ≈ g: coordinates have unit mean square, so a
 *           N(0,1) vector maps to ≈N(0,1) coordinates and grids optimal for N(0, I_d) apply directly.
 *   Pieces: z cut into g/d consecutive d-dim pieces (d ∈ {1,2,4,8}); piece k of group j of token t has
 *           global piece index (t·C + j·g)/d + k.
 *   Codes:  index of the nearest grid point: argmin_i ‖z_piece − G_i‖², evaluated in float32 as
 *           argmax_i (Σ_k z_k·G_ik − ½‖G_i‖²) with the sum taken k = 0..d-1 left to right, no fused
 *           multiply-add (so every backend and SIMD level produces the same codes); ties -> lowest i.
 *           d == 1 uses sorted thresholds (midpoints of neighbouring values): identical except at exact
 *           midpoints. Grid: float32 [n, d], n a power of two in 2..65536 (bits = log2 n, 1..16).
 *   Packing: all n_tok·C/d codes, in piece order, as ONE continuous stream through hwkv_api.pack_bits
 *           (LSB-first, uint32 words): n_words = ceil(n_tok·(C/d)·bits / 32).
 *   Scales: uint16 fp16 bit patterns [n_tok, C/g].
 *   Decode: x̂_group = s ⊙ (S/g) · H_g [G_code_0, G_code_1, ...]; accumulate != 0 adds x̂ to the output
 *           (y += x̂, for "prediction + residual" reconstructions) instead of overwriting it.
 *   Bytes:  4·n_words + 2·n_tok·(C/g)   (hwkv_quant_api.higgs_size).
 *
 * ---------------------------------------------------------------------------------------------------
 * Uniform quantizer (asymmetric min/max, KIVI-style baseline)
 * ---------------------------------------------------------------------------------------------------
 *   Input x[n_tok, C]. bits in 1..8 (2, 3, 4, 8 are the usual). levels L = 2^bits − 1.
 *   axis 0 (per token):   a group = `group` consecutive channels of one token; C % group == 0.
 *                         scales/zeros [n_tok, C/group].
 *   axis 1 (per channel): a group = `group` consecutive tokens of one channel (KIVI keys); the last
 *                         group of a call may be shorter (n_tok % group != 0). scales/zeros
 *                         [ceil(n_tok/group), C].
 *   Per group: zero Z = fp16(min), scale D = fp16((max − min)/L) (computed in float); code =
 *              clamp(round_half_even((x − Z)/D), 0, L) (0 when D == 0); decode x̂ = code·D + Z (float).
 *              Non-finite input or |value| beyond the fp16 range is HWKV_ERR_OUT_OF_RANGE.
 *   Codes: n_tok·C codes in row-major [n_tok, C] order, one continuous stream of `bits`-bit codes:
 *          n_words = ceil(n_tok·C·bits/32).  Bytes: 4·n_words + 2·(scales + zeros).
 *
 * ---------------------------------------------------------------------------------------------------
 * Ridge regression (closed-form least squares with an intercept, accumulated in chunks)
 * ---------------------------------------------------------------------------------------------------
 *   Rows x[n, p] (inputs) and y[n, q] (targets), float32. The design matrix has an implicit bias column:
 *   X̃ = [x, 1] with p1 = p + 1 columns. Caller-owned double accumulators:
 *     xtx[p1, p1] += X̃ᵀX̃ (full symmetric matrix kept), xty[p1, q] += X̃ᵀy, yy[q] += Σ_rows y² (optional).
 *   Products of a call are formed in float32 over blocks of at most 256 rows, each block's sums then
 *   added into the double accumulators (so precision does not degrade with the number of rows).
 *   Memory is O(p1² + p1·q), whatever the number of rows accumulated.
 *   Solve: (xtx + λ·I) W = xty with λ = lambda_rel · mean(diag xtx) (bias entry included), by Cholesky
 *   in double; W float32 [p1, q]: rows 0..p-1 weights, row p the bias, i.e. ŷ = x·W[0:p] + W[p].
 *   A matrix that is not positive definite (e.g. lambda_rel = 0 with collinear inputs) is
 *   HWKV_ERR_INVALID_ARGUMENT naming the failing pivot (raise lambda_rel). xtx/xty are not modified.
 *   Apply: y[n, q] = x[n, p] · W[0:p] + W[p] for a W laid out as the solve writes it (the calibration's
 *   predictions), float32 products summed in float32 (p in order, bias first; the CUDA table sums in tiles).
 */
#ifndef HWKV_QUANT_H
#define HWKV_QUANT_H

#include "hwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HWKV_QUANT_ABI_VERSION 2

typedef struct hwkv_higgs_params {
  int32_t channels;  /* C >= 1, a multiple of group                                                      */
  int32_t group;     /* g: power of two, 1..65536, g % dim == 0 (AQUA-KV uses min(1024, C))               */
  int32_t dim;       /* d: 1, 2, 4 or 8                                                                   */
  int32_t n_points;  /* n: power of two, 2..65536; bits per code = log2(n)                                */
  int32_t use_signs; /* 0 = no sign flips, 1 = random ±1 per channel from seed                            */
  uint32_t seed;     /* sign seed (ignored without use_signs)                                            */
} hwkv_higgs_params;

typedef enum hwkv_uniform_axis { HWKV_UNIFORM_PER_TOKEN = 0, HWKV_UNIFORM_PER_CHANNEL = 1 } hwkv_uniform_axis;

typedef struct hwkv_uniform_params {
  int32_t channels; /* C >= 1                                                                            */
  int32_t bits;     /* 1..8                                                                              */
  int32_t axis;     /* hwkv_uniform_axis                                                                 */
  int32_t group;    /* >= 1: channels per group (axis 0, divides C) or tokens per group (axis 1)         */
} hwkv_uniform_params;

typedef struct hwkv_quant_api {
  uint32_t abi_version; /* HWKV_QUANT_ABI_VERSION                                                        */
  uint32_t size;        /* sizeof(hwkv_quant_api) of the producer                                        */

  /* -- HIGGS ----------------------------------------------------------------------------------------- */
  /* Sizes of n_tok tokens: code words (uint32) and scales (fp16 values). Either output may be NULL.     */
  hwkv_status (*higgs_size)(const hwkv_higgs_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales);
  /* x[n_tok, C] -> codes[n_words] (n_words >= higgs_size's) and scales[n_tok, C/g]. grid float [n, d].  */
  hwkv_status (*higgs_encode)(const hwkv_higgs_params* p, const float* grid, const float* x, int64_t n_tok,
                              uint32_t* codes, int64_t n_words, uint16_t* scales);
  /* codes + scales -> y[n_tok, C] (accumulate != 0: y += x̂).                                          */
  hwkv_status (*higgs_decode)(const hwkv_higgs_params* p, const float* grid, const uint32_t* codes,
                              int64_t n_words, const uint16_t* scales, int64_t n_tok, float* y,
                              int32_t accumulate);
  /* Nearest grid point of m pieces z[m, d] (the search HIGGS uses): idx[m]. For grid generators.        */
  hwkv_status (*grid_nearest)(const float* grid, int32_t n_points, int32_t dim, const float* z, int64_t m,
                              uint16_t* idx);
  /* signs[C] = s_c (±1.0f) for a seed, as used by use_signs.                                           */
  hwkv_status (*higgs_signs)(uint32_t seed, int32_t channels, float* signs);

  /* -- Uniform --------------------------------------------------------------------------------------- */
  /* n_words of codes and the number of fp16 scales (== number of fp16 zeros).                          */
  hwkv_status (*uniform_size)(const hwkv_uniform_params* p, int64_t n_tok, int64_t* n_words, int64_t* n_scales);
  hwkv_status (*uniform_encode)(const hwkv_uniform_params* p, const float* x, int64_t n_tok, uint32_t* codes,
                                int64_t n_words, uint16_t* scales, uint16_t* zeros);
  hwkv_status (*uniform_decode)(const hwkv_uniform_params* p, const uint32_t* codes, int64_t n_words,
                                const uint16_t* scales, const uint16_t* zeros, int64_t n_tok, float* y,
                                int32_t accumulate);

  /* -- Ridge regression ------------------------------------------------------------------------------ */
  /* xtx[(p+1)²] += X̃ᵀX̃, xty[(p+1)·q] += X̃ᵀy, yy[q] += Σ y² (yy may be NULL). n >= 0 rows.          */
  hwkv_status (*ridge_accumulate)(const float* x, const float* y, int64_t n, int32_t p, int32_t q, double* xtx,
                                  double* xty, double* yy);
  /* w[(p+1)·q] = (xtx + lambda_rel·mean(diag xtx)·I)⁻¹ xty.                                            */
  hwkv_status (*ridge_solve)(const double* xtx, const double* xty, int32_t p, int32_t q, double lambda_rel,
                             float* w);
  /* y[n, q] = x[n, p] · w[0:p, :] + w[p, :] (w as ridge_solve writes it). n >= 0 rows; p >= 0.          */
  hwkv_status (*linear_apply)(const float* x, int64_t n, int32_t p, int32_t q, const float* w, float* y);
} hwkv_quant_api;

/* The CPU core's table (native addon and WASM). */
HWKV_API const hwkv_quant_api* hwkv_cpu_quant_api(void);

/*
 * Sign of channel c for seed s (what higgs_signs computes), written out so other implementations can
 * reproduce it: v = (uint64)s·2^32 + c + 1; v = splitmix64_mix(v · 0x9E3779B97F4A7C15 mod 2^64), with
 * splitmix64_mix(z) = { z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
 * z ^= z >> 31 }; s_c = (v >> 63) ? -1 : +1.
 */

#ifdef __cplusplus
}
#endif
#endif /* HWKV_QUANT_H */
