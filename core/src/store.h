// store.h — the paged KV block store (CPU).
//
// Memory: a pool of fixed-size pages (one allocation each, 64-byte aligned) with a free list. A page holds
// page_tokens tokens of every layer:
//   page = [n_layer] x { K [n_kv_head, page_tokens, head_dim], V [n_kv_head, page_tokens, head_dim_v] }
// so attention streams one KV head of one page as a contiguous [tokens, dim] matrix. A block owns an ordered
// list of pages; token t of a block lives in page t / page_tokens, slot t % page_tokens. Keys are stored
// rotated at block-local positions (see hwkv.h). Elements are float (HWKV_F32) or IEEE half (HWKV_F16).
//
// Allocation is all-or-nothing: every mutating operation first reserves the pages it needs (respecting
// max_bytes), then writes; on failure nothing changes. Freed/truncated pages go back to the free list and stay
// reserved (counted in bytes_reserved) until trim().
//
// Not thread-safe: one writer at a time; concurrent const readers (read, view_read, attention) are fine.
#ifndef HWKV_CORE_STORE_H
#define HWKV_CORE_STORE_H

#include <cstdint>
#include <memory>
#include <vector>

#include "../include/hwkv_quant.h"
#include "common.h"
#include "kernels/threadpool.h"
#include "rope.h"

namespace hwkv {

class BlockStore {
 public:
  // Validates p and creates an empty store (no pages yet).
  static hwkv_status create(const hwkv_store_params& p, std::unique_ptr<BlockStore>* out);
  // With a KV codec (nullptr or HWKV_KV_EXACT = exact store). See hwkv_store_codec in hwkv.h.
  static hwkv_status create(const hwkv_store_params& p, const hwkv_store_codec* codec, std::unique_ptr<BlockStore>* out);
  ~BlockStore();
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  // -- geometry --
  const hwkv_store_params& params() const { return p_; }
  int32_t n_layer() const { return p_.n_layer; }
  int32_t n_kv_head() const { return p_.n_kv_head; }
  int32_t head_dim() const { return p_.head_dim; }
  int32_t head_dim_v() const { return p_.head_dim_v; }
  int32_t page_tokens() const { return p_.page_tokens; }
  hwkv_dtype dtype() const { return static_cast<hwkv_dtype>(p_.dtype); }
  size_t elem_size() const { return p_.dtype == HWKV_F16 ? 2 : 4; }
  int64_t page_bytes() const { return page_bytes_; }

  // -- blocks --
  hwkv_status create_block(int32_t* out);
  hwkv_status free_block(int32_t b);
  bool is_live(int32_t b) const { return b >= 0 && b < static_cast<int32_t>(blocks_.size()) && blocks_[b].live; }
  // OK if b is live, else HWKV_ERR_OUT_OF_RANGE with "<fn>: block 7 is not a live block (...)".
  hwkv_status check_block(const char* fn, int32_t b) const;
  int32_t len(int32_t b) const { return blocks_[b].len; }  // precondition: is_live(b)
  int32_t live_blocks() const { return live_count_; }
  int32_t block_id_limit() const { return static_cast<int32_t>(blocks_.size()); }  // all ids are < this

  // -- mutation (all-or-nothing) --
  // k[n_layer, n_tok, n_kv_head, head_dim], v[n_layer, n_tok, n_kv_head, head_dim_v]; rope != nullptr rotates keys
  // to block-local positions len..len+n_tok-1 as they are written.
  hwkv_status append(int32_t b, int32_t n_tok, const float* k, const float* v, const Rope* rope);
  hwkv_status truncate(int32_t b, int32_t new_len);
  // Engine path ("grow, then write layer by layer"): extend grows block b by n_tok tokens in every layer
  // (all-or-nothing; the new rows' contents are unspecified until written), write then stores one layer's rows
  // [start, start+n_tok) (start+n_tok <= len): k[n_tok, n_kv_head, head_dim], v[n_tok, n_kv_head, head_dim_v]
  // (either may be null to skip). With rope != nullptr the keys are rotated to block-local positions
  // start..start+n_tok-1 as they are written; `table` (optional) holds those positions' cos/sin, row t for
  // position start+t, so a forward pass can build it once for all layers.
  hwkv_status extend(int32_t b, int32_t n_tok);
  hwkv_status write(int32_t b, int32_t layer, int32_t start, int32_t n_tok, const float* k, const float* v,
                    const Rope* rope, const RopeTable* table = nullptr);
  // Appends a copy of src to dst; rope != nullptr rotates the copied keys by +len(dst).
  hwkv_status merge(int32_t dst, int32_t src, const Rope* rope);

  // -- reads --
  // k[n_tok, n_kv_head, head_dim], v[n_tok, n_kv_head, head_dim_v] (either may be null), keys as stored.
  hwkv_status read(int32_t b, int32_t layer, int32_t start, int32_t n_tok, float* k, float* v) const;
  // Concatenation of the view's blocks; rope != nullptr rotates block j's keys by +o_j. total must equal the
  // sum of the block lengths.
  hwkv_status view_read(const int32_t* blocks, int32_t n_blocks, int32_t layer, const Rope* rope, float* k, float* v,
                        int64_t total) const;

  void stats(hwkv_store_stats* out) const;
  void codec_stats(hwkv_store_codec_stats* out) const;

  // -- KV codec --
  bool has_codec() const { return codec_.type != HWKV_KV_EXACT; }
  // Encodes every chunk of block b that the policy allows (all layers), freeing its pages. Never fails:
  // a chunk the quantizer rejects (e.g. values beyond the fp16 range) stops compression of that block.
  // pool (optional) runs the AQUA predictor products on the core's matmul kernels across threads.
  void compact(int32_t b, ThreadPool* pool = nullptr);
  void compact_all(ThreadPool* pool = nullptr);
  // Decodes layer `layer` of every compressed chunk of the live blocks into the scratch (once); page
  // accessors for compressed pages then point there. Must precede attention over compressed blocks.
  // AQUA: calling it for layers 0, 1, 2, ... in order (as a forward does) decodes each layer of a chunk
  // from the previous one kept as scratch (one step of the predictor chain per layer); any other order
  // re-runs the chain from layer 0 for that chunk. Chunks are spread over the pool's threads.
  // only/n_only (optional): decode just the chunks of these blocks (a forward's views); others keep stale pointers.
  hwkv_status prepare_layer(int32_t layer, ThreadPool* pool = nullptr, const int32_t* only = nullptr, int64_t n_only = 0);
  // hwkv_api.store_codec_chunk
  hwkv_status codec_chunk(int32_t b, int32_t token, int32_t layer, int32_t which, uint32_t* codes, uint16_t* scales,
                          uint16_t* zeros, int64_t* info) const;
  // Releases every free page (bytes_reserved drops to bytes_in_use).
  void trim();

  // -- raw page access for attention and codecs (preconditions: live block, indices in range) --
  int32_t n_pages(int32_t b) const { return static_cast<int32_t>(blocks_[b].pages.size()); }
  // Element pointer (float* or uint16_t* per dtype) of K rows [page_tokens, head_dim] of one KV head.
  const void* k_page(int32_t b, int32_t page, int32_t layer, int32_t kv_head) const;
  const void* v_page(int32_t b, int32_t page, int32_t layer, int32_t kv_head) const;
  // Rows [slot0, slot0+n) of one page/head as float: returns the stored rows directly for F32, or converts them
  // into scratch (>= n*head_dim resp. n*head_dim_v floats) for F16.
  const float* k_rows_f32(int32_t b, int32_t page, int32_t layer, int32_t kv_head, int32_t slot0, int32_t n,
                          float* scratch) const;
  const float* v_rows_f32(int32_t b, int32_t page, int32_t layer, int32_t kv_head, int32_t slot0, int32_t n,
                          float* scratch) const;

 private:
  struct Chunk;  // one encoded chunk (all layers); store.cpp
  struct CompRef {
    std::shared_ptr<Chunk> c;
    int32_t page = 0;  // page index inside the chunk
  };
  struct Block {
    bool live = false;
    bool no_compress = false;
    int32_t len = 0;
    std::vector<int32_t> pages;  // indices into pages_; -1 = compressed (see comp)
    std::vector<CompRef> comp;   // empty, or parallel to pages
  };
  // Base of one layer's K (resp. V) rows of a KV head for page `page` of block b: a real page or, for a
  // compressed page, the decoded scratch (prepare_layer).
  const uint8_t* kptr(const Block& blk, int32_t page, int32_t layer, int32_t kv_head) const;
  const uint8_t* vptr(const Block& blk, int32_t page, int32_t layer, int32_t kv_head) const;
  hwkv_status encode_chunk(const Block& blk, int32_t p0, std::shared_ptr<Chunk>* out, ThreadPool* pool = nullptr);
  // AQUA
  struct AquaLayer {  // predictors of one layer (nn.Linear layout [out, in]); layer 0: bk, bv only (the means)
    std::vector<float> wk, bk, wvk, wvv, bv;  // Wk [Ck,Ck]; Wv split into [Cv,Ck] (K̂_l part) and [Cv,Cv] (V̂_{l-1})
  };
  hwkv_status aqua_init(const hwkv_store_codec& c);
  bool aqua() const { return codec_.type == HWKV_KV_AQUA; }
  // Pre-RoPE reconstructions of layer L of chunk c: yk[n, Ck], yv[n, Cv] from layer L-1's (pk, pv; unused for 0).
  hwkv_status aqua_layer(const Chunk& c, int32_t L, const float* pk, const float* pv, float* yk, float* yv,
                         ThreadPool* pool) const;
  // Stores pre-RoPE reconstructions yk/yv of chunk c into out (one layer, chunk pages x layer_bytes_), keys
  // rotated at the chunk's block-local positions.
  void aqua_store(const Chunk& c, float* yk, const float* yv, uint8_t* out) const;
  hwkv_status higgs_params_for(int32_t L, bool value, hwkv_higgs_params* hp, const float** grid) const;
  hwkv_status merge_aqua(Block& d, const Block& s, const Rope* rope);
  static bool same_rope(const Rope& x, const Rope& y);
  // Decodes one layer of a chunk into out laid out as chunk pages x one page layer (layer_bytes_ each).
  hwkv_status decode_chunk(const Chunk& c, int32_t layer, uint8_t* out) const;
  // Loads rows through the codec for read/merge (decoding a compressed page's layer into tmp if needed).
  const uint8_t* page_k_any(const Block& blk, int32_t page, int32_t layer, int32_t kv_head, std::vector<uint8_t>* tmp,
                            const Chunk** tmp_c, int32_t* tmp_layer) const;
  const uint8_t* page_v_any(const Block& blk, int32_t page, int32_t layer, int32_t kv_head, std::vector<uint8_t>* tmp,
                            const Chunk** tmp_c, int32_t* tmp_layer) const;

  explicit BlockStore(const hwkv_store_params& p);
  hwkv_status reserve_pages(const char* fn, int64_t n, std::vector<int32_t>* got);
  void release_pages(const int32_t* pages, size_t n);
  uint8_t* k_base(int32_t page_index, int32_t layer, int32_t kv_head) const;
  uint8_t* v_base(int32_t page_index, int32_t layer, int32_t kv_head) const;
  // Writes n float rows (dim floats each) into stored elements (converting for F16).
  void store_rows(uint8_t* dst, const float* src, int64_t n_floats) const;
  void load_rows(const uint8_t* src, float* dst, int64_t n_floats) const;
  hwkv_status check_layer(const char* fn, int32_t layer) const;
  hwkv_status check_rope(const char* fn, const Rope* rope) const;

  hwkv_store_params p_;
  int64_t k_head_bytes_ = 0, v_head_bytes_ = 0, layer_bytes_ = 0, page_bytes_ = 0;
  std::vector<uint8_t*> pages_;     // every page allocated (nullptr slots after trim are reused)
  std::vector<int32_t> free_pages_;  // indices of pages_ that are allocated but not owned by a block
  std::vector<int32_t> empty_slots_; // indices of pages_ that are nullptr
  int64_t pages_allocated_ = 0;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_ids_;   // min-heap of reusable block ids
  int32_t live_count_ = 0;
  int64_t pages_in_use_ = 0;
  // codec
  hwkv_store_codec codec_{};
  std::vector<float> grid_, grid0_;
  int32_t sink_tokens_ = 0;           // sinks rounded up to a page
  std::vector<uint8_t> dec_;          // decoded scratch (grow-only)
  int32_t dec_layer_ = -1;
  uint64_t dec_epoch_ = 0;
  std::vector<AquaLayer> aq_;         // [n_layer]; entry 0 holds only layer 0's means
  Rope aq_rope_;
  std::vector<float> aq_state_;       // AQUA chain state: one layer of pre-RoPE K̂/V̂ per compressed chunk
  uint64_t st_epoch_ = 0;
};

// Validates the rope parameters against the store (head_dim must match) — used by the ABI layer.
hwkv_status rope_init_for_store(const BlockStore& s, const hwkv_rope_params* p, const char* fn, Rope* out);

}  // namespace hwkv

// The CPU ABI handle (hwkv_store_t, opaque in hwkv.h). Defined here and only here: api.cpp creates/frees it,
// the model engine reaches the store through hwkv::store_from_handle.
struct hwkv_store {
  std::unique_ptr<hwkv::BlockStore> impl;
};

namespace hwkv {
// The BlockStore behind a CPU ABI handle (nullptr for nullptr).
inline BlockStore* store_from_handle(hwkv_store_t* s) { return s ? s->impl.get() : nullptr; }
}  // namespace hwkv

#endif
