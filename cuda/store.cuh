// store.cuh — the CUDA block store: a device page pool plus a host-side block table.
//
// Page = page_tokens tokens of every layer and KV head, K then V (dtype F32 or F16: elements of 4 or 2 bytes):
//   K: [n_layer][n_kv_head][page_tokens][head_dim]      (k_floats floats)
//   V: [n_layer][n_kv_head][page_tokens][head_dim_v]    (after K)
// so one (layer, kv head) of a page is a contiguous [page_tokens][dim] tile, which is what attention
// streams. Token l of a block lives in page pages[l / page_tokens] at row l % page_tokens.
// Offsets below count elements of the store's dtype; device code reads and writes pages through kv_get /
// kv_set (F16 rounds to nearest on store, like the CPU core; arithmetic is always float32).
// Each page is one cudaMalloc; freed pages are kept for reuse (pages_free) until store_free.
// The host mirrors the CPU core's bookkeeping exactly (ids, lengths, page counts, max_bytes).
#ifndef HWKV_CUDA_STORE_CUH
#define HWKV_CUDA_STORE_CUH

#include <cstdint>
#include <memory>
#include <vector>

#include <cuda_fp16.h>

#include "common.cuh"

namespace hwkv_cuda {

// Device-side geometry of a page.
struct PageGeo {
  int32_t n_layer, n_kv, T, D, Dv;
  int32_t f16;       // 1: elements are binary16 (HWKV_F16), 0: float32
  int64_t k_floats;  // elements of K per page: n_layer * n_kv * T * D

  __host__ __device__ int64_t k_off(int32_t layer, int32_t g, int32_t t) const {
    return ((static_cast<int64_t>(layer) * n_kv + g) * T + t) * D;
  }
  __host__ __device__ int64_t v_off(int32_t layer, int32_t g, int32_t t) const {
    return k_floats + ((static_cast<int64_t>(layer) * n_kv + g) * T + t) * Dv;
  }
};

// One element of a page (index in elements of the store's dtype).
__device__ __forceinline__ float kv_get(const void* page, int64_t i, int32_t f16) {
  return f16 ? __half2float(static_cast<const __half*>(page)[i]) : static_cast<const float*>(page)[i];
}
__device__ __forceinline__ void kv_set(void* page, int64_t i, float x, int32_t f16) {
  if (f16)
    static_cast<__half*>(page)[i] = __float2half_rn(x);
  else
    static_cast<float*>(page)[i] = x;
}

struct CodecChunk;  // codec.cuh
struct Codec;
struct CodecDeleter {
  void operator()(Codec* c) const;  // codec.cu
};
struct CompRef {
  std::shared_ptr<CodecChunk> c;
  int32_t page = 0;  // page index inside the chunk
};

struct StoreBlock {
  bool live = false;
  bool no_compress = false;    // KV codec: a chunk was rejected, stop compressing this block
  int32_t len = 0;
  std::vector<int32_t> pages;  // indices into hwkv_store::page_ptr; -1 = compressed (see comp)
  std::vector<CompRef> comp;   // empty, or parallel to pages (KV codec)
};

}  // namespace hwkv_cuda

struct hwkv_store {
  hwkv_store_params p{};
  hwkv_cuda::PageGeo geo{};
  int64_t page_bytes = 0;
  std::vector<float*> page_ptr;             // every page ever allocated (device memory)
  std::vector<int32_t> free_pages;          // indices into page_ptr, reused LIFO
  std::vector<hwkv_cuda::StoreBlock> blocks;  // by id
  int32_t pages_in_use = 0;  // exact pages owned by blocks
  int32_t blocks_live = 0;
  std::unique_ptr<hwkv_cuda::Codec, hwkv_cuda::CodecDeleter> codec;  // KV codec (codec.cuh); null = exact store
};

namespace hwkv_cuda {

// Validation with the CPU core's wording (core/src/store.cpp).
bool is_live(const hwkv_store* s, int32_t block);
hwkv_status check_block(const char* fn, const hwkv_store* s, int32_t block);
hwkv_status check_layer(const char* fn, const hwkv_store* s, int32_t layer);
// Validates rope params used with the store (head_dim must match) and prepares them.
struct RopeHost;
hwkv_status store_rope(const char* fn, const hwkv_store* s, const hwkv_rope_params* rope, RopeHost* out);

// True iff s is a live store created by this library's store_create (a process-wide registry: a handle of
// another backend, e.g. the CPU core's, is recognised without being dereferenced).
bool store_is_ours(const hwkv_store* s);
// Takes `count` pages (free pages first, then new allocations within max_bytes; the CPU core's message).
// All-or-nothing. The caller adds them to pages_in_use once they belong to a block.
hwkv_status acquire_pages(const char* fn, hwkv_store* s, int32_t count, std::vector<int32_t>& got);
// Gives exact pages back (entries < 0, compressed pages, are skipped); pages_in_use drops by their number.
void release_pages(hwkv_store* s, const int32_t* pages, size_t n);
// Grows a live block by n >= 0 tokens in every layer (pages acquired, contents undefined until written).
// All-or-nothing. Messages start with fn. Undo with block_truncate.
hwkv_status block_extend(const char* fn, hwkv_store* s, int32_t block, int32_t n);
// Writes n tokens into block dst at positions pos0.. (its pages already there) copied from the pages src
// (token t of the copy at src[t / page_tokens], row t % page_tokens); keys rotated by the one table row
// `tab` when rope is given. Synchronous.
hwkv_status store_copy_rows(const char* fn, hwkv_store* s, const StoreBlock& dst, int32_t pos0, int32_t n,
                            const RopeHost* rope, const std::vector<float>& tab, const std::vector<float*>& src);

}  // namespace hwkv_cuda

#endif
