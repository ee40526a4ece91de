// flat_params.h — the ABI's parameter structs as flat arrays of doubles, shared by both bindings.
//
// JavaScript passes every hwkv_*_params struct as a Float64Array in field order (the layouts below; the TS
// side is ts/backend/raw.ts: ROPE_PARAMS_LEN, STORE_PARAMS_LEN, CODEC_LEN, HIGGS_PARAMS_LEN, …) and reads
// the stats / info structs back the same way. This header is the one C++ definition of those layouts:
//   - the Node-API addon (bindings/napi) checks a layout's integer fields with bad_field() (its messages
//     name the field) and then decodes with the functions below;
//   - the WASM exports (bindings/wasm/exports.cpp) decode directly (validation lives in ts/backend).
// Integers travel as doubles (exact to 2^53); a decoder only converts, it never validates.
#ifndef HWKV_BINDINGS_FLAT_PARAMS_H
#define HWKV_BINDINGS_FLAT_PARAMS_H

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../core/include/hwkv.h"
#include "../core/include/hwkv_model.h"
#include "../core/include/hwkv_quant.h"

namespace hwkv_flat {

// What a field holds. Reals (F64, F32) are taken as they are.
enum Kind : int { I32, U32, I53, F64, F32 };

struct Field {
  const char* name;
  Kind kind;
};

// Layouts (field order = struct order).
constexpr Field kRope[] = {{"head_dim", I32},        {"rotary_dim", I32}, {"style", I32},
                           {"scaling", I32},         {"theta", F64},      {"factor", F64},
                           {"low_freq_factor", F64}, {"high_freq_factor", F64},
                           {"original_max_position", F64}, {"beta_fast", F64}, {"beta_slow", F64},
                           {"yarn_truncate", I32}};
constexpr Field kStore[] = {{"n_layer", I32},     {"n_kv_head", I32}, {"head_dim", I32}, {"head_dim_v", I32},
                            {"page_tokens", I32}, {"dtype", I32},     {"max_bytes", I53}};
// hwkv_store_codec's scalar fields; the first kCodecMinLen are required, the last two optional.
constexpr Field kCodec[] = {{"type", I32},      {"bits", I32},      {"sinks", I32},        {"buffer", I32},
                            {"chunk_tokens", I32}, {"grid_dim", I32}, {"grid_n", I32},     {"grid0_dim", I32},
                            {"grid0_n", I32},   {"seed", U32},      {"layer0_exact", I32}, {"cache_bytes", I53}};
constexpr Field kHiggs[] = {{"channels", I32}, {"group", I32},     {"dim", I32},
                            {"n_points", I32}, {"use_signs", I32}, {"seed", U32}};
constexpr Field kUniform[] = {{"channels", I32}, {"bits", I32}, {"axis", I32}, {"group", I32}};
// hwkv_model_params without its rope; the rope's kRope layout follows at kModelLen.
constexpr Field kModel[] = {{"n_layer", I32},      {"n_embd", I32},      {"n_head", I32},     {"n_kv_head", I32},
                            {"head_dim", I32},     {"n_ff", I32},        {"n_vocab", I32},    {"flags", U32},
                            {"rms_norm_eps", F32}, {"attn_factor", F32}, {"attn_scale", F32}, {"n_threads", I32}};

template <class T, size_t N>
constexpr size_t len(const T (&)[N]) {
  return N;
}
constexpr size_t kRopeLen = len(kRope);        // 12
constexpr size_t kStoreLen = len(kStore);      // 7
constexpr size_t kCodecLen = len(kCodec);      // 12
constexpr size_t kCodecMinLen = 10;
constexpr size_t kHiggsLen = len(kHiggs);      // 6
constexpr size_t kUniformLen = len(kUniform);  // 4
constexpr size_t kModelLen = len(kModel);      // 12 (+ kRopeLen for the rope)
constexpr size_t kStoreStatsLen = 5;
constexpr size_t kCodecStatsLen = 5;
constexpr size_t kModelInfoLen = 6;

// True iff d is a value of an integer kind (reals always fit).
inline bool fits(double d, Kind k) {
  switch (k) {
    case I32: return std::trunc(d) == d && d >= -2147483648.0 && d <= 2147483647.0;
    case U32: return std::trunc(d) == d && d >= 0.0 && d <= 4294967295.0;
    case I53: return std::trunc(d) == d && std::fabs(d) <= 9007199254740991.0;
    default: return true;
  }
}
// "an int32 integer" etc., for messages.
inline const char* kind_text(Kind k) {
  switch (k) {
    case I32: return "an int32 integer";
    case U32: return "a uint32 integer";
    case I53: return "a safe integer";
    default: return "a number";
  }
}
// Index of the first of a[0..n) that its field's kind cannot hold, or -1.
inline int bad_field(const double* a, const Field* f, size_t n) {
  for (size_t k = 0; k < n; ++k)
    if (!fits(a[k], f[k].kind)) return static_cast<int>(k);
  return -1;
}

inline int32_t i32(double d) { return static_cast<int32_t>(d); }
inline int64_t i64(double d) { return static_cast<int64_t>(d); }

inline hwkv_rope_params rope(const double* r) {
  hwkv_rope_params p{};
  p.head_dim = i32(r[0]);
  p.rotary_dim = i32(r[1]);
  p.style = i32(r[2]);
  p.scaling = i32(r[3]);
  p.theta = r[4];
  p.factor = r[5];
  p.low_freq_factor = r[6];
  p.high_freq_factor = r[7];
  p.original_max_position = r[8];
  p.beta_fast = r[9];
  p.beta_slow = r[10];
  p.yarn_truncate = i32(r[11]);
  return p;
}

inline hwkv_store_params store(const double* s) {
  hwkv_store_params p{};
  p.n_layer = i32(s[0]);
  p.n_kv_head = i32(s[1]);
  p.head_dim = i32(s[2]);
  p.head_dim_v = i32(s[3]);
  p.page_tokens = i32(s[4]);
  p.dtype = i32(s[5]);
  p.max_bytes = i64(s[6]);
  return p;
}

// The scalar fields of n >= kCodecMinLen doubles; pointers (grids, rope, predictors) are left null.
inline hwkv_store_codec codec(const double* c, size_t n) {
  hwkv_store_codec p{};
  p.type = i32(c[0]);
  p.bits = i32(c[1]);
  p.sinks = i32(c[2]);
  p.buffer = i32(c[3]);
  p.chunk_tokens = i32(c[4]);
  p.grid_dim = i32(c[5]);
  p.grid_n = i32(c[6]);
  p.grid0_dim = i32(c[7]);
  p.grid0_n = i32(c[8]);
  p.seed = static_cast<uint32_t>(c[9]);
  if (n > 10) p.layer0_exact = i32(c[10]);
  if (n > 11) p.cache_bytes = i64(c[11]);
  return p;
}

inline hwkv_higgs_params higgs(const double* h) {
  hwkv_higgs_params p{};
  p.channels = i32(h[0]);
  p.group = i32(h[1]);
  p.dim = i32(h[2]);
  p.n_points = i32(h[3]);
  p.use_signs = i32(h[4]);
  p.seed = static_cast<uint32_t>(h[5]);
  return p;
}

inline hwkv_uniform_params uniform(const double* u) {
  hwkv_uniform_params p{};
  p.channels = i32(u[0]);
  p.bits = i32(u[1]);
  p.axis = i32(u[2]);
  p.group = i32(u[3]);
  return p;
}

// kModelLen + kRopeLen doubles.
inline hwkv_model_params model(const double* m) {
  hwkv_model_params p{};
  p.n_layer = i32(m[0]);
  p.n_embd = i32(m[1]);
  p.n_head = i32(m[2]);
  p.n_kv_head = i32(m[3]);
  p.head_dim = i32(m[4]);
  p.n_ff = i32(m[5]);
  p.n_vocab = i32(m[6]);
  p.flags = static_cast<uint32_t>(m[7]);
  p.rms_norm_eps = static_cast<float>(m[8]);
  p.attn_factor = static_cast<float>(m[9]);
  p.attn_scale = static_cast<float>(m[10]);
  p.n_threads = i32(m[11]);
  p.rope = rope(m + kModelLen);
  return p;
}

// Results back to JavaScript.
inline void put(const hwkv_store_stats& st, double* out) {
  out[0] = static_cast<double>(st.bytes_reserved);
  out[1] = static_cast<double>(st.bytes_in_use);
  out[2] = st.pages_in_use;
  out[3] = st.pages_free;
  out[4] = st.blocks_live;
}
inline void put(const hwkv_store_codec_stats& st, double* out) {
  out[0] = static_cast<double>(st.bytes_compressed);
  out[1] = static_cast<double>(st.tokens_compressed);
  out[2] = static_cast<double>(st.values_compressed);
  out[3] = static_cast<double>(st.chunks);
  out[4] = static_cast<double>(st.bytes_scratch);
}
inline void put(const hwkv_model_info& mi, double* out) {
  out[0] = static_cast<double>(mi.weight_bytes);
  out[1] = static_cast<double>(mi.scratch_bytes);
  out[2] = mi.n_tensors;
  out[3] = mi.uploads_pending;
  out[4] = mi.mapped;
  out[5] = mi.params.n_threads;
}

}  // namespace hwkv_flat

#endif
