// model_params.cpp — see model_params.h.
#include "model_params.h"

#include <cmath>
#include <cstdint>

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

}  // namespace model
}  // namespace hwkv
