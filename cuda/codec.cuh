// codec.cuh — the KV codecs of the CUDA block store (uniform, HIGGS, AQUA-KV): the same policy, code layout,
// byte accounting and messages as the CPU store (core/src/store.cpp, hwkv_store_codec in hwkv.h), with the
// heavy parts on the device (cuda/codec.cu).
//
// Per store: the copied grids with their search tables, the HIGGS sign vectors, the AQUA predictors (device
// floats, Wv split into its K̂ and V̂ parts as on the CPU), a device cos/sin table by block-local position
// (AQUA keys are un-rotated before encoding and rotated back on decode), the decode scratch, the AQUA chain
// state and work rows. Per compressed chunk: one device allocation with every layer's packed codes and fp16
// scales/zeros (laid out exactly like the CPU chunk's vectors, so store_codec_chunk returns the same arrays),
// shared by the copies that an AQUA merge makes (codes are immutable).
//
// Decoded pages. The attention plan of a forward is built once and run for every layer, so the pointer of a
// compressed page must not depend on the layer. A compressed page i of a forward gets a "virtual page"
// P_i = scratch + i*S (S elements): attention reads layer l's K at P_i + k_off(l, ...) and V at
// P_i + v_off(l, ...) as for a real page, and prepare_layer(l) writes exactly those addresses. S is the
// smallest multiple of 8 elements >= K+V of one page layer for which, for every layer, the K and V ranges of
// all virtual pages are disjoint (codec_create; a full page is always such an S), so the scratch holds about
// one layer of the compressed pages, like the CPU's. Chunks kept under cache_bytes get real pages instead
// (all layers), filled layer by layer by the forwards that decode them.
#ifndef HWKV_CUDA_CODEC_CUH
#define HWKV_CUDA_CODEC_CUH

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "hwkv.h"
#include "hwkv_quant.h"
#include "rope.cuh"
#include "store.cuh"

namespace hwkv_cuda {

// Device memory owned by one object (cudaMalloc / cudaFree; persists across calls).
class DevMem {
 public:
  DevMem() = default;
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
  ~DevMem() { reset(); }
  hwkv_status alloc(const char* fn, size_t bytes);  // replaces the contents (not kept)
  void reset();
  void swap(DevMem& o) {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
  }
  unsigned char* p() const { return p_; }
  size_t size() const { return n_; }

 private:
  unsigned char* p_ = nullptr;
  size_t n_ = 0;
};

struct CodecChunk {
  struct Layer {  // byte offsets into mem and element counts (CPU Chunk::Layer vectors)
    int64_t kw = 0, ks = 0, kz = 0, vw = 0, vs = 0, vz = 0;
    int64_t nkw = 0, nks = 0, nkz = 0, nvw = 0, nvs = 0, nvz = 0;
  };
  int32_t n_pages = 0, n_tok = 0;
  int32_t pos0 = 0;  // block-local position of the first token
  std::vector<Layer> layers;
  std::shared_ptr<DevMem> mem;  // codes (shared by AQUA merge copies)
  int64_t bytes = 0;            // CPU accounting: 4 * words + 2 * (scales + zeros)
  // decode (prepare_layer)
  uint64_t dec_epoch = 0;
  unsigned char* dec_base = nullptr;  // virtual page 0 of this chunk in the scratch (see above)
  DevMem kept;                        // cache_bytes: n_pages real pages (all layers)
  std::vector<uint8_t> kept_layers;
  // AQUA chain state rows (prepare_layer)
  int64_t st_off = -1;
  int32_t st_layer = -1;
  uint64_t st_epoch = 0;
  unsigned char* page_ptr(int32_t page, int64_t page_bytes, int64_t slot_bytes) const {
    if (kept.p()) return kept.p() + page * page_bytes;
    return dec_base ? dec_base + page * slot_bytes : nullptr;
  }
};


// Page pointer for page i of block b: a real page, or where a compressed page's decoded rows are (kept pages
// or the scratch of the last prepare_layer).
const float* block_page_ptr(const hwkv_store* s, const StoreBlock& b, size_t i);

// Creates the codec of a new (empty) store; messages as the CPU store_create_codec.
hwkv_status codec_create(const char* fn, hwkv_store* s, const hwkv_store_codec& c);
bool codec_on(const hwkv_store* s);
// Encodes every chunk of block b that the policy allows (all layers), freeing its pages; never fails (a
// chunk the quantizer rejects stops compression of that block, as on the CPU).
void codec_compact(hwkv_store* s, int32_t block);
void codec_compact_all(hwkv_store* s);
// Decodes layer `layer` of the compressed chunks of the live blocks (or of `only`) for attention. Asynchronous
// on stream() (no synchronisation), so the model engine enqueues it between its layers.
hwkv_status codec_prepare_layer(const char* fn, hwkv_store* s, int32_t layer, const int32_t* only, int64_t n_only);

// Device buffers that live until the end of a read / merge / truncate.
struct CodecTemp {
  std::vector<std::unique_ptr<Scratch>> bufs;
  unsigned char* get(const char* fn, size_t bytes, hwkv_status* st);
};
// Page pointers of block b's pages [0, n_pages): compressed pages decoded into tmp as full pages (layer
// `layer`, or every layer when layer < 0).
hwkv_status codec_page_ptrs(const char* fn, hwkv_store* s, const StoreBlock& b, int32_t layer, CodecTemp& tmp,
                            std::vector<float*>& ptrs);
// block_truncate keeping part of a compressed page: that page becomes an exact page holding its decoded rows.
hwkv_status codec_truncate_page(const char* fn, hwkv_store* s, StoreBlock& b, size_t page);
// AQUA merge at a page boundary (moves src's chunks as codes); *done = false when the CPU would take the
// general path (then the caller copies decoded rows).
hwkv_status codec_merge_aqua(const char* fn, hwkv_store* s, int32_t dst, int32_t src, const RopeHost* rope,
                             bool* done);

hwkv_status store_codec_stats(hwkv_store_t* s, hwkv_store_codec_stats* out);
hwkv_status store_codec_chunk(hwkv_store_t* s, int32_t block, int32_t token, int32_t layer, int32_t which,
                              uint32_t* codes, uint16_t* scales, uint16_t* zeros, int64_t* info);

// Packs n codes of `bits` bits (device) into words (device), on stream() (pack.cu).
hwkv_status pack_dev(const char* fn, const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words);

// ---- device quantizer building blocks (also behind hwkv_cuda_quant_api, quant_api.cu) ----
// A grid on the device with its search tables (d == 1: sorted thresholds; d > 1: half squared norms).
struct DevGrid {
  int32_t n = 0, d = 0;
  DevMem pts, hn, thr, order;
  hwkv_status upload(const char* fn, const float* grid, int32_t n_points, int32_t dim);
};
// Error slot of the encode kernels: the smallest failing index (~0 = none).
// HIGGS encode of x[n_tok, C] (device) -> packed codes (device words) + fp16 scales (device); idx is scratch
// of n_tok*C/d uint16. err receives the first failing (token*G + group).
hwkv_status higgs_encode_dev(const char* fn, const hwkv_higgs_params& p, const DevGrid& g, const float* signs,
                             const float* x, int64_t n_tok, uint32_t* words, uint16_t* scales, uint16_t* idx,
                             unsigned long long* err);
struct DecJob {
  const uint32_t* w;
  const uint16_t* s;
  const uint16_t* z;
  int64_t row;
};
// y rows jobs[j].row + t (C floats each) = (accumulate ? y + : ) dequantized codes; jobs on the device.
hwkv_status higgs_decode_dev(const char* fn, const hwkv_higgs_params& p, const DevGrid& g, const float* signs,
                             const DecJob* jobs, int64_t n_jobs, int64_t n_tok, float* y, int32_t accumulate);
hwkv_status uniform_encode_dev(const char* fn, const hwkv_uniform_params& p, const float* x, int64_t n_tok,
                               uint32_t* words, uint16_t* scales, uint16_t* zeros, uint16_t* idx,
                               unsigned long long* err_x, unsigned long long* err_g);
hwkv_status uniform_decode_dev(const char* fn, const hwkv_uniform_params& p, const DecJob* jobs, int64_t n_jobs,
                               int64_t n_tok, float* y, int32_t accumulate);
hwkv_status grid_nearest_dev(const char* fn, const DevGrid& g, const float* z, int64_t m, uint16_t* idx);
// y[M, N] (ldc) = (acc ? y : 0) + x[M, K] (lda) · W[N, K]ᵀ (ldb) (+ bias[N]); FP32 tiled kernel.
hwkv_status gemm_nt(const char* fn, const float* x, int64_t lda, const float* W, int64_t ldb, float* y, int64_t ldc,
                    int64_t M, int32_t N, int32_t K, int32_t acc, const float* bias);

}  // namespace hwkv_cuda

#endif
