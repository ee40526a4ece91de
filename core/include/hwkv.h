/*
 * hwkv.h — the C ABI of the hogwild-kv core.
 *
 * One narrow waist for every backend: the CPU core (core/src), the Node-API addon (bindings/napi), the
 * WebAssembly module (bindings/wasm) and the CUDA library (cuda/) all speak exactly these functions.
 *
 *   - Plain C, no C++ exceptions cross it. Every fallible call returns hwkv_status; on failure the
 *     library keeps a message, read with hwkv_last_error() (thread-local, valid until the next failing
 *     call on the same thread).
 *   - Opaque handles (hwkv_store_t*), plain buffers owned by the caller. Nothing returned points into
 *     library memory except hwkv_last_error() and hwkv_build_info().
 *   - Buffers are host memory on every backend. The CUDA library copies in and out itself; its block
 *     store lives on the device.
 *   - The whole ABI is also available as a table of function pointers (hwkv_api). The CPU core returns
 *     its table from hwkv_cpu_api(); the CUDA shared library exports hwkv_cuda_api() with the same
 *     table type, so the addon wraps both with one code path (dlopen + dlsym("hwkv_cuda_api")).
 *
 * Conventions (stated once, used everywhere)
 *   - Shapes are written [outer, ..., inner], row-major, contiguous. Units: tokens, elements, bytes.
 *   - Q/K/V per token are head-major: x[t, h, d] at x[(t * n_head + h) * head_dim + d].
 *   - Positions are int32 token positions, and may be negative (a negative position is a rotation backwards).
 *   - Log-sum-exp values (lse) are natural log (base e) of sum(exp(score)), scores already scaled.
 *   - float is IEEE binary32; accumulation is float32 unless a function says otherwise.
 */
#ifndef HWKV_H
#define HWKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define HWKV_API __declspec(dllexport)
#else
#define HWKV_API __attribute__((visibility("default")))
#endif

#define HWKV_ABI_VERSION 1

/* ------------------------------------------------------------------------------------------------ */
/* Status codes                                                                                     */
/* ------------------------------------------------------------------------------------------------ */
typedef enum hwkv_status {
  HWKV_OK = 0,
  HWKV_ERR_INVALID_ARGUMENT = 1, /* a parameter is malformed: null pointer, wrong length, bad enum   */
  HWKV_ERR_OUT_OF_RANGE = 2,     /* an index/handle/position/bit width outside its allowed range      */
  HWKV_ERR_OUT_OF_MEMORY = 3,    /* host or device allocation failed; the object is left unchanged    */
  HWKV_ERR_UNSUPPORTED = 4,      /* valid request this backend does not implement                     */
  HWKV_ERR_DEVICE = 5,           /* CUDA runtime / driver failure; message carries the CUDA text      */
  HWKV_ERR_INTERNAL = 6          /* a bug: please report                                              */
} hwkv_status;

/* ------------------------------------------------------------------------------------------------ */
/* RoPE                                                                                             */
/* ------------------------------------------------------------------------------------------------ */
typedef enum hwkv_rope_style {
  /* Hugging Face "rotate_half" (GGML NEOX): dimension i pairs with i + rotary_dim/2, i < rotary_dim/2. */
  HWKV_ROPE_NEOX = 0,
  /* GGUF / Meta llama (GGML NORMAL): dimension 2i pairs with 2i + 1.                                 */
  HWKV_ROPE_NORMAL = 1
} hwkv_rope_style;

typedef enum hwkv_rope_scaling {
  HWKV_ROPE_SCALING_NONE = 0,   /* inv_freq[i] = theta^(-2i/rotary_dim)                                  */
  HWKV_ROPE_SCALING_LINEAR = 1, /* inv_freq / factor                                                     */
  HWKV_ROPE_SCALING_LLAMA3 = 2, /* Llama-3.1 piecewise: factor, low_freq_factor, high_freq_factor,
                                   original_max_position                                                */
  HWKV_ROPE_SCALING_YARN = 3    /* YaRN frequency blend: factor, beta_fast, beta_slow,
                                   original_max_position. Only the rotation: the attention factor
                                   (mscale) is reported by hwkv_rope_inv_freq and applied by the caller */
} hwkv_rope_scaling;

typedef struct hwkv_rope_params {
  int32_t head_dim;             /* elements per head                                                    */
  int32_t rotary_dim;           /* even, 2 <= rotary_dim <= head_dim; dims [rotary_dim, head_dim) untouched */
  int32_t style;                /* hwkv_rope_style                                                      */
  int32_t scaling;              /* hwkv_rope_scaling                                                    */
  double theta;                 /* base, e.g. 10000 or 500000                                           */
  double factor;                /* scaling factor (linear, llama3, yarn)                                */
  double low_freq_factor;       /* llama3                                                               */
  double high_freq_factor;      /* llama3                                                               */
  double original_max_position; /* llama3, yarn                                                         */
  double beta_fast;             /* yarn (default 32)                                                    */
  double beta_slow;             /* yarn (default 1)                                                     */
  int32_t yarn_truncate;        /* yarn: 1 = floor/ceil the correction range (HF default), 0 = not      */
  int32_t reserved;
} hwkv_rope_params;

/* ------------------------------------------------------------------------------------------------ */
/* KV block store                                                                                   */
/* ------------------------------------------------------------------------------------------------ */
typedef struct hwkv_store hwkv_store_t;

typedef enum hwkv_dtype { HWKV_F32 = 0, HWKV_F16 = 1 } hwkv_dtype;

typedef struct hwkv_store_params {
  int32_t n_layer;     /* >= 1                                                                          */
  int32_t n_kv_head;   /* >= 1                                                                          */
  int32_t head_dim;    /* K elements per head, >= 1                                                     */
  int32_t head_dim_v;  /* V elements per head, >= 1 (usually == head_dim)                               */
  int32_t page_tokens; /* tokens per page, >= 1 (e.g. 64)                                               */
  int32_t dtype;       /* hwkv_dtype of stored K/V; HWKV_F32 on every backend, HWKV_F16 where supported */
  int64_t max_bytes;   /* upper bound on page memory; 0 = unlimited. Exceeding it = HWKV_ERR_OUT_OF_MEMORY */
} hwkv_store_params;

typedef struct hwkv_store_stats {
  int64_t bytes_reserved; /* page memory held by the store (pages in use + free pages kept for reuse)   */
  int64_t bytes_in_use;   /* page memory of pages that belong to live blocks                            */
  int32_t pages_in_use;
  int32_t pages_free;
  int32_t blocks_live;
  int32_t reserved;
} hwkv_store_stats;

/*
 * KV codec (compressed cache; store_create_codec). Tokens of a block are grouped in chunks of
 * chunk_tokens (a multiple of page_tokens) starting at s0 = ceil(sinks / page_tokens) * page_tokens, so
 * the first `sinks` tokens of EVERY block (rounded up to a page) stay exact. A chunk [c0, c0+chunk_tokens)
 * is encoded once, in every layer, as soon as c0 + chunk_tokens <= len - buffer (the most recent `buffer`
 * tokens stay exact); its pages are then freed. Encoding happens after block_append and at the end of
 * model_forward (never in the middle of a step). Keys are encoded as stored: rotated at block-local
 * positions (see hwkv.h above). Per chunk and layer, x[n, C] (C = n_kv_head * head_dim, head-major):
 *   UNIFORM: keys per channel (one group = the whole chunk's tokens of one channel; fp16 scale + zero),
 *            values per token (group = the largest divisor of C_v = n_kv_head*head_dim_v that is <= 128;
 *            fp16 scale + zero), `bits` 1..8. Bytes per chunk and layer: 4*ceil(n*C*bits/32) for K and for V
 *            + 4*C (K scales+zeros) + 4*n*(C_v/group) (V scales+zeros).
 *   HIGGS:   keys and values per token, group g = largest power of two <= 1024 dividing C, grid [n, d]
 *            (layer 0 uses grid0 when given); fp16 norm per (token, group); random signs from seed.
 *   AQUA:    AQUA-KV: HIGGS (grid, seed as above) of what linear inter-layer predictors cannot predict.
 *            Keys are handled BEFORE RoPE: the chunk's keys are un-rotated from their block-local
 *            positions with `rope` (required), encoded, and rotated back at the same positions on decode.
 *            Per token, with K̂_l / V̂_l the reconstructions (pre-RoPE keys, values, C channels head-major):
 *              layer 0:  K̂_0 = bk_0 + deq0(q0(K_0 - bk_0)), V̂_0 likewise with bv_0, grid0 (HIGGS): a
 *                        constant predictor (the calibration mean; zeros = plain HIGGS); or fp16 copies of
 *                        K_0, V_0 when layer0_exact != 0 (bk_0, bv_0 unused);
 *              l >= 1:   P = Wk_l K̂_{l-1} + bk_l;             K̂_l = P + deq(q(K_l - P));
 *                        Q = Wv_l [K̂_l ; V̂_{l-1}] + bv_l;     V̂_l = Q + deq(q(V_l - Q)).
 *            `predictors` (copied): bk_0 [Ck], bv_0 [Cv], then for l = 1..n_layer-1 in order, Wk [Ck, Ck],
 *            bk [Ck], Wv [Cv, Ck+Cv], bv [Cv] (nn.Linear layout [out, in], row-major);
 *            n_predictors = Ck + Cv + (n_layer-1)*(Ck²+Ck+Cv·(Ck+Cv)+Cv) floats. The predictor products run on the core's matmul kernels, once per chunk at encode and
 *            once per layer of a chunk per forward at decode (the chain needs layer l-1 of the same chunk:
 *            attention's per-forward decode keeps one layer of pre-RoPE reconstructions as scratch; a read
 *            of one layer (block_read, merge) decodes layers 0..l of that chunk).
 *            Bytes per chunk and layer: as HIGGS (layer 0: grid0, or 2 bytes per value when exact).
 * Reads (attention, block_read, view_read, block_merge) see the decoded values. AQUA: block_merge onto a
 * page boundary of dst (with the codec's rope, or none) moves src's compressed chunks as codes (pre-RoPE keys:
 * only the chunk's block-local start changes), no decode and no re-quantization; other merges copy decoded rows. Attention decodes each
 * compressed chunk at most once per layer and call into a grow-only scratch shared by every sequence.
 * block_write into a compressed token is HWKV_ERR_INVALID_ARGUMENT; block_truncate into a compressed
 * page keeps its decoded values (a partially kept page is decoded back into an exact page).
 */
typedef enum hwkv_kv_codec_type { HWKV_KV_EXACT = 0, HWKV_KV_UNIFORM = 1, HWKV_KV_HIGGS = 2, HWKV_KV_AQUA = 3 } hwkv_kv_codec_type;

typedef struct hwkv_store_codec {
  int32_t type;          /* hwkv_kv_codec_type                                                          */
  int32_t bits;          /* UNIFORM: 1..8                                                               */
  int32_t sinks;         /* >= 0 exact tokens at the start of every block (rounded up to a page)        */
  int32_t buffer;        /* >= 0 most recent exact tokens                                               */
  int32_t chunk_tokens;  /* > 0, multiple of page_tokens                                                */
  int32_t grid_dim;      /* HIGGS: d in {1,2,4,8}                                                       */
  int32_t grid_n;        /* HIGGS: n points (power of two, 2..65536)                                    */
  int32_t grid0_dim;     /* HIGGS layer 0 grid (0 = use grid)                                           */
  int32_t grid0_n;
  uint32_t seed;         /* HIGGS sign seed                                                             */
  const float* grid;     /* HIGGS: [grid_n, grid_dim] (copied)                                          */
  const float* grid0;    /* HIGGS layer 0: [grid0_n, grid0_dim] or NULL (copied)                        */
  /* AQUA only (zero/NULL for the other types): */
  const float* predictors;        /* see AQUA above (copied)                                            */
  int64_t n_predictors;           /* floats in predictors                                               */
  const hwkv_rope_params* rope;   /* the model's RoPE (keys un-rotated before encoding)                 */
  int32_t layer0_exact;           /* 1 = layer 0 stored as fp16 (grid0 ignored)                         */
  int32_t reserved;
  /* Any compressed type: bytes of decoded chunks kept between forwards (0 = none: every forward decodes every
     compressed chunk once per layer). A chunk whose decoded pages (all layers, store dtype) fit the budget
     keeps them after its first decode, so later forwards skip its decode (AQUA: the predictor products)
     at the price of that memory on top of the codes (reported in bytes_scratch). First come, first kept.  */
  int64_t cache_bytes;
} hwkv_store_codec;

typedef struct hwkv_store_codec_stats {
  int64_t bytes_compressed;  /* codes + fp16 scales/zeros of every compressed chunk held                */
  int64_t tokens_compressed; /* tokens of live blocks that are held compressed                          */
  int64_t values_compressed; /* scalars those chunks encode: tokens * n_layer * n_kv_head*(hd+hdv)      */
  int64_t chunks;            /* compressed chunks held                                                  */
  int64_t bytes_scratch;     /* decode scratch held (one layer of the compressed chunks; grow-only;
                                released by the CPU store's trim), the AQUA chain state (one layer of
                                pre-RoPE f32 K̂/V̂ per compressed chunk) and the decoded chunks kept under
                                cache_bytes                                                              */
} hwkv_store_codec_stats;

/*
 * A block is an ordered run of tokens, identical length in every layer. A block's keys are stored
 * already rotated for positions 0..len-1 *local to the block* (position 0 = the block's first token),
 * so a block can sit at any offset of any view without being rewritten. Block ids are small
 * non-negative integers; a freed id may be reused by a later hwkv_block_create.
 *
 * View: an ordered list of block ids. Block j starts at virtual offset o_j = sum_{i<j} len(block_i).
 * A block may appear in several views (at different offsets), but at most once per view.
 */

/* ------------------------------------------------------------------------------------------------ */
/* Attention over views (the heart of Hogwild!)                                                     */
/* ------------------------------------------------------------------------------------------------ */
typedef struct hwkv_attn_batch {
  int32_t n_seq;               /* number of sequences (Hogwild! workers), >= 1                          */
  const int32_t* view_indptr;  /* [n_seq + 1]: sequence s sees view_blocks[view_indptr[s] .. [s+1]);
                                  both indptr arrays start at 0 and are non-decreasing               */
  const int32_t* view_blocks;  /* block ids                                                             */
  const int32_t* q_indptr;     /* [n_seq + 1]: sequence s owns query rows q_indptr[s] .. q_indptr[s+1]) */
  const int32_t* q_pos;        /* [n_q]: virtual position P of each query row inside its view           */
} hwkv_attn_batch;

/* ------------------------------------------------------------------------------------------------ */
/* Function table: every backend fills the same one.                                                */
/* ------------------------------------------------------------------------------------------------ */
typedef struct hwkv_api {
  uint32_t abi_version; /* HWKV_ABI_VERSION                                                             */
  uint32_t size;        /* sizeof(hwkv_api) of the producer; check before using later members          */

  /* thread-local message of the last failure on this thread ("" if none)                              */
  const char* (*last_error)(void);
  /* static JSON text: {"backend":"cpu"|"cuda","simd":"avx2"|"sse2"|"simd128"|"scalar",...}             */
  const char* (*build_info)(void);

  /* -- RoPE --------------------------------------------------------------------------------------- */
  /* inv_freq[rotary_dim/2] (radians per token) after the scaling scheme, computed in double and
     rounded; attention_factor (may be NULL) receives the YaRN mscale (1.0 for other schemes).         */
  hwkv_status (*rope_inv_freq)(const hwkv_rope_params* p, float* inv_freq, float* attention_factor);
  /* In place: x[n_tok, n_head, head_dim] <- R(pos[t]) x. Angles pos*inv_freq are formed in double (with the
     double inv_freq, before its rounding to float); cos/sin in double rounded to float; rotation in float. */
  hwkv_status (*rope_apply)(const hwkv_rope_params* p, float* x, int64_t n_tok, int32_t n_head,
                            const int32_t* pos);

  /* -- Bit packing --------------------------------------------------------------------------------- */
  /* Codes of `bits` bits (1..16) packed LSB-first into a continuous little-endian bit stream of 32-bit
     words: code i occupies stream bits [i*bits, (i+1)*bits); bit k of the stream is bit (k % 32) of
     words[k / 32]. A code may straddle two words. n_words must be >= ceil(n*bits/32); unused high bits
     of the last word are written as 0; words past ceil(n*bits/32) are not touched (unpack reads no more
     than those either). bits outside 1..16 and a code >= 2^bits are HWKV_ERR_OUT_OF_RANGE (nothing
     written); n_words too small is HWKV_ERR_INVALID_ARGUMENT.                                           */
  hwkv_status (*pack_bits)(const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words, int64_t n_words);
  hwkv_status (*unpack_bits)(const uint32_t* words, int64_t n_words, int32_t bits, uint16_t* codes, int64_t n);

  /* -- Fast Walsh–Hadamard transform ---------------------------------------------------------------- */
  /* In place on x[rows, n], n = 2^k (1 <= n <= 2^20): y = scale * H_n x, H_n the unnormalised Sylvester
     Hadamard matrix (H_n[i][j] = (-1)^popcount(i & j)). scale = 1/sqrt(n) makes it orthonormal; applying
     it twice with scale 1 gives n * x. n outside 1..2^20 is HWKV_ERR_OUT_OF_RANGE, an n in range that is
     not a power of two HWKV_ERR_INVALID_ARGUMENT.                                                       */
  hwkv_status (*fwht)(float* x, int64_t rows, int32_t n, float scale);

  /* -- Block store ---------------------------------------------------------------------------------- */
  hwkv_status (*store_create)(const hwkv_store_params* p, hwkv_store_t** out);
  void (*store_free)(hwkv_store_t* s); /* NULL is a no-op                                               */
  hwkv_status (*store_stats)(hwkv_store_t* s, hwkv_store_stats* out);

  hwkv_status (*block_create)(hwkv_store_t* s, int32_t* out_block);
  hwkv_status (*block_free)(hwkv_store_t* s, int32_t block);
  hwkv_status (*block_len)(hwkv_store_t* s, int32_t block, int32_t* out_len);

  /* Append n_tok tokens in every layer. k[n_layer, n_tok, n_kv_head, head_dim], v[n_layer, n_tok,
     n_kv_head, head_dim_v]. If rope != NULL the keys are given un-rotated and are rotated to their
     block-local positions len..len+n_tok-1 as they are written; if NULL they are stored as given.
     All-or-nothing: on failure the block is unchanged.                                                 */
  hwkv_status (*block_append)(hwkv_store_t* s, int32_t block, int32_t n_tok, const float* k,
                              const float* v, const hwkv_rope_params* rope);
  /* Keep the first new_len tokens (0 <= new_len <= len); pages past the end return to the pool.         */
  hwkv_status (*block_truncate)(hwkv_store_t* s, int32_t block, int32_t new_len);
  /* Append a copy of src's tokens to the end of dst (src unchanged, src != dst). With rope != NULL, the
     copied keys are rotated by +len(dst) (block-local positions of dst), never recomputed.             */
  hwkv_status (*block_merge)(hwkv_store_t* s, int32_t dst, int32_t src, const hwkv_rope_params* rope);
  /* Copy tokens [start, start+n_tok) of one layer out: k[n_tok, n_kv_head, head_dim], v[n_tok,
     n_kv_head, head_dim_v] (either may be NULL). Keys exactly as stored (block-local rotation).          */
  hwkv_status (*block_read)(hwkv_store_t* s, int32_t block, int32_t layer, int32_t start, int32_t n_tok,
                            float* k, float* v);

  /* Read a view of one layer as one contiguous logical sequence of total = sum len tokens:
     k[total, n_kv_head, head_dim], v[total, n_kv_head, head_dim_v]. With rope != NULL every key of block
     j is re-rotated by +o_j, so the result equals keys rotated at absolute positions o_j + l. total must
     equal the sum of the block lengths; a block listed twice is HWKV_ERR_INVALID_ARGUMENT.              */
  hwkv_status (*view_read)(hwkv_store_t* s, const int32_t* blocks, int32_t n_blocks, int32_t layer,
                           const hwkv_rope_params* rope, float* k, float* v, int64_t total);

  /* Attention with query rotation, one layer, all sequences of a batch in one call.
     q[n_q, n_head, head_dim] un-rotated queries (n_q = q_indptr[n_seq]); n_head % n_kv_head == 0 (GQA:
     query head h reads KV head h / (n_head / n_kv_head)). For a query at virtual position P in a view
     whose block j starts at o_j, the score with key l of block j is
         scale * < R(P - o_j) q , K_j[l] >          (K_j stored at block-local positions)
     which equals standard attention with q rotated at P and keys at absolute positions o_j + l.
     Key (j, l) is visible iff o_j + l <= P (causal inside the last block; a block beyond P is skipped).
     One joint softmax over all visible keys of all blocks of the view.
     out[n_q, n_head, head_dim_v]; lse[n_q, n_head] (may be NULL): natural-log sum-exp of the scaled
     scores, -inf where no key is visible (then out is 0). rope must not be NULL.
     Blocks shared by several sequences are read once per call for all of them (backend permitting).   */
  hwkv_status (*attn_views)(hwkv_store_t* s, int32_t layer, const hwkv_rope_params* rope,
                            const hwkv_attn_batch* batch, const float* q, int32_t n_head, float scale,
                            float* out, float* lse);

  /* -- Appended members (check `size` before use) ---------------------------------------------------- */
  /* store_create with a KV codec (codec NULL or type HWKV_KV_EXACT = store_create).                     */
  hwkv_status (*store_create_codec)(const hwkv_store_params* p, const hwkv_store_codec* codec, hwkv_store_t** out);
  hwkv_status (*store_codec_stats)(hwkv_store_t* s, hwkv_store_codec_stats* out);
  /* The stored codes of one compressed chunk (tests, tools): the chunk holding token `token` of `block`,
     layer `layer`, which = 0 keys / 1 values. info[6] receives {chunk start token, chunk tokens, n_words,
     n_scales (fp16 values: HIGGS norms; uniform scales), n_zeros (uniform zeros), exact (1: fp16 copies in
     `scales`, no codes)}. codes/scales/zeros may be NULL (sizes only); when given they must hold
     n_words / n_scales / n_zeros entries. A token that is not held compressed is HWKV_ERR_INVALID_ARGUMENT. */
  hwkv_status (*store_codec_chunk)(hwkv_store_t* s, int32_t block, int32_t token, int32_t layer, int32_t which,
                                   uint32_t* codes, uint16_t* scales, uint16_t* zeros, int64_t* info);
} hwkv_api;

/* The CPU core's table (native addon and WASM). */
HWKV_API const hwkv_api* hwkv_cpu_api(void);
/* Exported by the CUDA shared library (libhwkv_cuda.so). Returns NULL and sets *why (static text) when
   no usable device is present. */
typedef const hwkv_api* (*hwkv_cuda_api_fn)(const char** why);

/* CPU SIMD selection (CPU core only): 0 = best available (default), 1 = force scalar. Process-wide; build_info()'s
   "simd" field reports the level in effect afterwards. Used by tests to check both paths.            */
HWKV_API void hwkv_cpu_set_simd(int32_t force_scalar);

#ifdef __cplusplus
}
#endif
#endif /* HWKV_H */
