/*
 * hwkv_model.h — the C ABI of the hogwild-kv model engine (decoder-only Llama-family transformers).
 *
 * Same conventions as hwkv.h (read it first): plain C, every fallible call returns hwkv_status and keeps a
 * thread-local message readable with the table's last_error() (the same buffer as hwkv_api.last_error),
 * opaque handles, caller-owned host buffers, shapes written [outer, ..., inner], row-major.
 *
 * Supported architectures (one forward pass, switched by flags): Llama 1/2/3 (incl. Llama-3.1 rope scaling),
 * Mistral, Qwen2 (q/k/v bias), Qwen3 (RMSNorm over head_dim on q and k), with GQA, MQA or MHA and any head_dim
 * (n_head * head_dim need not equal n_embd). Attention is always full causal attention over the view: a
 * sliding window (Mistral v0.1 "sliding_window": 4096, Qwen2 "use_sliding_window": true) is not applied, so
 * such models are exact only while every view is at most the window long (the loader should warn or refuse).
 *
 *   for each layer l:
 *     h   = rms_norm(x) * attn_norm
 *     q   = h Wq^T (+ bq)   k = h Wk^T (+ bk)   v = h Wv^T (+ bv)        per token, head-major
 *     q,k = rms_norm_head(q) * attn_q_norm, rms_norm_head(k) * attn_k_norm        (QK_NORM only)
 *     q,k *= attn_factor on dims [0, rotary_dim)                                    (YaRN mscale)
 *     k   rotated at block-local positions and appended with v to the sequence's write block
 *     a   = attention over the sequence's view (hwkv.h attn_views), scale = attn_scale
 *     x  += a Wo^T
 *     h   = rms_norm(x) * ffn_norm
 *     x  += (silu(h Wg^T) * (h Wu^T)) Wd^T
 *   logits = (rms_norm(x) * output_norm) Wout^T        (Wout = tok_embd when TIED_EMBEDDINGS)
 *
 * rms_norm(x) = x / sqrt(mean(x^2) + rms_norm_eps). All arithmetic in float32 (weights of any type are
 * widened to float32 before use; accumulation in float32).
 *
 * Thread safety: a model is immutable after its tensors are complete and may be shared by several stores,
 * but model_forward is NOT re-entrant: one forward at a time per model (it owns scratch buffers and a thread
 * pool), and a store must not be used by anything else while a forward on it runs. model_upload must not
 * run concurrently with model_forward on the same model.
 */
#ifndef HWKV_MODEL_H
#define HWKV_MODEL_H

#include "hwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HWKV_MODEL_ABI_VERSION 1

typedef struct hwkv_model hwkv_model_t;

/* ------------------------------------------------------------------------------------------------ */
/* Weight types                                                                                     */
/* ------------------------------------------------------------------------------------------------ */
typedef enum hwkv_wtype {
  /* Values are GGML's type ids, so a GGUF loader passes tensor types through unchanged.                */
  HWKV_WTYPE_F32 = 0,   /* IEEE binary32, little-endian                                                */
  HWKV_WTYPE_F16 = 1,   /* IEEE binary16, little-endian                                                */
  HWKV_WTYPE_Q8_0 = 8,  /* GGML Q8_0: along the innermost dimension, blocks of 32 values, each block =
                           binary16 scale d followed by 32 int8 q; value = d * q. 34 bytes per block; the
                           innermost dimension must be a multiple of 32. Matrices only. Matmuls quantize
                           the activations per 32-block to int8 as llama.cpp does (not exact float math). */
  HWKV_WTYPE_BF16 = 30  /* bfloat16 (upper 16 bits of a binary32), little-endian                       */
} hwkv_wtype;

/* ------------------------------------------------------------------------------------------------ */
/* Architecture                                                                                     */
/* ------------------------------------------------------------------------------------------------ */
typedef enum hwkv_model_flags {
  HWKV_MODEL_QKV_BIAS = 1,        /* blk.i.attn_{q,k,v}_bias present (Qwen2)                                */
  HWKV_MODEL_QK_NORM = 2,         /* blk.i.attn_{q,k}_norm present (Qwen3): RMSNorm over each head of q, k  */
  HWKV_MODEL_TIED_EMBEDDINGS = 4  /* no "output" tensor: the LM head is tok_embd                            */
} hwkv_model_flags;

typedef struct hwkv_model_params {
  int32_t n_layer;      /* >= 1                                                                         */
  int32_t n_embd;       /* hidden size, >= 1                                                            */
  int32_t n_head;       /* query heads, >= 1, multiple of n_kv_head                                     */
  int32_t n_kv_head;    /* key/value heads, >= 1                                                        */
  int32_t head_dim;     /* elements per head (q, k and v), >= 1; must equal rope.head_dim               */
  int32_t n_ff;         /* FFN inner size, >= 1                                                         */
  int32_t n_vocab;      /* >= 1                                                                         */
  uint32_t flags;       /* OR of hwkv_model_flags                                                       */
  float rms_norm_eps;   /* > 0, e.g. 1e-5 or 1e-6                                                       */
  float attn_factor;    /* multiplies q and k on dims [0, rope.rotary_dim) after q/k norm (YaRN mscale).
                           0 = the rope's own factor (what hwkv_api.rope_inv_freq reports: the YaRN mscale
                           for HWKV_ROPE_SCALING_YARN, 1 otherwise); pass a value to override it (e.g. a
                           checkpoint's explicit attention_factor)                                         */
  float attn_scale;     /* softmax scale; 0 means 1/sqrt(head_dim)                                      */
  int32_t n_threads;    /* threads of the model's pool incl. the caller; <= 0 = hardware concurrency   */
  hwkv_rope_params rope;/* rotation of q and k; the KV store's keys use the same (see hwkv.h)           */
} hwkv_model_params;

/* ------------------------------------------------------------------------------------------------ */
/* Tensors                                                                                          */
/* ------------------------------------------------------------------------------------------------ */
/*
 * Canonical names and shapes (ne, outermost first; matrices are [n_out, n_in], i.e. y = W x with row r of W
 * at element offset r * n_in — the layout of both Hugging Face safetensors and GGUF weights):
 *
 *   tok_embd           [n_vocab, n_embd]       any type (rows are widened on lookup)
 *   output_norm        [n_embd]                F32 / F16 / BF16
 *   output             [n_vocab, n_embd]       absent iff TIED_EMBEDDINGS
 *   blk.<i>.attn_norm  [n_embd]
 *   blk.<i>.attn_q     [n_head * head_dim, n_embd]
 *   blk.<i>.attn_k     [n_kv_head * head_dim, n_embd]
 *   blk.<i>.attn_v     [n_kv_head * head_dim, n_embd]
 *   blk.<i>.attn_output[n_embd, n_head * head_dim]
 *   blk.<i>.attn_q_bias[n_head * head_dim]     QKV_BIAS only (likewise attn_k_bias, attn_v_bias
 *                                              [n_kv_head * head_dim])
 *   blk.<i>.attn_q_norm[head_dim]              QK_NORM only (likewise attn_k_norm)
 *   blk.<i>.ffn_norm   [n_embd]
 *   blk.<i>.ffn_gate   [n_ff, n_embd]
 *   blk.<i>.ffn_up     [n_ff, n_embd]
 *   blk.<i>.ffn_down   [n_embd, n_ff]
 *
 * Vectors (norms, biases) may be F32, F16 or BF16; matrices any hwkv_wtype. Every expected tensor must be
 * listed exactly once; a missing, duplicated, unknown or wrongly shaped/typed tensor fails model_create
 * with a message naming it. The loader (TS side) maps checkpoint names to these and picks rope.style: Hugging
 * Face checkpoints use NEOX (rotate-half); GGUF "llama" files use NORMAL (adjacent pairs: llama.cpp's
 * converter permutes the rows of Wq/Wk for it), GGUF "qwen2"/"qwen3" files use NEOX (not permuted).
 *
 * Name mapping for reference. GGUF: strip ".weight" ("token_embd" -> tok_embd) and map "blk.<i>.attn_q.bias"
 * -> blk.<i>.attn_q_bias (likewise k, v); GGUF lists dims innermost first, so reverse them. Hugging Face:
 *   model.embed_tokens.weight -> tok_embd, model.norm.weight -> output_norm, lm_head.weight -> output,
 *   model.layers.<i>.input_layernorm.weight -> blk.<i>.attn_norm, .self_attn.{q,k,v}_proj.weight ->
 *   .attn_{q,k,v}, .self_attn.{q,k,v}_proj.bias -> .attn_{q,k,v}_bias, .self_attn.o_proj.weight -> .attn_output,
 *   .self_attn.{q,k}_norm.weight -> .attn_{q,k}_norm, .post_attention_layernorm.weight -> .ffn_norm,
 *   .mlp.{gate,up,down}_proj.weight -> .ffn_{gate,up,down}. A tied checkpoint that still stores lm_head.weight:
 *   either set TIED_EMBEDDINGS and leave it out, or clear the flag and pass it as "output".
 *
 * ne[] of a vector is {n}; n_dims is 1 for vectors, 2 for matrices (trailing ne[] entries are ignored).
 * A 2-D tensor of shape [1, n] is accepted where a vector of n is expected.
 */
typedef struct hwkv_tensor_desc {
  const char* name;   /* canonical name (copied by model_create)                                        */
  int32_t type;       /* hwkv_wtype                                                                     */
  int32_t n_dims;     /* 1 or 2                                                                         */
  int64_t ne[4];      /* shape, outermost first                                                         */
  const char* file;   /* HWKV_MODEL_FILE: path of the file holding the bytes (UTF-8); ignored for UPLOAD */
  int64_t offset;     /* HWKV_MODEL_FILE: absolute byte offset of the first byte in the file            */
  int64_t nbytes;     /* exact byte size of the tensor data (checked against type and shape)            */
} hwkv_tensor_desc;

typedef enum hwkv_model_mode {
  /* The core opens every distinct file read-only and maps it (mmap; positioned reads into private memory
     where mapping is unavailable). Offsets and sizes are validated against the file size. The files may
     be modified or deleted after model_create only at the caller's risk (mapped pages).                 */
  HWKV_MODEL_FILE = 0,
  /* The core allocates nbytes for every tensor (aligned to 64 bytes) and the caller fills them with
     model_upload before the first forward (WebAssembly: no file system).                              */
  HWKV_MODEL_UPLOAD = 1
} hwkv_model_mode;

/* ------------------------------------------------------------------------------------------------ */
/* Forward                                                                                          */
/* ------------------------------------------------------------------------------------------------ */
typedef enum hwkv_logits_mode {
  HWKV_LOGITS_NONE = 0, /* no logits (prefill of a chunk that is followed by more)                     */
  HWKV_LOGITS_LAST = 1, /* one row per sequence: its last new token; n_rows = n_seq                    */
  HWKV_LOGITS_ALL = 2,  /* every new token, in batch order (tok_indptr order); n_rows = n_tok          */
  /* OR'ed with LAST or ALL (added after ABI 1 shipped; a core that predates it fails with
     INVALID_ARGUMENT): instead of the logits, each of the n_rows rows yields its greedy pick as two floats,
     logits[2 r] = the token id (exact: n_vocab <= 2^24 is checked) and logits[2 r + 1] = its logit, so
     n_logits need only be >= 2 n_rows. The pick is the argmax of exactly the row the logits mode would
     return; ties go to the LOWEST token id, NaN logits are never picked, and a row without a logit
     > -inf yields id 0 with logit -inf (ts/engine/sampling.ts argmax does the same).                   */
  HWKV_LOGITS_ARGMAX = 16
} hwkv_logits_mode;

/*
 * One batched step for n_seq sequences (Hogwild! workers). Sequence s:
 *   view  = view_blocks[view_indptr[s] .. view_indptr[s+1])   ordered block ids, >= 1 block; the LAST block
 *           is the sequence's write block. Write blocks of different sequences must differ; a view lists a
 *           block at most once. Other blocks may be shared freely (including other sequences' write blocks).
 *   new tokens = tokens[tok_indptr[s] .. tok_indptr[s+1])    >= 1 token per sequence; ids < n_vocab.
 *
 * Semantics (per layer, in this order): first every sequence's new K/V are appended to its write block
 * (keys rotated to block-local positions old_len .. old_len + n - 1), then attention runs for every
 * sequence over its whole view, with the query of new token i at virtual position
 *     P = (sum of the lengths of the view's blocks, after all appends of this call) - n + i
 * i.e. write-block offset + old_len + i. So a sequence sees everything the other sequences wrote before
 * this call and — where its view contains their write blocks — also the tokens they write in this call
 * (causally: key (j, l) visible iff o_j + l <= P, see hwkv.h attn_views).
 * After a successful call each write block has grown by its sequence's token count in every layer.
 *
 * Cost and memory: every weight matrix is read once per call for all n_tok = tok_indptr[n_seq] rows, so W
 * workers decoding one token each cost little more than one. Scratch grows with n_tok (about
 * n_tok * (3 n_embd + 3 n_head*head_dim + 2 n_kv_head*head_dim + 2 n_ff) floats, kept for later calls; see
 * model_info.scratch_bytes), so feed long prompts in chunks of a few hundred tokens (chunked prefill of one
 * sequence is exactly equivalent to one call).
 */
typedef struct hwkv_forward_batch {
  int32_t n_seq;              /* >= 1                                                                    */
  int32_t logits_mode;        /* hwkv_logits_mode                                                        */
  const int32_t* view_indptr; /* [n_seq + 1], view_indptr[0] = 0, non-decreasing                         */
  const int32_t* view_blocks; /* [view_indptr[n_seq]] block ids of the store                             */
  const int32_t* tok_indptr;  /* [n_seq + 1], tok_indptr[0] = 0, strictly increasing                    */
  const int32_t* tokens;      /* [tok_indptr[n_seq]] token ids                                           */
} hwkv_forward_batch;

typedef struct hwkv_model_info {
  hwkv_model_params params;   /* as given (n_threads: the pool size actually used)                       */
  int64_t weight_bytes;       /* bytes of tensor data (mapped or allocated)                              */
  int64_t scratch_bytes;      /* bytes of scratch buffers currently held                                 */
  int32_t n_tensors;
  int32_t uploads_pending;    /* UPLOAD mode: tensors not yet completely uploaded (forward refuses > 0)  */
  int32_t mapped;             /* 1 if the weights are memory-mapped files                                */
  int32_t reserved;
} hwkv_model_info;

/* ------------------------------------------------------------------------------------------------ */
/* Function table                                                                                   */
/* ------------------------------------------------------------------------------------------------ */
typedef struct hwkv_model_api {
  uint32_t abi_version; /* HWKV_MODEL_ABI_VERSION                                                       */
  uint32_t size;        /* sizeof(hwkv_model_api) of the producer                                       */

  /* thread-local message of the last failure on this thread ("" if none); same buffer as hwkv_api's    */
  const char* (*last_error)(void);

  /* Validates params and the tensor list (names, shapes, types, sizes; FILE mode: files exist and every
     [offset, offset + nbytes) lies inside its file) and creates the model. tensors[] and the strings
     it points to are only read during the call. On failure *out is NULL.                              */
  hwkv_status (*model_create)(const hwkv_model_params* params, const hwkv_tensor_desc* tensors,
                              int32_t n_tensors, int32_t mode, hwkv_model_t** out);
  void (*model_free)(hwkv_model_t* m); /* NULL is a no-op                                              */

  /* UPLOAD mode: copies nbytes from data into bytes [offset, offset + nbytes) of tensor tensor_index
     (index into the tensors[] given to model_create). A tensor's chunks must be uploaded in order without
     gaps (offset <= bytes already uploaded for it; rewriting a prefix is allowed). A tensor is complete
     when all its bytes were uploaded. HWKV_ERR_UNSUPPORTED in FILE mode.                               */
  hwkv_status (*model_upload)(hwkv_model_t* m, int32_t tensor_index, const void* data, int64_t offset,
                              int64_t nbytes);

  hwkv_status (*model_info)(hwkv_model_t* m, hwkv_model_info* out);

  /* One batched step (see hwkv_forward_batch). store: created with n_layer, n_kv_head, head_dim,
     head_dim_v = head_dim matching the model (checked). logits: [n_rows, n_vocab] float32 with n_rows as
     given by logits_mode ([n_rows, 2] = (id, logit) pairs with HWKV_LOGITS_ARGMAX); n_logits is its
     capacity in floats (must be >= n_rows * n_vocab, resp. 2 n_rows; may be 0 with logits NULL for
     HWKV_LOGITS_NONE). On failure every write block is truncated back to its old
     length (the store is as before the call) and logits contents are unspecified.                    */
  hwkv_status (*model_forward)(hwkv_model_t* m, hwkv_store_t* store, const hwkv_forward_batch* batch,
                               float* logits, int64_t n_logits);

  /* Threads of the model's pool (incl. the caller); <= 0 = hardware concurrency. Not during a forward. */
  hwkv_status (*model_set_threads)(hwkv_model_t* m, int32_t n_threads);

  /* K/V tap (AQUA-KV calibration): runs one sequence tokens[n_tok] (positions 0..n_tok-1) through the
     forward in a private f32 store (chunks of 256 tokens; the caller's stores are untouched) and writes
     every layer's keys BEFORE RoPE (after bias, q/k norm and attn_factor) to k_pre and the values to v,
     both float32 [n_layer, n_tok, n_kv_head * head_dim]. Not re-entrant (like model_forward). Added after
     ABI 1 shipped: check `size` covers it; NULL where unsupported (the CPU core and the CUDA library
     both have it).                                                                                    */
  hwkv_status (*model_capture_kv)(hwkv_model_t* m, const int32_t* tokens, int32_t n_tok, float* k_pre,
                                  float* v);
} hwkv_model_api;

/* The CPU core's table (native addon and WASM). The CUDA library exports hwkv_cuda_model_api().      */
HWKV_API const hwkv_model_api* hwkv_cpu_model_api(void);

#ifdef __cplusplus
}
#endif
#endif /* HWKV_MODEL_H */
