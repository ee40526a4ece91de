// model.cuh — the CUDA model engine (hwkv_model.h on the GPU): internal representation.
//
// Files: model_api.cu (the table hwkv_cuda_model_api, validation of params and tensors with the CPU core's
// wording, weight upload: FILE mode reads the byte ranges on the host and copies them to the device, UPLOAD
// mode copies each chunk as it comes), model_forward.cu (the forward pass: cuBLAS GEMMs, fused kernels, the
// block store's pages and attn.cu's device entry points), model_q8.cu (Q8_0 products and embedding rows).
//
// Weights live in one device arena in their stored type (F32, F16, BF16, Q8_0 as GGUF stores it: model_q8.cuh). Each
// layer's attn_q/attn_k/attn_v (and ffn_gate/ffn_up) are placed back to back when they share a type, so one
// GEMM computes all three (both) for every token of the step. Vectors (norms, biases) are also widened once
// to float32 into a second arena before the first forward.
#ifndef HWKV_CUDA_MODEL_CUH
#define HWKV_CUDA_MODEL_CUH

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attn.cuh"
#include "blas.cuh"
#include "common.cuh"
#include "hwkv_model.h"
#include "rope.cuh"

namespace hwkv_cuda {

struct DevTensor {
  std::string name;
  int32_t type = HWKV_WTYPE_F32;
  int32_t n_dims = 1;
  int64_t ne0 = 1;  // rows (outer) for matrices, length for vectors
  int64_t ne1 = 1;  // inner dimension for matrices; 1 for vectors
  int64_t nbytes = 0;
  bool is_vector = false;
  int64_t arena_off = -1;  // byte offset in the weight arena
  uint8_t* dev = nullptr;  // device bytes (arena + arena_off)
  int64_t uploaded = 0;    // bytes present on the device (prefix)
  float* f32 = nullptr;    // vectors: widened to float32 on the device (vector arena)
  int64_t vec_off = -1;    // float offset in the vector arena
};

struct DevLayer {
  DevTensor *attn_norm = nullptr, *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
  DevTensor *bq = nullptr, *bk = nullptr, *bv = nullptr, *q_norm = nullptr, *k_norm = nullptr;
  DevTensor *ffn_norm = nullptr, *gate = nullptr, *up = nullptr, *down = nullptr;
  bool qkv_fused = false;  // wq, wk, wv back to back with one type
  bool gu_fused = false;   // gate, up back to back with one type
};

// Grow-only device buffer (cudaMalloc; never shrinks, so a warm forward does not allocate).
class DevBuf {
 public:
  DevBuf() = default;
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { release(); }
  hwkv_status ensure(const char* fn, size_t bytes);
  void release() {
    if (p_) (void)cudaFree(p_);
    p_ = nullptr;
    cap_ = 0;
  }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  size_t cap() const { return cap_; }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace hwkv_cuda

struct hwkv_model {
  hwkv_model_params p{};
  hwkv_cuda::RopeHost rope;
  float attn_factor = 1.0f;
  float attn_scale = 1.0f;
  int32_t mode = HWKV_MODEL_FILE;
  std::vector<hwkv_cuda::DevTensor> tensors;  // in the caller's order (model_upload indexes it)
  std::vector<hwkv_cuda::DevLayer> layers;
  hwkv_cuda::DevTensor *tok_embd = nullptr, *output_norm = nullptr, *output = nullptr;  // output == tok_embd if tied
  uint8_t* arena = nullptr;
  int64_t arena_bytes = 0;
  float* vec_arena = nullptr;
  int64_t vec_floats = 0;
  bool prepared = false;
  bool force_gemm = false;  // HWKV_CUDA_FORCE_GEMM=1: cuBLAS GEMMs for decode too (no GEMV; for comparisons)  // vectors widened (redone after an upload touches a vector)
  // Decode projections (rows <= 8, 16-bit weights): 0 = autotune per (shape, rows) at first use (times the
  // FP32-FMA GEMV and the tensor-core GEMV, keeps the faster), 1 = FMA GEMV, 2 = tensor-core GEMV
  // (HWKV_CUDA_GEMV=auto|fma|mma). HWKV_CUDA_TUNE_LOG=1 prints every choice to stderr.
  int gemv_mode = 0;
  bool pdl = false;  // HWKV_CUDA_PDL=1 on a compute capability >= 9 device: GEMVs use programmatic dependent launch
  bool tune_log = false;
  std::map<uint64_t, int> gemv_choice;  // key: gemv_key(); value: 1 FMA, 2 MMA
  const hwkv_cuda::Blas* blas = nullptr;
  hwkv_cuda::cublasHandle_t handle = nullptr;

  // scratch (grow-only). `step` holds every per-step input the kernels read (tokens, write pages and rows,
  // cos/sin of the new keys, logits rows, the attention plan), uploaded once per forward; `part` the
  // attention's partial states.
  hwkv_cuda::DevBuf x, h, qkv, att, ff, act16, logits, step, part;
  std::vector<int32_t> i_old_len, i_write, i_qpos, i_rows, i_stamp, i_wrow;
  std::vector<float*> i_wpage;
  std::vector<float> i_ktab;
  std::vector<unsigned char> i_step;
  void* hlogits = nullptr;  // pinned staging for the logits rows (grow-only)
  size_t hlogits_cap = 0;

  // The model's own stream (every forward runs on it) and the captured decode step (see model_forward.cu).
  cudaStream_t stream = nullptr;
  bool use_graphs = true;  // HWKV_CUDA_GRAPHS=0 turns capture off
  bool all_gemv = false;   // every matrix is F16/BF16 with GEMV-friendly shapes (set by model_prepare)
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t gexec = nullptr;
  int64_t g_n_tok = 0, g_n_seq = 0, g_rows_out = 0;
  const hwkv_store* g_store = nullptr;
  int32_t g_kind = 0, g_attn_rows = 0, g_argmax = 0;
  size_t g_smem = 0;
  hwkv_cuda::AttnCaps g_caps{};
  const void* g_bufs[9] = {};  // scratch addresses the graph was captured with (model_forward.cu)
  int64_t graph_captures = 0, graph_launches = 0;

  // K/V tap (model_capture_kv, model_api.cu): while cap_k is set, each forward's qkv_post also writes every
  // layer's pre-RoPE keys and values of its n_tok rows to cap_k / cap_v + (layer * n_tok + t) * kvd (device
  // buffers; such a forward is never captured as a graph).
  hwkv_cuda::DevBuf cap;
  float* cap_k = nullptr;
  float* cap_v = nullptr;
  void drop_graph() {
    if (gexec) (void)cudaGraphExecDestroy(gexec);
    if (graph) (void)cudaGraphDestroy(graph);
    gexec = nullptr;
    graph = nullptr;
  }

  int64_t weight_bytes() const;
  int64_t scratch_bytes() const;
  int32_t uploads_pending() const;
};

namespace hwkv_cuda {
// model_forward.cu
hwkv_status model_prepare(hwkv_model* m, const char* fn);  // widen vectors; errors if uploads are pending
hwkv_status model_forward_impl(hwkv_model* m, hwkv_store_t* store, const hwkv_forward_batch* b, float* logits,
                               int64_t n_logits);
}  // namespace hwkv_cuda

#endif
