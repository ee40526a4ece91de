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

}  // namespace model
}  // namespace hwkv
