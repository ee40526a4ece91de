// exports.cpp — the WebAssembly face of the CPU core: flat C exports over hwkv_cpu_api().
//
// Kept deliberately thin (no validation, no policy; that lives in ts/backend/backend.ts). The only work done
// here is flattening the ABI for JavaScript:
//   - pointers are wasm32 addresses (the JS side copies typed arrays into the heap and back),
//   - int64_t arguments travel as double (exact up to 2^53) so no BigInt / i64 legalization is needed,
//   - hwkv_rope_params / hwkv_store_params arrive as a pointer to doubles in struct field order
//     (see ts/backend/raw.ts: ROPE_PARAMS_LEN, STORE_PARAMS_LEN), NULL for "no rope",
//   - hwkv_store_stats is returned as STORE_STATS_LEN doubles,
//   - the store handle is returned through a 4-byte slot (its address is the JS handle).
//   - model engine (hwkv_model.h, hwkv_cpu_model_api()): hwkv_model_params arrive as MODEL_PARAMS_LEN doubles;
//     tensor descriptors as parallel arrays: names as one blob of NUL-terminated UTF-8 strings plus a uint32
//     byte offset per tensor, types/n_dims as int32, ne as 4 doubles per tensor, nbytes as doubles. UPLOAD
//     mode only (no files here: the JS side refuses FILE mode); the model handle comes back through a slot.
//     hwkv_model_info is returned as MODEL_INFO_LEN doubles.
//   - quantizers (hwkv_quant.h, hwkv_cpu_quant_api()): hwkv_higgs_params arrive as HIGGS_PARAMS_LEN doubles,
//     hwkv_uniform_params as UNIFORM_PARAMS_LEN doubles; size queries return [n_words, n_scales] as 2 doubles.
// malloc/free are exported alongside (see scripts/build-wasm.sh).
#include <emscripten/emscripten.h>

#include <cstdint>
#include <cstdlib>

#include "../flat_params.h"

#define HWKV_WASM_EXPORT extern "C" EMSCRIPTEN_KEEPALIVE

namespace {

const hwkv_api* api() {
  static const hwkv_api* const a = hwkv_cpu_api();
  return a;
}

// Helper holding an optional decoded rope struct.
struct OptRope {
  hwkv_rope_params p;
  const hwkv_rope_params* ptr;
  explicit OptRope(const double* r) : p(), ptr(nullptr) {
    if (r != nullptr) {
      p = hwkv_flat::rope(r);
      ptr = &p;
    }
  }
};

using hwkv_flat::i64;

const hwkv_model_api* model_api() {
  static const hwkv_model_api* const a = hwkv_cpu_model_api();
  return a;
}

// Returned by hwkv_wasm_model_create when the descriptor array itself cannot be allocated (the JS side
// reports it as HWKV_ERR_OUT_OF_MEMORY with its own message: the core's last error is not set then).
constexpr int32_t kDescAllocFailed = -3;

}  // namespace

HWKV_WASM_EXPORT const char* hwkv_wasm_last_error(void) { return api()->last_error(); }

HWKV_WASM_EXPORT const char* hwkv_wasm_build_info(void) { return api()->build_info(); }

HWKV_WASM_EXPORT void hwkv_wasm_set_simd(int32_t force_scalar) { hwkv_cpu_set_simd(force_scalar); }

HWKV_WASM_EXPORT int32_t hwkv_wasm_rope_inv_freq(const double* rp, float* inv_freq, float* attention_factor) {
  OptRope r(rp);
  return api()->rope_inv_freq(r.ptr, inv_freq, attention_factor);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_rope_apply(const double* rp, float* x, double n_tok, int32_t n_head,
                                              const int32_t* pos) {
  OptRope r(rp);
  return api()->rope_apply(r.ptr, x, i64(n_tok), n_head, pos);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_pack_bits(const uint16_t* codes, double n, int32_t bits, uint32_t* words,
                                             double n_words) {
  return api()->pack_bits(codes, i64(n), bits, words, i64(n_words));
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_unpack_bits(const uint32_t* words, double n_words, int32_t bits,
                                               uint16_t* codes, double n) {
  return api()->unpack_bits(words, i64(n_words), bits, codes, i64(n));
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_fwht(float* x, double rows, int32_t n, float scale) {
  return api()->fwht(x, i64(rows), n, scale);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_store_create(const double* sp, hwkv_store_t** out) {
  const hwkv_store_params p = hwkv_flat::store(sp);
  *out = nullptr;
  return api()->store_create(&p, out);
}

// cd = [type, bits, sinks, buffer, chunk_tokens, grid_dim, grid_n, grid0_dim, grid0_n, seed]
// cd[10] = layer0_exact (AQUA), cd[11] = cache_bytes; rp (NULL or ROPE_PARAMS_LEN doubles) and predictors[n_pred] for AQUA.
HWKV_WASM_EXPORT int32_t hwkv_wasm_store_create_codec(const double* sp, const double* cd, const float* grid,
                                                      const float* grid0, hwkv_store_t** out, const double* rp,
                                                      const float* predictors, double n_pred) {
  const hwkv_store_params p = hwkv_flat::store(sp);
  hwkv_store_codec c = hwkv_flat::codec(cd, hwkv_flat::kCodecLen);
  c.grid = grid;
  c.grid0 = grid0;
  OptRope r(rp);
  c.rope = r.ptr;
  c.predictors = predictors;
  c.n_predictors = i64(n_pred);
  *out = nullptr;
  return api()->store_create_codec(&p, &c, out);
}

// info[6] as hwkv_api.store_codec_chunk (as doubles); buffers may be NULL. Sizes are checked on the JS side.
HWKV_WASM_EXPORT int32_t hwkv_wasm_store_codec_chunk(hwkv_store_t* s, int32_t block, int32_t token, int32_t layer,
                                                     int32_t which, uint32_t* codes, uint16_t* scales, uint16_t* zeros,
                                                     double* info) {
  int64_t inf[6] = {0, 0, 0, 0, 0, 0};
  const hwkv_status rc = api()->store_codec_chunk(s, block, token, layer, which, codes, scales, zeros, inf);
  for (int i = 0; i < 6; ++i) info[i] = static_cast<double>(inf[i]);
  return rc;
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_store_codec_stats(hwkv_store_t* s, double* out) {
  hwkv_store_codec_stats st = {};
  const hwkv_status rc = api()->store_codec_stats(s, &st);
  if (rc == HWKV_OK) hwkv_flat::put(st, out);
  return rc;
}

HWKV_WASM_EXPORT void hwkv_wasm_store_free(hwkv_store_t* s) { api()->store_free(s); }

HWKV_WASM_EXPORT int32_t hwkv_wasm_store_stats(hwkv_store_t* s, double* out) {
  hwkv_store_stats st = {};
  const hwkv_status rc = api()->store_stats(s, &st);
  if (rc == HWKV_OK) hwkv_flat::put(st, out);
  return rc;
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_block_create(hwkv_store_t* s, int32_t* out_block) {
  return api()->block_create(s, out_block);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_block_free(hwkv_store_t* s, int32_t block) { return api()->block_free(s, block); }

HWKV_WASM_EXPORT int32_t hwkv_wasm_block_len(hwkv_store_t* s, int32_t block, int32_t* out_len) {
  return api()->block_len(s, block, out_len);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_block_append(hwkv_store_t* s, int32_t block, int32_t n_tok, const float* k,
                                                const float* v, const double* rp) {
  OptRope r(rp);
  return api()->block_append(s, block, n_tok, k, v, r.ptr);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_block_truncate(hwkv_store_t* s, int32_t block, int32_t new_len) {
  return api()->block_truncate(s, block, new_len);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_block_merge(hwkv_store_t* s, int32_t dst, int32_t src, const double* rp) {
  OptRope r(rp);
  return api()->block_merge(s, dst, src, r.ptr);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_block_read(hwkv_store_t* s, int32_t block, int32_t layer, int32_t start,
                                              int32_t n_tok, float* k, float* v) {
  return api()->block_read(s, block, layer, start, n_tok, k, v);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_view_read(hwkv_store_t* s, const int32_t* blocks, int32_t n_blocks,
                                             int32_t layer, const double* rp, float* k, float* v, double total) {
  OptRope r(rp);
  return api()->view_read(s, blocks, n_blocks, layer, r.ptr, k, v, i64(total));
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_attn_views(hwkv_store_t* s, int32_t layer, const double* rp, int32_t n_seq,
                                              const int32_t* view_indptr, const int32_t* view_blocks,
                                              const int32_t* q_indptr, const int32_t* q_pos, const float* q,
                                              int32_t n_head, float scale, float* out, float* lse) {
  OptRope r(rp);
  hwkv_attn_batch b;
  b.n_seq = n_seq;
  b.view_indptr = view_indptr;
  b.view_blocks = view_blocks;
  b.q_indptr = q_indptr;
  b.q_pos = q_pos;
  return api()->attn_views(s, layer, r.ptr, &b, q, n_head, scale, out, lse);
}

// ---- Model engine (hwkv_model.h) ------------------------------------------------------------------------

HWKV_WASM_EXPORT int32_t hwkv_wasm_model_create(const double* mp, int32_t n_tensors, const char* names_blob,
                                                const uint32_t* name_offsets, const int32_t* types,
                                                const int32_t* n_dims, const double* ne, const double* nbytes,
                                                int32_t mode, hwkv_model_t** out) {
  *out = nullptr;
  const hwkv_model_params p = hwkv_flat::model(mp);
  hwkv_tensor_desc* d = nullptr;
  if (n_tensors > 0) {
    d = static_cast<hwkv_tensor_desc*>(std::calloc(static_cast<size_t>(n_tensors), sizeof(hwkv_tensor_desc)));
    if (d == nullptr) return kDescAllocFailed;
  }
  for (int32_t i = 0; i < n_tensors; ++i) {
    d[i].name = names_blob + name_offsets[i];
    d[i].type = types[i];
    d[i].n_dims = n_dims[i];
    for (int k = 0; k < 4; ++k) d[i].ne[k] = i64(ne[4 * i + k]);
    d[i].file = nullptr;
    d[i].offset = 0;
    d[i].nbytes = i64(nbytes[i]);
  }
  const int32_t rc = model_api()->model_create(&p, d, n_tensors, mode, out);
  std::free(d);
  return rc;
}

HWKV_WASM_EXPORT void hwkv_wasm_model_free(hwkv_model_t* m) { model_api()->model_free(m); }

HWKV_WASM_EXPORT int32_t hwkv_wasm_model_upload(hwkv_model_t* m, int32_t index, const void* data, double offset,
                                                double nbytes) {
  return model_api()->model_upload(m, index, data, i64(offset), i64(nbytes));
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_model_info(hwkv_model_t* m, double* out) {
  hwkv_model_info mi = {};
  const hwkv_status rc = model_api()->model_info(m, &mi);
  if (rc == HWKV_OK) hwkv_flat::put(mi, out);
  return rc;
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_model_forward(hwkv_model_t* m, hwkv_store_t* s, int32_t n_seq,
                                                 int32_t logits_mode, const int32_t* view_indptr,
                                                 const int32_t* view_blocks, const int32_t* tok_indptr,
                                                 const int32_t* tokens, float* logits, double n_logits) {
  hwkv_forward_batch b;
  b.n_seq = n_seq;
  b.logits_mode = logits_mode;
  b.view_indptr = view_indptr;
  b.view_blocks = view_blocks;
  b.tok_indptr = tok_indptr;
  b.tokens = tokens;
  return model_api()->model_forward(m, s, &b, logits, i64(n_logits));
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_model_set_threads(hwkv_model_t* m, int32_t n_threads) {
  return model_api()->model_set_threads(m, n_threads);
}

// K/V tap: k_pre and v [n_layer, n_tok, n_kv_head*head_dim] (sizes checked by ts/backend/wasm.ts).
HWKV_WASM_EXPORT int32_t hwkv_wasm_model_capture_kv(hwkv_model_t* m, const int32_t* tokens, int32_t n_tok,
                                                    float* k_pre, float* v) {
  return model_api()->model_capture_kv(m, tokens, n_tok, k_pre, v);
}

// ---- Quantizers (hwkv_quant.h) ---------------------------------------------------------------------------

namespace {

const hwkv_quant_api* quant_api() {
  static const hwkv_quant_api* const a = hwkv_cpu_quant_api();
  return a;
}

}  // namespace

HWKV_WASM_EXPORT int32_t hwkv_wasm_higgs_size(const double* hp, double n_tok, double* out) {
  const hwkv_higgs_params p = hwkv_flat::higgs(hp);
  int64_t w = 0, s = 0;
  const hwkv_status rc = quant_api()->higgs_size(&p, i64(n_tok), &w, &s);
  if (rc == HWKV_OK) {
    out[0] = static_cast<double>(w);
    out[1] = static_cast<double>(s);
  }
  return rc;
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_higgs_encode(const double* hp, const float* grid, const float* x, double n_tok,
                                                uint32_t* codes, double n_words, uint16_t* scales) {
  const hwkv_higgs_params p = hwkv_flat::higgs(hp);
  return quant_api()->higgs_encode(&p, grid, x, i64(n_tok), codes, i64(n_words), scales);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_higgs_decode(const double* hp, const float* grid, const uint32_t* codes,
                                                double n_words, const uint16_t* scales, double n_tok, float* y,
                                                int32_t accumulate) {
  const hwkv_higgs_params p = hwkv_flat::higgs(hp);
  return quant_api()->higgs_decode(&p, grid, codes, i64(n_words), scales, i64(n_tok), y, accumulate);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_grid_nearest(const float* grid, int32_t n_points, int32_t dim, const float* z,
                                                double m, uint16_t* idx) {
  return quant_api()->grid_nearest(grid, n_points, dim, z, i64(m), idx);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_higgs_signs(double seed, int32_t channels, float* signs) {
  return quant_api()->higgs_signs(static_cast<uint32_t>(seed), channels, signs);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_uniform_size(const double* up, double n_tok, double* out) {
  const hwkv_uniform_params p = hwkv_flat::uniform(up);
  int64_t w = 0, s = 0;
  const hwkv_status rc = quant_api()->uniform_size(&p, i64(n_tok), &w, &s);
  if (rc == HWKV_OK) {
    out[0] = static_cast<double>(w);
    out[1] = static_cast<double>(s);
  }
  return rc;
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_uniform_encode(const double* up, const float* x, double n_tok, uint32_t* codes,
                                                  double n_words, uint16_t* scales, uint16_t* zeros) {
  const hwkv_uniform_params p = hwkv_flat::uniform(up);
  return quant_api()->uniform_encode(&p, x, i64(n_tok), codes, i64(n_words), scales, zeros);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_uniform_decode(const double* up, const uint32_t* codes, double n_words,
                                                  const uint16_t* scales, const uint16_t* zeros, double n_tok,
                                                  float* y, int32_t accumulate) {
  const hwkv_uniform_params p = hwkv_flat::uniform(up);
  return quant_api()->uniform_decode(&p, codes, i64(n_words), scales, zeros, i64(n_tok), y, accumulate);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_ridge_accumulate(const float* x, const float* y, double n, int32_t p, int32_t q,
                                                    double* xtx, double* xty, double* yy) {
  return quant_api()->ridge_accumulate(x, y, i64(n), p, q, xtx, xty, yy);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_ridge_solve(const double* xtx, const double* xty, int32_t p, int32_t q,
                                               double lambda_rel, float* w) {
  return quant_api()->ridge_solve(xtx, xty, p, q, lambda_rel, w);
}

HWKV_WASM_EXPORT int32_t hwkv_wasm_linear_apply(const float* x, double n, int32_t p, int32_t q, const float* w,
                                                float* y) {
  return quant_api()->linear_apply(x, i64(n), p, q, w, y);
}
