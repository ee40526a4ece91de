// model_params.h — validation of hwkv_model_params and of the tensor table (messages start with
// "model_create: "), of model_upload's arguments and of a forward batch, shared by the CPU core (model_api.cpp,
// model_weights.cpp, model_llama.cpp) and the CUDA library, which compiles model_params.cpp for its host side.
#ifndef HWKV_CORE_MODEL_PARAMS_H
#define HWKV_CORE_MODEL_PARAMS_H

#include <string>
#include <vector>

#include "../include/hwkv_model.h"
#include "common.h"

namespace hwkv {
namespace model {

hwkv_status check_params(const hwkv_model_params* p);

// ---- the tensor table of model_create ----
int64_t wtype_row_bytes(int32_t type, int64_t n);  // bytes of n elements (n % 32 == 0 for Q8_0); -1 if bad
const char* wtype_name(int32_t type);

// Which canonical tensor a descriptor is (hwkv_model.h, "Tensors"); the blk.<i>.* ones also carry the layer.
enum TensorRole : int32_t {
  kTokEmbd, kOutputNorm, kOutput,
  kAttnNorm, kAttnQ, kAttnK, kAttnV, kAttnOutput, kAttnQBias, kAttnKBias, kAttnVBias, kAttnQNorm, kAttnKNorm,
  kFfnNorm, kFfnGate, kFfnUp, kFfnDown
};

struct TensorCheck {
  std::string name;
  int32_t type = 0;
  bool is_vector = false;
  int64_t ne0 = 1;  // rows (outer) for matrices, length for vectors
  int64_t ne1 = 1;  // inner dimension for matrices; 1 for vectors
  int64_t nbytes = 0;
  TensorRole role = kTokEmbd;
  int32_t layer = -1;  // -1 for tok_embd, output_norm, output
};

// The descriptors against the params (already checked with check_params): at least one, every expected
// tensor listed exactly once, no unknown name, shapes, types and byte sizes — with model_create's messages.
// out[i] describes descs[i].
hwkv_status check_tensors(const hwkv_model_params* p, const hwkv_tensor_desc* descs, int32_t n,
                          std::vector<TensorCheck>* out);

// A model's tensor record (CPU core Tensor, CUDA DevTensor: same field names) from its checked descriptor.
template <class T>
void init_tensor(T& t, const TensorCheck& c) {
  t.name = c.name;
  t.type = c.type;
  t.n_dims = c.is_vector ? 1 : 2;
  t.ne0 = c.ne0;
  t.ne1 = c.ne1;
  t.nbytes = c.nbytes;
}

// The member of a model (CPU core Model, CUDA hwkv_model: both name their tensor pointers alike) that holds the
// tensor of role c.
template <class M>
auto tensor_slot(M& m, const TensorCheck& c) -> decltype(&m.tok_embd) {
  switch (c.role) {
    case kTokEmbd: return &m.tok_embd;
    case kOutputNorm: return &m.output_norm;
    case kOutput: return &m.output;
    default: break;
  }
  auto& L = m.layers[static_cast<size_t>(c.layer)];
  switch (c.role) {
    case kAttnNorm: return &L.attn_norm;
    case kAttnQ: return &L.wq;
    case kAttnK: return &L.wk;
    case kAttnV: return &L.wv;
    case kAttnOutput: return &L.wo;
    case kAttnQBias: return &L.bq;
    case kAttnKBias: return &L.bk;
    case kAttnVBias: return &L.bv;
    case kAttnQNorm: return &L.q_norm;
    case kAttnKNorm: return &L.k_norm;
    case kFfnNorm: return &L.ffn_norm;
    case kFfnGate: return &L.gate;
    case kFfnUp: return &L.up;
    default: return &L.down;
  }
}

// model_upload's argument checks (mode, index, then the chunk against the tensor's size and upload progress).
hwkv_status check_upload_index(int32_t mode, int32_t index, int32_t n_tensors);
hwkv_status check_upload_chunk(const std::string& name, int64_t size, int64_t uploaded, const void* data,
                               int64_t offset, int64_t nbytes);

// A forward batch against the model and the store's geometry: store shape, n_seq, NULL arrays, logits mode,
// index arrays, token ids. Sets *argmax (HWKV_LOGITS_ARGMAX asked) and *lmode (the mode without that flag).
hwkv_status check_forward_batch(const char* fn, const hwkv_model_params& P, const hwkv_store_params& sp,
                                const hwkv_forward_batch* b, bool* argmax, int32_t* lmode);

// The views of a checked batch: every block live (check_block(blk) is the store's own check), at most once per
// view, and the write blocks (each view's last) distinct. `stamp` is scratch; `limit` bounds block ids.
template <class CheckBlock>
hwkv_status check_forward_views(const char* fn, const hwkv_forward_batch* b, size_t limit, std::vector<int32_t>& stamp,
                                CheckBlock check_block) {
  const int32_t n_seq = b->n_seq;
  stamp.assign(limit, -1);
  for (int32_t s = 0; s < n_seq; ++s) {
    for (int32_t j = b->view_indptr[s]; j < b->view_indptr[s + 1]; ++j) {
      const int32_t blk = b->view_blocks[j];
      HWKV_TRY(check_block(blk));
      if (stamp[blk] == s)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: block %d appears twice in the view of sequence %d", fn, blk, s);
      stamp[blk] = s;
    }
  }
  stamp.assign(limit, -1);
  for (int32_t s = 0; s < n_seq; ++s) {
    const int32_t wb = b->view_blocks[b->view_indptr[s + 1] - 1];
    if (stamp[wb] >= 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sequences %d and %d both write to block %d (write blocks must differ)",
                  fn, stamp[wb], s, wb);
    stamp[wb] = s;
  }
  return HWKV_OK;
}

// ---- model_capture_kv (the K/V tap): one sequence through a private F32 store in chunks ----
// Argument checks (model_capture_kv's messages).
hwkv_status check_capture_kv(const int32_t* tokens, int32_t n_tok, const float* k_pre, const float* v);
// The private store: the model's layer / KV-head geometry, head_dim_v = head_dim, 64-token pages, F32, no limit.
hwkv_store_params capture_store_params(const hwkv_model_params& P);
constexpr int32_t kCaptureChunk = 256;  // tokens per forward
// Runs forward_chunk(off, n, batch) for the chunks [off, off + n) of tokens[0, n_tok) in order: one sequence
// whose view is `block` alone, no logits; stops at the first failure.
template <class F>
hwkv_status for_each_capture_chunk(const int32_t* tokens, int32_t n_tok, int32_t block, F&& forward_chunk) {
  for (int32_t off = 0; off < n_tok; off += kCaptureChunk) {
    const int32_t n = n_tok - off < kCaptureChunk ? n_tok - off : kCaptureChunk;
    const int32_t view_indptr[2] = {0, 1};
    const int32_t view_blocks[1] = {block};
    const int32_t tok_indptr[2] = {0, n};
    hwkv_forward_batch b{};
    b.n_seq = 1;
    b.logits_mode = HWKV_LOGITS_NONE;
    b.view_indptr = view_indptr;
    b.view_blocks = view_blocks;
    b.tok_indptr = tok_indptr;
    b.tokens = tokens + off;
    HWKV_TRY(forward_chunk(off, n, b));
  }
  return HWKV_OK;
}

}  // namespace model
}  // namespace hwkv

#endif
