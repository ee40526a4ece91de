// model_api.cu — the CUDA model engine's table hwkv_cuda_model_api(): model creation (params, the tensor table
// and the FILE-mode files through the CPU core's host code, core/src/model_params.cpp and model_files.cpp,
// compiled into this library: one set of checks and messages), the weight arena on the device, FILE-mode
// loading and UPLOAD-mode chunks, the K/V tap. The forward pass is in model_forward.cu.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core_host.cuh"
#include "model.cuh"
#include "ops.cuh"

namespace hwkv_cuda {

hwkv_status DevBuf::ensure(const char* fn, size_t bytes) {
  if (bytes <= cap_) return HWKV_OK;
  release();
  size_t want = bytes < 256 ? 256 : bytes;
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, want);
  if (e != cudaSuccess) return cuda_fail(e, fn, "cudaMalloc(scratch)");
  p_ = p;
  cap_ = want;
  return HWKV_OK;
}

namespace {

hwkv_status check_params(const hwkv_model_params* p) {
  // The CPU core's checks and wording (core/src/model_params.cpp, compiled into this library) ...
  HWKV_TRY(hwkv::model::check_params(p));
  // ... plus: cuBLAS takes int dimensions, so every GEMM dimension must fit.
  const char* fn = "model_create";
  const int64_t big = int64_t(1) << 31;
  const int64_t dims[] = {p->n_embd, int64_t(p->n_head) * p->head_dim, int64_t(p->n_kv_head) * p->head_dim * 2 +
                          int64_t(p->n_head) * p->head_dim, int64_t(p->n_ff) * 2, p->n_vocab};
  for (int64_t d : dims)
    if (d >= big) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: model dimensions too large for the CUDA backend", fn);
  return HWKV_OK;
}

// Host staging for FILE mode: two pinned buffers (copy of one overlaps the read of the other), or one pageable
// buffer with synchronous copies when pinned memory is unavailable.
struct Staging {
  static constexpr size_t kChunk = 32u << 20;
  uint8_t* buf[2] = {nullptr, nullptr};
  cudaEvent_t ev[2] = {nullptr, nullptr};
  bool pinned = false;
  std::unique_ptr<uint8_t[]> plain;
  ~Staging() {
    (void)cudaStreamSynchronize(stream());
    for (int i = 0; i < 2; ++i) {
      if (ev[i]) (void)cudaEventDestroy(ev[i]);
      if (buf[i] && pinned) (void)cudaFreeHost(buf[i]);
    }
    (void)cudaGetLastError();
  }
  hwkv_status init(const char* fn) {
    pinned = true;
    for (int i = 0; i < 2 && pinned; ++i) {
      void* p = nullptr;
      if (cudaMallocHost(&p, kChunk) != cudaSuccess || cudaEventCreateWithFlags(&ev[i], cudaEventDisableTiming) != cudaSuccess)
        pinned = false;
      buf[i] = static_cast<uint8_t*>(p);
    }
    if (!pinned) {
      (void)cudaGetLastError();
      for (int i = 0; i < 2; ++i) {
        if (buf[i]) (void)cudaFreeHost(buf[i]);
        buf[i] = nullptr;
      }
      plain.reset(new (std::nothrow) uint8_t[kChunk]);
      if (!plain) return fail(HWKV_ERR_OUT_OF_MEMORY, "%s: out of host memory for the weight staging buffer", fn);
    }
    return HWKV_OK;
  }
};

hwkv_status load_files(hwkv_model* m, const hwkv_tensor_desc* descs, int32_t n) {
  const char* fn = "model_create";
  // Open and check every range before touching the device (the CPU core's files and messages).
  std::vector<std::unique_ptr<hwkv::model::TensorFile>> files;
  std::vector<hwkv::model::TensorFile*> per;
  HWKV_TRY(hwkv::model::open_tensor_files(descs, n, &files, &per));
  Staging st;
  HWKV_TRY(st.init(fn));
  int cur = 0;
  for (int32_t i = 0; i < n; ++i) {
    DevTensor& t = m->tensors[i];
    for (int64_t off = 0; off < t.nbytes; off += static_cast<int64_t>(Staging::kChunk)) {
      const int64_t len = std::min<int64_t>(static_cast<int64_t>(Staging::kChunk), t.nbytes - off);
      uint8_t* b = st.pinned ? st.buf[cur] : st.plain.get();
      if (st.pinned) HWKV_CU(cudaEventSynchronize(st.ev[cur]));  // the copy that last used this buffer is done
      HWKV_TRY(per[i]->read_tensor(descs[i], off, b, len));
      if (st.pinned) {
        HWKV_CU(cudaMemcpyAsync(t.dev + off, b, static_cast<size_t>(len), cudaMemcpyHostToDevice, stream()));
        HWKV_CU(cudaEventRecord(st.ev[cur], stream()));
        cur ^= 1;
      } else {
        HWKV_CU(cudaMemcpy(t.dev + off, b, static_cast<size_t>(len), cudaMemcpyHostToDevice));
      }
    }
    t.uploaded = t.nbytes;
  }
  return sync(fn);
}

// Places the tensors in the arena: groups (q/k/v, gate/up) back to back when their types agree.
void layout(hwkv_model* m) {
  int64_t cur = 0;
  auto align = [](int64_t v) { return (v + 255) & ~int64_t(255); };
  auto place_group = [&](std::initializer_list<DevTensor*> ts) {
    cur = align(cur);
    for (DevTensor* t : ts) {
      if (!t || t->arena_off >= 0) continue;
      t->arena_off = cur;
      cur += t->nbytes;
    }
  };
  auto place = [&](DevTensor* t) { place_group({t}); };
  place(m->tok_embd);
  place(m->output_norm);
  if (m->output != m->tok_embd) place(m->output);
  for (DevLayer& L : m->layers) {
    place(L.attn_norm);
    L.qkv_fused = L.wq->type == L.wk->type && L.wq->type == L.wv->type;
    if (L.qkv_fused) place_group({L.wq, L.wk, L.wv});
    place(L.wq);
    place(L.wk);
    place(L.wv);
    place(L.wo);
    place(L.bq);
    place(L.bk);
    place(L.bv);
    place(L.q_norm);
    place(L.k_norm);
    place(L.ffn_norm);
    L.gu_fused = L.gate->type == L.up->type;
    if (L.gu_fused) place_group({L.gate, L.up});
    place(L.gate);
    place(L.up);
    place(L.down);
  }
  for (DevTensor& t : m->tensors) place(&t);  // (every tensor is one of the above; kept for safety)
  m->arena_bytes = align(cur);
  int64_t vf = 0;
  for (DevTensor& t : m->tensors) {
    if (!t.is_vector) continue;
    t.vec_off = vf;
    vf += (t.ne0 + 63) & ~int64_t(63);
  }
  m->vec_floats = vf;
}

hwkv_status device_alloc(const char* fn, void** p, int64_t bytes, const char* what) {
  cudaError_t e = cudaMalloc(p, static_cast<size_t>(bytes > 0 ? bytes : 1));
  if (e == cudaSuccess) return HWKV_OK;
  (void)cudaGetLastError();
  size_t fr = 0, tot = 0;
  (void)cudaMemGetInfo(&fr, &tot);
  (void)cudaGetLastError();
  const hwkv_status st = e == cudaErrorMemoryAllocation ? HWKV_ERR_OUT_OF_MEMORY : HWKV_ERR_DEVICE;
  return fail(st, "%s: cannot allocate %lld bytes of device memory for %s (%llu of %llu bytes free): %s: %s", fn,
              static_cast<long long>(bytes), what, static_cast<unsigned long long>(fr),
              static_cast<unsigned long long>(tot), cudaGetErrorName(e), cudaGetErrorString(e));
}

void destroy(hwkv_model* m) {
  if (!m) return;
  if (use_device("model_free") == HWKV_OK) {
    (void)cudaStreamSynchronize(stream());
    if (m->stream) (void)cudaStreamSynchronize(m->stream);
    m->drop_graph();
    if (m->handle && m->blas) (void)m->blas->destroy(m->handle);
    if (m->stream) (void)cudaStreamDestroy(m->stream);
    if (m->hlogits) (void)cudaFreeHost(m->hlogits);
    if (m->arena) (void)cudaFree(m->arena);
    if (m->vec_arena) (void)cudaFree(m->vec_arena);
    (void)cudaGetLastError();
  }
  delete m;  // DevBuf destructors free the scratch
}

struct ModelDeleter {
  void operator()(hwkv_model* m) const { destroy(m); }
};

hwkv_status create(const hwkv_model_params* p, const hwkv_tensor_desc* descs, int32_t n, int32_t mode,
                   hwkv_model_t** out) {
  const char* fn = "model_create";
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  *out = nullptr;
  HWKV_TRY(check_params(p));
  if (mode != HWKV_MODEL_FILE && mode != HWKV_MODEL_UPLOAD)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: mode must be 0 (FILE) or 1 (UPLOAD), got %d", fn, mode);
  // the tensor table: the CPU core's checks and messages (core/src/model_params.cpp)
  std::vector<hwkv::model::TensorCheck> checked;
  HWKV_TRY(hwkv::model::check_tensors(p, descs, n, &checked));

  std::unique_ptr<hwkv_model, ModelDeleter> h(new hwkv_model());
  hwkv_model* m = h.get();
  m->p = *p;
  m->p.n_threads = 1;
  m->mode = mode;
  {
    const char* fg = std::getenv("HWKV_CUDA_FORCE_GEMM");
    m->force_gemm = fg && fg[0] == '1';
    const char* gr = std::getenv("HWKV_CUDA_GRAPHS");
    m->use_graphs = !(gr && gr[0] == '0');
    const char* gv = std::getenv("HWKV_CUDA_GEMV");
    m->gemv_mode = !gv ? 0 : std::strcmp(gv, "fma") == 0 ? 1 : std::strcmp(gv, "mma") == 0 ? 2 : 0;
    const char* pd = std::getenv("HWKV_CUDA_PDL");
    if (pd && pd[0] == '1') {
      int major = 0;
      m->pdl = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, hwkv_cuda::device_id()) == cudaSuccess &&
               major >= 9;
      (void)cudaGetLastError();
    }
    const char* tl = std::getenv("HWKV_CUDA_TUNE_LOG");
    m->tune_log = tl && tl[0] == '1';
  }
  HWKV_TRY(rope_prepare(fn, &p->rope, &m->rope));
  m->attn_factor = p->attn_factor == 0.0f ? static_cast<float>(m->rope.attention_factor) : p->attn_factor;
  m->attn_scale = p->attn_scale == 0.0f ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(p->head_dim)))
                                        : p->attn_scale;
  m->layers.resize(static_cast<size_t>(p->n_layer));

  m->tensors.reserve(static_cast<size_t>(n));
  for (const hwkv::model::TensorCheck& c : checked) {
    DevTensor t;
    hwkv::model::init_tensor(t, c);
    t.is_vector = c.is_vector;
    m->tensors.push_back(std::move(t));
  }
  for (size_t i = 0; i < checked.size(); ++i) *hwkv::model::tensor_slot(*m, checked[i]) = &m->tensors[i];  // never move
  if (p->flags & HWKV_MODEL_TIED_EMBEDDINGS) m->output = m->tok_embd;

  HWKV_TRY(use_device(fn));
  HWKV_TRY(blas_load(fn, &m->blas));
  layout(m);
  {
    void* a = nullptr;
    HWKV_TRY(device_alloc(fn, &a, m->arena_bytes, "the weights"));
    m->arena = static_cast<uint8_t*>(a);
    void* v = nullptr;
    HWKV_TRY(device_alloc(fn, &v, m->vec_floats * 4, "the float32 norms and biases"));
    m->vec_arena = static_cast<float*>(v);
  }
  for (DevTensor& t : m->tensors) {
    t.dev = m->arena + t.arena_off;
    if (t.is_vector) t.f32 = m->vec_arena + t.vec_off;
  }
  {
    cublasStatus_t bs = m->blas->create(&m->handle);
    if (bs != 0) {
      m->handle = nullptr;
      return blas_fail(m->blas, bs, fn, "cublasCreate");
    }
  }
  if (mode == HWKV_MODEL_FILE) HWKV_TRY(load_files(m, descs, n));
  *out = h.release();
  return HWKV_OK;
}

hwkv_status upload(hwkv_model* m, int32_t index, const void* data, int64_t offset, int64_t nbytes) {
  const char* fn = "model_upload";
  HWKV_TRY(hwkv::model::check_upload_index(m->mode, index, static_cast<int32_t>(m->tensors.size())));
  DevTensor& t = m->tensors[index];
  HWKV_TRY(hwkv::model::check_upload_chunk(t.name, t.nbytes, t.uploaded, data, offset, nbytes));
  HWKV_TRY(use_device(fn));
  if (nbytes > 0) {
    HWKV_CU(cudaMemcpyAsync(t.dev + offset, data, static_cast<size_t>(nbytes), cudaMemcpyHostToDevice, stream()));
    HWKV_TRY(sync(fn));
  }
  if (offset + nbytes > t.uploaded) t.uploaded = offset + nbytes;
  if (t.is_vector) m->prepared = false;  // a vector changed: widen again
  return HWKV_OK;
}

const char* api_last_error() { return last_error(); }

hwkv_status api_create(const hwkv_model_params* p, const hwkv_tensor_desc* t, int32_t n, int32_t mode,
                       hwkv_model_t** out) {
  if (out) *out = nullptr;
  return guarded("model_create", [&] { return create(p, t, n, mode, out); });
}

void api_free(hwkv_model_t* m) {
  try {
    destroy(m);
  } catch (...) {
  }
}

hwkv_status api_upload(hwkv_model_t* m, int32_t index, const void* data, int64_t offset, int64_t nbytes) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_upload: model is NULL");
  return guarded("model_upload", [&] { return upload(m, index, data, offset, nbytes); });
}

hwkv_status api_info(hwkv_model_t* m, hwkv_model_info* out) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_info: model is NULL");
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_info: out is NULL");
  std::memset(out, 0, sizeof *out);
  out->params = m->p;
  out->weight_bytes = m->weight_bytes();
  out->scratch_bytes = m->scratch_bytes();
  out->n_tensors = static_cast<int32_t>(m->tensors.size());
  out->uploads_pending = m->uploads_pending();
  out->mapped = 0;
  return HWKV_OK;
}

hwkv_status api_forward(hwkv_model_t* m, hwkv_store_t* s, const hwkv_forward_batch* b, float* logits,
                        int64_t n_logits) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_forward: model is NULL");
  return guarded("model_forward", [&] { return model_forward_impl(m, s, b, logits, n_logits); });
}

hwkv_status api_set_threads(hwkv_model_t* m, int32_t n_threads) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_set_threads: model is NULL");
  (void)n_threads;  // the GPU engine has no host thread pool: accepted and ignored
  m->p.n_threads = 1;
  return HWKV_OK;
}

// The K/V tap (hwkv_model_api.model_capture_kv, the CPU core's contract and chunking, core/src/model_api.cpp):
// one sequence through a private f32 store in chunks of 256 tokens; qkv_post writes each chunk's pre-RoPE keys
// and values of every layer into a device buffer, copied into the caller's arrays after every chunk.
hwkv_status capture_kv(hwkv_model* m, const int32_t* tokens, int32_t n_tok, float* k_pre, float* v) {
  const char* fn = "model_capture_kv";
  HWKV_TRY(hwkv::model::check_capture_kv(tokens, n_tok, k_pre, v));
  HWKV_TRY(use_device(fn));
  const hwkv_model_params& P = m->p;
  const hwkv_store_params sp = hwkv::model::capture_store_params(P);
  hwkv_store_t* st = nullptr;
  HWKV_TRY(store_create(&sp, &st));
  struct StoreGuard {
    hwkv_store_t* s;
    ~StoreGuard() { store_free(s); }
  } store_guard{st};
  int32_t block = -1;
  HWKV_TRY(block_create(st, &block));
  const int64_t kvd = static_cast<int64_t>(P.n_kv_head) * P.head_dim;
  const int64_t cap_floats =
      static_cast<int64_t>(P.n_layer) * std::min(n_tok, hwkv::model::kCaptureChunk) * kvd;
  HWKV_TRY(m->cap.ensure(fn, static_cast<size_t>(2 * cap_floats) * sizeof(float)));
  struct Untap {
    hwkv_model* m;
    ~Untap() { m->cap_k = m->cap_v = nullptr; }
  } untap{m};
  return hwkv::model::for_each_capture_chunk(tokens, n_tok, block, [&](int32_t off, int32_t n, const hwkv_forward_batch& b) -> hwkv_status {
    // this chunk's layout: [n_layer][n][kvd] keys, then the values
    m->cap_k = m->cap.as<float>();
    m->cap_v = m->cap.as<float>() + static_cast<int64_t>(P.n_layer) * n * kvd;
    HWKV_TRY(model_forward_impl(m, st, &b, nullptr, 0));  // synchronizes the model's stream before returning
    // layer l of the chunk -> rows [off, off + n) of layer l in the caller's [n_layer][n_tok][kvd] arrays
    const size_t row = static_cast<size_t>(n * kvd) * sizeof(float);
    for (int32_t l = 0; l < P.n_layer; ++l) {
      const int64_t src = static_cast<int64_t>(l) * n * kvd, dst = (static_cast<int64_t>(l) * n_tok + off) * kvd;
      HWKV_CU(cudaMemcpyAsync(k_pre + dst, m->cap_k + src, row, cudaMemcpyDeviceToHost, stream()));
      HWKV_CU(cudaMemcpyAsync(v + dst, m->cap_v + src, row, cudaMemcpyDeviceToHost, stream()));
    }
    return sync(fn);
  });
}

hwkv_status api_capture_kv(hwkv_model_t* m, const int32_t* tokens, int32_t n_tok, float* k_pre, float* v) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_capture_kv: model is NULL");
  return guarded("model_capture_kv", [&] { return capture_kv(m, tokens, n_tok, k_pre, v); });
}

}  // namespace

}  // namespace hwkv_cuda

int64_t hwkv_model::weight_bytes() const {
  int64_t s = 0;
  for (const auto& t : tensors) s += t.nbytes;
  return s;
}

int64_t hwkv_model::scratch_bytes() const {
  int64_t s = 0;
  for (const hwkv_cuda::DevBuf* b : {&x, &h, &qkv, &att, &ff, &act16, &logits, &step, &part, &cap})
    s += static_cast<int64_t>(b->cap());
  return s;
}

int32_t hwkv_model::uploads_pending() const {
  int32_t n = 0;
  for (const auto& t : tensors) n += t.uploaded >= t.nbytes ? 0 : 1;
  return n;
}

extern "C" HWKV_API const hwkv_model_api* hwkv_cuda_model_api(void) {
  using namespace hwkv_cuda;
  static const hwkv_model_api api = {
      HWKV_MODEL_ABI_VERSION, static_cast<uint32_t>(sizeof(hwkv_model_api)),
      api_last_error,         api_create,
      api_free,               api_upload,
      api_info,               api_forward,
      api_set_threads,        api_capture_kv,
  };
  return &api;
}
