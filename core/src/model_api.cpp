// model_api.cpp — the model engine's C ABI (hwkv_model.h): model creation (parameter and tensor-table checks:
// model_params.cpp, shared with the CUDA library), the function table hwkv_cpu_model_api().
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "model/model.h"
#include "model_params.h"
#include "store.h"

struct hwkv_model {
  hwkv::model::Model m;
};

namespace hwkv {
namespace model {

namespace {

hwkv_status create(const hwkv_model_params* p, const hwkv_tensor_desc* descs, int32_t n, int32_t mode,
                   hwkv_model_t** out) {
  const char* fn = "model_create";
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  *out = nullptr;
  HWKV_TRY(check_params(p));
  if (mode != HWKV_MODEL_FILE && mode != HWKV_MODEL_UPLOAD)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: mode must be 0 (FILE) or 1 (UPLOAD), got %d", fn, mode);
  std::vector<TensorCheck> checked;
  HWKV_TRY(check_tensors(p, descs, n, &checked));

  std::unique_ptr<hwkv_model> h(new hwkv_model());
  Model& m = h->m;
  m.p = *p;
  m.mode = mode;
  HWKV_TRY(rope_init(&p->rope, fn, &m.rope));
  m.attn_factor = p->attn_factor == 0.0f ? static_cast<float>(m.rope.attention_factor) : p->attn_factor;
  m.attn_scale = p->attn_scale == 0.0f ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(p->head_dim)))
                                        : p->attn_scale;
  m.layers.resize(static_cast<size_t>(p->n_layer));

  m.tensors.reserve(static_cast<size_t>(n));
  for (const TensorCheck& c : checked) {
    Tensor t;
    init_tensor(t, c);
    m.tensors.push_back(std::move(t));
  }
  for (size_t i = 0; i < checked.size(); ++i) *tensor_slot(m, checked[i]) = &m.tensors[i];  // never move from here on
  if (p->flags & HWKV_MODEL_TIED_EMBEDDINGS) m.output = m.tok_embd;

  if (mode == HWKV_MODEL_FILE)
    HWKV_TRY(attach_files(m, descs, n));
  else
    HWKV_TRY(allocate_uploads(m));

  m.pool.reset(new ThreadPool(p->n_threads));
  m.p.n_threads = m.pool->size();
  *out = h.release();
  return HWKV_OK;
}

const char* api_last_error() { return last_error(); }

hwkv_status api_create(const hwkv_model_params* p, const hwkv_tensor_desc* t, int32_t n, int32_t mode,
                       hwkv_model_t** out) {
  if (out) *out = nullptr;
  return guarded("model_create", [&] { return create(p, t, n, mode, out); });
}

void api_free(hwkv_model_t* m) { delete m; }

hwkv_status api_upload(hwkv_model_t* m, int32_t index, const void* data, int64_t offset, int64_t nbytes) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_upload: model is NULL");
  return guarded("model_upload", [&] { return upload(m->m, index, data, offset, nbytes); });
}

hwkv_status api_info(hwkv_model_t* m, hwkv_model_info* out) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_info: model is NULL");
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_info: out is NULL");
  std::memset(out, 0, sizeof *out);
  out->params = m->m.p;
  out->weight_bytes = m->m.weight_bytes();
  out->scratch_bytes = m->m.scratch_bytes();
  out->n_tensors = static_cast<int32_t>(m->m.tensors.size());
  out->uploads_pending = m->m.uploads_pending();
  bool mapped = false;
  for (const auto& f : m->m.files) mapped = mapped || f->map != nullptr;
  out->mapped = mapped ? 1 : 0;
  return HWKV_OK;
}

hwkv_status api_forward(hwkv_model_t* m, hwkv_store_t* s, const hwkv_forward_batch* b, float* logits,
                        int64_t n_logits) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_forward: model is NULL");
  return guarded("model_forward", [&] { return forward(m->m, s, b, logits, n_logits); });
}

hwkv_status api_set_threads(hwkv_model_t* m, int32_t n_threads) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_set_threads: model is NULL");
  return guarded("model_set_threads", [&] {
    m->m.pool.reset(new ThreadPool(n_threads));
    m->m.p.n_threads = m->m.pool->size();
    return HWKV_OK;
  });
}

// One sequence through a private f32 store in chunks of 256 tokens, the forward's tap writing every layer's
// pre-RoPE keys and values (see hwkv_model_api.model_capture_kv).
hwkv_status capture_kv(Model& m, const int32_t* tokens, int32_t n_tok, float* k_pre, float* v) {
  HWKV_TRY(model::check_capture_kv(tokens, n_tok, k_pre, v));
  hwkv_store store;
  HWKV_TRY(BlockStore::create(model::capture_store_params(m.p), &store.impl));
  int32_t block = -1;
  HWKV_TRY(store.impl->create_block(&block));
  struct Untap {
    Model& m;
    ~Untap() { m.cap_k = m.cap_v = nullptr; }
  } untap{m};
  m.cap_k = k_pre;
  m.cap_v = v;
  m.cap_n_tok = n_tok;
  return model::for_each_capture_chunk(tokens, n_tok, block, [&](int32_t off, int32_t, const hwkv_forward_batch& b) {
    m.cap_off = off;
    return forward(m, &store, &b, nullptr, 0);
  });
}

hwkv_status api_capture_kv(hwkv_model_t* m, const int32_t* tokens, int32_t n_tok, float* k_pre, float* v) {
  if (!m) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_capture_kv: model is NULL");
  return guarded("model_capture_kv", [&] { return capture_kv(m->m, tokens, n_tok, k_pre, v); });
}

}  // namespace

}  // namespace model
}  // namespace hwkv

extern "C" HWKV_API const hwkv_model_api* hwkv_cpu_model_api(void) {
  using namespace hwkv::model;
  static const hwkv_model_api api = {
      HWKV_MODEL_ABI_VERSION, static_cast<uint32_t>(sizeof(hwkv_model_api)),
      api_last_error,         api_create,
      api_free,               api_upload,
      api_info,               api_forward,
      api_set_threads,        api_capture_kv,
  };
  return &api;
}
