// ops.cuh — the CUDA implementations of the hwkv_api entries (api.cu puts them in the table).
#ifndef HWKV_CUDA_OPS_CUH
#define HWKV_CUDA_OPS_CUH

#include "hwkv.h"

namespace hwkv_cuda {

hwkv_status rope_inv_freq(const hwkv_rope_params* p, float* inv_freq, float* attention_factor);
hwkv_status rope_apply(const hwkv_rope_params* p, float* x, int64_t n_tok, int32_t n_head, const int32_t* pos);

hwkv_status pack_bits(const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words, int64_t n_words);
hwkv_status unpack_bits(const uint32_t* words, int64_t n_words, int32_t bits, uint16_t* codes, int64_t n);

hwkv_status fwht(float* x, int64_t rows, int32_t n, float scale);

hwkv_status store_create(const hwkv_store_params* p, hwkv_store_t** out);
hwkv_status store_create_codec(const hwkv_store_params* p, const hwkv_store_codec* codec, hwkv_store_t** out);
void store_free(hwkv_store_t* s);
hwkv_status store_stats(hwkv_store_t* s, hwkv_store_stats* out);
hwkv_status block_create(hwkv_store_t* s, int32_t* out_block);
hwkv_status block_free(hwkv_store_t* s, int32_t block);
hwkv_status block_len(hwkv_store_t* s, int32_t block, int32_t* out_len);
hwkv_status block_append(hwkv_store_t* s, int32_t block, int32_t n_tok, const float* k, const float* v,
                         const hwkv_rope_params* rope);
hwkv_status block_truncate(hwkv_store_t* s, int32_t block, int32_t new_len);
hwkv_status block_merge(hwkv_store_t* s, int32_t dst, int32_t src, const hwkv_rope_params* rope);
hwkv_status block_read(hwkv_store_t* s, int32_t block, int32_t layer, int32_t start, int32_t n_tok, float* k,
                       float* v);
hwkv_status view_read(hwkv_store_t* s, const int32_t* blocks, int32_t n_blocks, int32_t layer,
                      const hwkv_rope_params* rope, float* k, float* v, int64_t total);
hwkv_status attn_views(hwkv_store_t* s, int32_t layer, const hwkv_rope_params* rope, const hwkv_attn_batch* batch,
                       const float* q, int32_t n_head, float scale, float* out, float* lse);

}  // namespace hwkv_cuda

#endif
