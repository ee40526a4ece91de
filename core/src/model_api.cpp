// model_api.cpp — the model engine's C ABI (hwkv_model.h): validation of parameters and tensors, the function
// table hwkv_cpu_model_api().
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "model/model.h"
#include "model_params.h"
#include "store.h"

struct hwkv_model {
  hwkv::model::Model m;
};

namespace hwkv {
namespace model {

namespace {

enum Kind { kVector = 1, kMatrix = 2 };

struct Expect {
  Kind kind;
  int64_t ne0, ne1;  // vector: ne0 = length
  Tensor** slot;
  bool seen = false;
};

hwkv_status create(const hwkv_model_params* p, const hwkv_tensor_desc* descs, int32_t n, int32_t mode,
                   hwkv_model_t** out) {
  const char* fn = "model_create";
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  *out = nullptr;
  HWKV_TRY(check_params(p));
  if (mode != HWKV_MODEL_FILE && mode != HWKV_MODEL_UPLOAD)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: mode must be 0 (FILE) or 1 (UPLOAD), got %d", fn, mode);
  if (n < 1 || !descs) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: no tensors given", fn);

  std::unique_ptr<hwkv_model> h(new hwkv_model());
  Model& m = h->m;
  m.p = *p;
  m.mode = mode;
  HWKV_TRY(rope_init(&p->rope, fn, &m.rope));
  m.attn_factor = p->attn_factor == 0.0f ? static_cast<float>(m.rope.attention_factor) : p->attn_factor;
  m.attn_scale = p->attn_scale == 0.0f ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(p->head_dim)))
                                        : p->attn_scale;
  m.layers.resize(static_cast<size_t>(p->n_layer));

  // Expected tensors.
  const bool tied = p->flags & HWKV_MODEL_TIED_EMBEDDINGS, bias = p->flags & HWKV_MODEL_QKV_BIAS,
             qkn = p->flags & HWKV_MODEL_QK_NORM;
  const int64_t D = p->n_embd, qd = int64_t(p->n_head) * p->head_dim, kvd = int64_t(p->n_kv_head) * p->head_dim;
  std::map<std::string, Expect> ex;
  auto add = [&](const std::string& name, Kind k, int64_t a, int64_t b, Tensor** slot) {
    Expect e;
    e.kind = k;
    e.ne0 = a;
    e.ne1 = b;
    e.slot = slot;
    ex[name] = e;
  };
  add("tok_embd", kMatrix, p->n_vocab, D, &m.tok_embd);
  add("output_norm", kVector, D, 1, &m.output_norm);
  if (!tied) add("output", kMatrix, p->n_vocab, D, &m.output);
  for (int32_t i = 0; i < p->n_layer; ++i) {
    Layer& L = m.layers[i];
    const std::string pre = "blk." + std::to_string(i) + ".";
    add(pre + "attn_norm", kVector, D, 1, &L.attn_norm);
    add(pre + "attn_q", kMatrix, qd, D, &L.wq);
    add(pre + "attn_k", kMatrix, kvd, D, &L.wk);
    add(pre + "attn_v", kMatrix, kvd, D, &L.wv);
    add(pre + "attn_output", kMatrix, D, qd, &L.wo);
    if (bias) {
      add(pre + "attn_q_bias", kVector, qd, 1, &L.bq);
      add(pre + "attn_k_bias", kVector, kvd, 1, &L.bk);
      add(pre + "attn_v_bias", kVector, kvd, 1, &L.bv);
    }
    if (qkn) {
      add(pre + "attn_q_norm", kVector, p->head_dim, 1, &L.q_norm);
      add(pre + "attn_k_norm", kVector, p->head_dim, 1, &L.k_norm);
    }
    add(pre + "ffn_norm", kVector, D, 1, &L.ffn_norm);
    add(pre + "ffn_gate", kMatrix, p->n_ff, D, &L.gate);
    add(pre + "ffn_up", kMatrix, p->n_ff, D, &L.up);
    add(pre + "ffn_down", kMatrix, D, p->n_ff, &L.down);
  }

  m.tensors.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const hwkv_tensor_desc& d = descs[i];
    if (!d.name) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensors[%d].name is NULL", fn, i);
    auto it = ex.find(d.name);
    if (it == ex.end()) {
      const char* hint = "";
      if (std::strstr(d.name, "bias")) hint = " (set HWKV_MODEL_QKV_BIAS for q/k/v biases)";
      else if (std::strstr(d.name, "_norm")) hint = " (set HWKV_MODEL_QK_NORM for q/k norms)";
      else if (!std::strcmp(d.name, "output")) hint = " (HWKV_MODEL_TIED_EMBEDDINGS is set)";
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: unknown tensor '%s'%s", fn, d.name, hint);
    }
    Expect& e = it->second;
    if (e.seen) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' is listed twice", fn, d.name);
    e.seen = true;
    const bool t_ok = d.type == HWKV_WTYPE_F32 || d.type == HWKV_WTYPE_F16 || d.type == HWKV_WTYPE_BF16 ||
                      (d.type == HWKV_WTYPE_Q8_0 && e.kind == kMatrix);
    if (!t_ok)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has type %d; expected F32 (0), F16 (1), BF16 (30)%s", fn,
                  d.name, d.type, e.kind == kMatrix ? " or Q8_0 (8)" : " (vectors cannot be Q8_0)");
    int64_t a = 0, b = 1;
    if (d.n_dims == 1) {
      a = d.ne[0];
    } else if (d.n_dims == 2) {
      a = d.ne[0];
      b = d.ne[1];
      if (e.kind == kVector && a == 1) {  // [1, n] accepted as a vector
        a = b;
        b = 1;
      }
    } else {
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has n_dims %d; expected %d", fn, d.name, d.n_dims,
                  e.kind == kMatrix ? 2 : 1);
    }
    if ((e.kind == kMatrix && d.n_dims != 2) || a != e.ne0 || b != e.ne1) {
      if (e.kind == kMatrix)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has shape [%lld, %lld] (n_dims %d); expected [%lld, %lld]",
                    fn, d.name, (long long)d.ne[0], (long long)(d.n_dims > 1 ? d.ne[1] : 0), d.n_dims, (long long)e.ne0,
                    (long long)e.ne1);
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has %lld x %lld elements; expected a vector of %lld", fn,
                  d.name, (long long)a, (long long)b, (long long)e.ne0);
    }
    const int64_t rb = wtype_row_bytes(d.type, e.ne1 == 1 && e.kind == kVector ? e.ne0 : e.ne1);
    if (rb < 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s': Q8_0 needs an inner dimension divisible by 32, got %lld",
                  fn, d.name, (long long)e.ne1);
    const int64_t want = e.kind == kVector ? rb : rb * e.ne0;
    if (d.nbytes != want)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tensor '%s' (%s, %lld x %lld) must be %lld bytes, nbytes says %lld", fn,
                  d.name, wtype_name(d.type), (long long)a, (long long)b, (long long)want, (long long)d.nbytes);
    Tensor t;
    t.name = d.name;
    t.type = d.type;
    t.n_dims = e.kind == kVector ? 1 : 2;
    t.ne0 = e.ne0;
    t.ne1 = e.ne1;
    t.nbytes = d.nbytes;
    m.tensors.push_back(std::move(t));
  }
  for (auto& kv : ex)
    if (!kv.second.seen) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: missing tensor '%s'", fn, kv.first.c_str());
  for (Tensor& t : m.tensors) *ex[t.name].slot = &t;  // tensors never move from here on
  if (tied) m.output = m.tok_embd;

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
  const char* fn = "model_capture_kv";
  if (!tokens) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tokens is NULL", fn);
  if (n_tok < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 1, got %d", fn, n_tok);
  if (!k_pre || !v) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: k_pre and v must not be NULL", fn);
  hwkv_store_params sp{};
  sp.n_layer = m.p.n_layer;
  sp.n_kv_head = m.p.n_kv_head;
  sp.head_dim = m.p.head_dim;
  sp.head_dim_v = m.p.head_dim;
  sp.page_tokens = 64;
  sp.dtype = HWKV_F32;
  sp.max_bytes = 0;
  hwkv_store store;
  HWKV_TRY(BlockStore::create(sp, &store.impl));
  int32_t block = -1;
  HWKV_TRY(store.impl->create_block(&block));
  struct Untap {
    Model& m;
    ~Untap() { m.cap_k = m.cap_v = nullptr; }
  } untap{m};
  m.cap_k = k_pre;
  m.cap_v = v;
  m.cap_n_tok = n_tok;
  const int32_t chunk = 256;
  for (int32_t off = 0; off < n_tok; off += chunk) {
    const int32_t n = n_tok - off < chunk ? n_tok - off : chunk;
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
    m.cap_off = off;
    HWKV_TRY(forward(m, &store, &b, nullptr, 0));
  }
  return HWKV_OK;
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
