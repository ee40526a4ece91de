// model/model.h — internal representation of a loaded model (see core/include/hwkv_model.h for the ABI).
//
// Files: model_api.cpp (ABI table, validation of params/tensors, hwkv_cpu_model_api), model_weights.cpp
// (file mapping, uploads, weight-type helpers), model_llama.cpp (the forward pass), model_kv.cpp (adapter
// to the block store and attention). Matrix products: kern::matmul_multi (kernels/matmul.h).
#ifndef HWKV_CORE_MODEL_MODEL_H
#define HWKV_CORE_MODEL_MODEL_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../../include/hwkv_model.h"
#include "../common.h"
#include "../kernels/matmul.h"
#include "../kernels/threadpool.h"
#include "../attn.h"
#include "../model_files.h"
#include "../model_params.h"
#include "../rope.h"

namespace hwkv {
namespace model {

// Grow-only float buffer for scratch (never shrinks, so the hot path does not allocate once warm).
class Scratch {
 public:
  float* get(size_t n) {
    if (n > v_.size()) v_.resize(n);
    return v_.data();
  }
  size_t bytes() const { return v_.capacity() * sizeof(float); }

 private:
  std::vector<float> v_;
};

struct Tensor {
  std::string name;
  int32_t type = HWKV_WTYPE_F32;
  int32_t n_dims = 1;
  int64_t ne0 = 1;  // rows (outer) for matrices, length for vectors
  int64_t ne1 = 1;  // inner dimension for matrices; 1 for vectors
  int64_t nbytes = 0;
  const uint8_t* data = nullptr;  // mapped or owned bytes
  uint8_t* owned = nullptr;       // 64-byte aligned allocation (UPLOAD mode or copied from a file)
  int64_t uploaded = 0;           // UPLOAD mode: bytes written so far (prefix)
  std::vector<float> f32;         // vectors (norms, biases) widened to float32 once complete
  ~Tensor();
  Tensor() = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& o) noexcept;
  bool complete() const { return uploaded >= nbytes; }
  int64_t row_bytes() const;  // bytes of one row of ne1 elements (matrices)
};

struct Layer {
  Tensor *attn_norm = nullptr, *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
  Tensor *bq = nullptr, *bk = nullptr, *bv = nullptr, *q_norm = nullptr, *k_norm = nullptr;
  Tensor *ffn_norm = nullptr, *gate = nullptr, *up = nullptr, *down = nullptr;
};

struct Model {
  hwkv_model_params p{};
  Rope rope;
  float attn_factor = 1.0f;
  float attn_scale = 1.0f;
  int32_t mode = HWKV_MODEL_FILE;
  std::vector<std::unique_ptr<TensorFile>> files;  // FILE mode: mapped read-only where possible (model_files.h)
  std::vector<Tensor> tensors;  // in the caller's order (model_upload indexes it)
  std::vector<Layer> layers;
  Tensor *tok_embd = nullptr, *output_norm = nullptr, *output = nullptr;  // output == tok_embd if tied
  bool prepared = false;  // vectors widened (done at the first forward with all tensors complete)
  std::unique_ptr<ThreadPool> pool;

  // scratch (grow-only)
  Scratch x, h, q, k, v, att, ff_g, ff_u, rows, tmp;
  std::vector<int32_t> i_old_len, i_write, i_qpos, i_kpos_seq, i_rows;
  std::vector<int64_t> i_kpos;
  RopeTable rope_tab;
  // Attention of one step: one plan for all sequences (built once per step, reused by every layer), run on the
  // pool split over (KV head x key ranges) with a log-sum-exp merge; scratch reused across steps.
  AttnPlan attn_plan;
  AttnScratch attn_scratch;
  // K/V tap (model_capture_kv): when cap_k is set, forward copies each layer's pre-RoPE keys and values of
  // the step's n_tok rows to cap_k/cap_v + (l * cap_n_tok + cap_off) * kvd.
  float* cap_k = nullptr;
  float* cap_v = nullptr;
  int64_t cap_n_tok = 0;
  int64_t cap_off = 0;

  int64_t weight_bytes() const;
  int64_t scratch_bytes() const;
  int32_t uploads_pending() const;
};

// ---- weights (model_weights.cpp) ----
// (wtype_row_bytes, wtype_name: model_params.h)
// Open/map the files and attach the tensor bytes (FILE), or allocate them (UPLOAD).
hwkv_status attach_files(Model& m, const hwkv_tensor_desc* descs, int32_t n);
hwkv_status allocate_uploads(Model& m);
hwkv_status upload(Model& m, int32_t index, const void* data, int64_t offset, int64_t nbytes);
hwkv_status prepare(Model& m);  // widen vectors; errors if uploads are pending

// ---- matmul ----
// kern::matmul_multi on the model's pool (weights read once for all n_tok rows).
inline hwkv_status matmul_multi(Model& m, const kern::MatmulOut* outs, int32_t n, int64_t n_in, const float* x,
                                int64_t n_tok) {
  return kern::matmul_multi(outs, n, n_in, x, n_tok, m.pool.get());
}

// ---- forward (model_llama.cpp) ----
hwkv_status forward(Model& m, hwkv_store_t* store, const hwkv_forward_batch* b, float* logits, int64_t n_logits);

}  // namespace model
}  // namespace hwkv

#endif
