// model_params.cpp — see model_params.h.
#include "model_params.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>

namespace hwkv {
namespace model {

hwkv_status check_params(const hwkv_model_params* p) {
  const char* fn = "model_create";
  if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  struct {
    const char* name;
    int32_t v;
  } pos[] = {{"n_layer", p->n_layer}, {"n_embd", p->n_embd}, {"n_head", p->n_head},   {"n_kv_head", p->n_kv_head},
             {"head_dim", p->head_dim}, {"n_ff", p->n_ff},   {"n_vocab", p->n_vocab}};
  for (const auto& e : pos)
    if (e.v < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: %s must be >= 1, got %d", fn, e.name, e.v);
  if (p->n_head % p->n_kv_head != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_head (%d) must be a multiple of n_kv_head (%d)", fn, p->n_head,
                p->n_kv_head);
  if (p->flags & ~7u) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn, p->flags & ~7u);
  if (!(p->rms_norm_eps > 0) || !std::isfinite(p->rms_norm_eps))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rms_norm_eps must be finite and > 0, got %g", fn, p->rms_norm_eps);
  if (!std::isfinite(p->attn_factor) || p->attn_factor < 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: attn_factor must be finite and >= 0 (0 = 1), got %g", fn,
                p->attn_factor);
  if (!std::isfinite(p->attn_scale) || p->attn_scale < 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: attn_scale must be finite and >= 0 (0 = 1/sqrt(head_dim)), got %g",
                fn, p->attn_scale);
  if (p->rope.head_dim != p->head_dim)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope.head_dim (%d) must equal head_dim (%d)", fn, p->rope.head_dim,
                p->head_dim);
  const int64_t big = int64_t(1) << 31;
  if (int64_t(p->n_head) * p->head_dim >= big || int64_t(p->n_vocab) * p->n_embd >= (int64_t(1) << 40))
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: model dimensions too large", fn);
  return HWKV_OK;
}

int64_t wtype_row_bytes(int32_t type, int64_t n) {
  switch (type) {
    case HWKV_WTYPE_F32: return 4 * n;
    case HWKV_WTYPE_F16: return 2 * n;
    case HWKV_WTYPE_BF16: return 2 * n;
    case HWKV_WTYPE_Q8_0: return (n % 32 == 0) ? (n / 32) * 34 : -1;
    default: return -1;
  }
}

const char* wtype_name(int32_t type) {
  switch (type) {
    case HWKV_WTYPE_F32: return "F32";
    case HWKV_WTYPE_F16: return "F16";
    case HWKV_WTYPE_BF16: return "BF16";
    case HWKV_WTYPE_Q8_0: return "Q8_0";
    default: return "?";
  }
}

namespace {

enum Kind { kVector = 1, kMatrix = 2 };

struct Expect {
  Kind kind;
  int64_t ne0, ne1;  // vector: ne0 = length
  TensorRole role;
  int32_t layer;
  bool seen = false;
};

}  // namespace

hwkv_status check_tensors(const hwkv_model_params* p, const hwkv_tensor_desc* descs, int32_t n,
                          std::vector<TensorCheck>* out) {
  const char* fn = "model_create";
  if (n < 1 || !descs) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: no tensors given", fn);
  const bool tied = p->flags & HWKV_MODEL_TIED_EMBEDDINGS, bias = p->flags & HWKV_MODEL_QKV_BIAS,
             qkn = p->flags & HWKV_MODEL_QK_NORM;
  const int64_t D = p->n_embd, qd = int64_t(p->n_head) * p->head_dim, kvd = int64_t(p->n_kv_head) * p->head_dim;
  std::map<std::string, Expect> ex;
  auto add = [&](const std::string& name, Kind k, int64_t a, int64_t b, TensorRole role, int32_t layer) {
    Expect e;
    e.kind = k;
    e.ne0 = a;
    e.ne1 = b;
    e.role = role;
    e.layer = layer;
    ex[name] = e;
  };
  add("tok_embd", kMatrix, p->n_vocab, D, kTokEmbd, -1);
  add("output_norm", kVector, D, 1, kOutputNorm, -1);
  if (!tied) add("output", kMatrix, p->n_vocab, D, kOutput, -1);
  for (int32_t i = 0; i < p->n_layer; ++i) {
    const std::string pre = "blk." + std::to_string(i) + ".";
    add(pre + "attn_norm", kVector, D, 1, kAttnNorm, i);
    add(pre + "attn_q", kMatrix, qd, D, kAttnQ, i);
    add(pre + "attn_k", kMatrix, kvd, D, kAttnK, i);
    add(pre + "attn_v", kMatrix, kvd, D, kAttnV, i);
    add(pre + "attn_output", kMatrix, D, qd, kAttnOutput, i);
    if (bias) {
      add(pre + "attn_q_bias", kVector, qd, 1, kAttnQBias, i);
      add(pre + "attn_k_bias", kVector, kvd, 1, kAttnKBias, i);
      add(pre + "attn_v_bias", kVector, kvd, 1, kAttnVBias, i);
    }
    if (qkn) {
      add(pre + "attn_q_norm", kVector, p->head_dim, 1, kAttnQNorm, i);
      add(pre + "attn_k_norm", kVector, p->head_dim, 1, kAttnKNorm, i);
    }
    add(pre + "ffn_norm", kVector, D, 1, kFfnNorm, i);
    add(pre + "ffn_gate", kMatrix, p->n_ff, D, kFfnGate, i);
    add(pre + "ffn_up", kMatrix, p->n_ff, D, kFfnUp, i);
    add(pre + "ffn_down", kMatrix, D, p->n_ff, kFfnDown, i);
  }

  out->clear();
  out->reserve(static_cast<size_t>(n));
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
    TensorCheck t;
    t.name = d.name;
    t.type = d.type;
    t.is_vector = e.kind == kVector;
    t.ne0 = e.ne0;
    t.ne1 = e.ne1;
    t.nbytes = d.nbytes;
    t.role = e.role;
    t.layer = e.layer;
    out->push_back(std::move(t));
  }
  for (auto& kv : ex)
    if (!kv.second.seen) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: missing tensor '%s'", fn, kv.first.c_str());
  return HWKV_OK;
}

hwkv_status check_upload_index(int32_t mode, int32_t index, int32_t n_tensors) {
  const char* fn = "model_upload";
  if (mode != HWKV_MODEL_UPLOAD)
    return fail(HWKV_ERR_UNSUPPORTED, "%s: the model was created in FILE mode (weights come from files)", fn);
  if (index < 0 || index >= n_tensors)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: tensor index %d out of range [0, %d)", fn, index, n_tensors);
  return HWKV_OK;
}

hwkv_status check_upload_chunk(const std::string& name, int64_t size, int64_t uploaded, const void* data,
                               int64_t offset, int64_t nbytes) {
  const char* fn = "model_upload";
  if (nbytes < 0 || offset < 0 || offset > size || nbytes > size - offset)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: bytes [%lld, %lld) outside tensor '%s' (%lld bytes)", fn,
                static_cast<long long>(offset), static_cast<long long>(offset + nbytes), name.c_str(),
                static_cast<long long>(size));
  if (nbytes > 0 && !data) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: data is NULL", fn);
  if (offset > uploaded)
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "%s: tensor '%s': chunk at offset %lld leaves a gap (only %lld bytes uploaded so far; "
                "upload chunks in order)",
                fn, name.c_str(), static_cast<long long>(offset), static_cast<long long>(uploaded));
  return HWKV_OK;
}

hwkv_status check_forward_batch(const char* fn, const hwkv_model_params& P, const hwkv_store_params& sp,
                                const hwkv_forward_batch* b, bool* argmax_out, int32_t* lmode_out) {
  if (sp.n_layer != P.n_layer || sp.n_kv_head != P.n_kv_head || sp.head_dim != P.head_dim ||
      sp.head_dim_v != P.head_dim)
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "%s: store geometry (n_layer %d, n_kv_head %d, head_dim %d, head_dim_v %d) does not match the model "
                "(n_layer %d, n_kv_head %d, head_dim %d)",
                fn, sp.n_layer, sp.n_kv_head, sp.head_dim, sp.head_dim_v, P.n_layer, P.n_kv_head, P.head_dim);
  const int32_t n_seq = b->n_seq;
  if (n_seq < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_seq must be >= 1, got %d", fn, n_seq);
  if (!b->view_indptr || !b->view_blocks || !b->tok_indptr || !b->tokens)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: view_indptr, view_blocks, tok_indptr and tokens must not be NULL", fn);
  const bool argmax = (b->logits_mode & HWKV_LOGITS_ARGMAX) != 0;
  const int32_t lmode = b->logits_mode & ~HWKV_LOGITS_ARGMAX;
  if (lmode < HWKV_LOGITS_NONE || lmode > HWKV_LOGITS_ALL || (argmax && lmode == HWKV_LOGITS_NONE))
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "%s: logits_mode must be 0 (NONE), 1 (LAST) or 2 (ALL), optionally with 16 (ARGMAX) on LAST or ALL, "
                "got %d",
                fn, b->logits_mode);
  if (argmax && P.n_vocab > (1 << 24))
    return fail(HWKV_ERR_UNSUPPORTED, "%s: ARGMAX needs n_vocab <= 2^24 (ids travel as float32), n_vocab is %d", fn,
                P.n_vocab);
  if (b->view_indptr[0] != 0 || b->tok_indptr[0] != 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: view_indptr[0] and tok_indptr[0] must be 0", fn);
  for (int32_t s = 0; s < n_seq; ++s) {
    if (b->view_indptr[s + 1] <= b->view_indptr[s])
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sequence %d has an empty view (view_indptr[%d] = %d, [%d] = %d)", fn, s,
                  s, b->view_indptr[s], s + 1, b->view_indptr[s + 1]);
    if (b->tok_indptr[s + 1] <= b->tok_indptr[s])
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: sequence %d has no new tokens (tok_indptr[%d] = %d, [%d] = %d)", fn, s,
                  s, b->tok_indptr[s], s + 1, b->tok_indptr[s + 1]);
  }
  const int64_t n_tok = b->tok_indptr[n_seq];
  for (int64_t t = 0; t < n_tok; ++t)
    if (b->tokens[t] < 0 || b->tokens[t] >= P.n_vocab)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: token %lld is %d, outside the vocabulary [0, %d)", fn,
                  static_cast<long long>(t), b->tokens[t], P.n_vocab);
  *argmax_out = argmax;
  *lmode_out = lmode;
  return HWKV_OK;
}

hwkv_status check_capture_kv(const int32_t* tokens, int32_t n_tok, const float* k_pre, const float* v) {
  const char* fn = "model_capture_kv";
  if (!tokens) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tokens is NULL", fn);
  if (n_tok < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 1, got %d", fn, n_tok);
  if (!k_pre || !v) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: k_pre and v must not be NULL", fn);
  return HWKV_OK;
}

hwkv_store_params capture_store_params(const hwkv_model_params& P) {
  hwkv_store_params sp{};
  sp.n_layer = P.n_layer;
  sp.n_kv_head = P.n_kv_head;
  sp.head_dim = P.head_dim;
  sp.head_dim_v = P.head_dim;
  sp.page_tokens = 64;
  sp.dtype = HWKV_F32;
  sp.max_bytes = 0;
  return sp;
}

}  // namespace model
}  // namespace hwkv
