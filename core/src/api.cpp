// api.cpp — the C ABI of the CPU core: thin wrappers (null checks, no exceptions across) over the internal API.
#include <cstdio>
#include <cstring>
#include <memory>

#include "attn.h"
#include "common.h"
#include "dispatch.h"
#include "fwht.h"
#include "pack.h"
#include "rope.h"
#include "store.h"

namespace hwkv {

namespace {

#define HWKV_STORE_OR_FAIL(fn, s) \
  if (!(s) || !(s)->impl) return fail(HWKV_ERR_INVALID_ARGUMENT, fn ": store is NULL")

const char* api_last_error() { return last_error(); }

#if defined(__EMSCRIPTEN__)
#define HWKV_STR2(x) #x
#define HWKV_STR(x) HWKV_STR2(x)
#define HWKV_COMPILER "emscripten " HWKV_STR(__EMSCRIPTEN_major__) "." HWKV_STR(__EMSCRIPTEN_minor__) "." HWKV_STR(__EMSCRIPTEN_tiny__)
#elif defined(__clang__)
#define HWKV_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define HWKV_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define HWKV_STR2(x) #x
#define HWKV_STR(x) HWKV_STR2(x)
#define HWKV_COMPILER "msvc " HWKV_STR(_MSC_FULL_VER)
#else
#define HWKV_COMPILER "unknown"
#endif

// JSON-escapes src into dst (quotes and backslashes; control characters dropped).
void json_escape(const char* src, char* dst, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; src[i] && j + 2 < cap; ++i) {
    const char c = src[i];
    if (static_cast<unsigned char>(c) < 0x20) continue;
    if (c == '"' || c == '\\') dst[j++] = '\\';
    dst[j++] = c;
  }
  dst[j] = 0;
}

struct BuildInfo {
  char text[512];
  explicit BuildInfo(const char* simd) {
    char comp[256];
    json_escape(HWKV_COMPILER, comp, sizeof comp);
    const char* avail =
#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2 && (defined(__x86_64__) || defined(_M_X64))
        "[\"avx2\",\"scalar\"]";
#elif defined(HWKV_HAVE_WASM_SIMD) && HWKV_HAVE_WASM_SIMD && defined(__EMSCRIPTEN__)
        "[\"simd128\",\"scalar\"]";
#else
        "[\"scalar\"]";
#endif
    std::snprintf(text, sizeof text,
                  "{\"backend\":\"cpu\",\"abi\":%d,\"simd\":\"%s\",\"simd_built\":%s,\"threads\":1,\"dtypes\":[\"f32\",\"f16\"],"
                  "\"compiler\":\"%s\"}",
                  HWKV_ABI_VERSION, simd, avail, comp);
  }
};

const char* api_build_info() {
  const char* name = kernels().name;
  if (std::strcmp(name, "scalar") == 0) {
    static const BuildInfo info("scalar");
    return info.text;
  }
  static const BuildInfo best(name);
  return best.text;
}

hwkv_status api_rope_inv_freq(const hwkv_rope_params* p, float* inv_freq, float* attention_factor) {
  return guarded("rope_inv_freq", [&] {
    Rope r;
    HWKV_TRY(rope_init(p, "rope_inv_freq", &r));
    if (!inv_freq) return fail(HWKV_ERR_INVALID_ARGUMENT, "rope_inv_freq: inv_freq is NULL");
    for (size_t i = 0; i < r.inv_freq.size(); ++i) inv_freq[i] = static_cast<float>(r.inv_freq[i]);
    if (attention_factor) *attention_factor = static_cast<float>(r.attention_factor);
    return HWKV_OK;
  });
}

hwkv_status api_rope_apply(const hwkv_rope_params* p, float* x, int64_t n_tok, int32_t n_head, const int32_t* pos) {
  return guarded("rope_apply", [&] {
    Rope r;
    HWKV_TRY(rope_init(p, "rope_apply", &r));
    if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "rope_apply: n_tok must be >= 0, got %lld", (long long)n_tok);
    if (n_head < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "rope_apply: n_head must be >= 1, got %d", n_head);
    if (n_tok == 0) return HWKV_OK;
    if (!x) return fail(HWKV_ERR_INVALID_ARGUMENT, "rope_apply: x is NULL");
    if (!pos) return fail(HWKV_ERR_INVALID_ARGUMENT, "rope_apply: pos is NULL");
    std::vector<float> C(static_cast<size_t>(r.rotary_dim)), S(static_cast<size_t>(r.rotary_dim));
    const int64_t row = int64_t(n_head) * r.head_dim;
    for (int64_t t = 0; t < n_tok; ++t) {
      if (t == 0 || pos[t] != pos[t - 1]) rope_table_one(r, static_cast<double>(pos[t]), C.data(), S.data());
      rope_rotate(r, x + t * row, n_head, r.head_dim, C.data(), S.data());
    }
    return HWKV_OK;
  });
}

hwkv_status api_pack_bits(const uint16_t* codes, int64_t n, int32_t bits, uint32_t* words, int64_t n_words) {
  return guarded("pack_bits", [&] { return pack_bits(codes, n, bits, words, n_words); });
}

hwkv_status api_unpack_bits(const uint32_t* words, int64_t n_words, int32_t bits, uint16_t* codes, int64_t n) {
  return guarded("unpack_bits", [&] { return unpack_bits(words, n_words, bits, codes, n); });
}

hwkv_status api_fwht(float* x, int64_t rows, int32_t n, float scale) {
  return guarded("fwht", [&] { return fwht(x, rows, n, scale); });
}

hwkv_status api_store_create(const hwkv_store_params* p, hwkv_store_t** out) {
  return guarded("store_create", [&] {
    if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: params is NULL");
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: out is NULL");
    *out = nullptr;
    std::unique_ptr<BlockStore> impl;
    HWKV_TRY(BlockStore::create(*p, &impl));
    hwkv_store* s = new hwkv_store;
    s->impl = std::move(impl);
    *out = s;
    return HWKV_OK;
  });
}

hwkv_status api_store_create_codec(const hwkv_store_params* p, const hwkv_store_codec* codec, hwkv_store_t** out) {
  return guarded("store_create_codec", [&] {
    if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create_codec: params is NULL");
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create_codec: out is NULL");
    *out = nullptr;
    std::unique_ptr<BlockStore> impl;
    HWKV_TRY(BlockStore::create(*p, codec, &impl));
    hwkv_store* s = new hwkv_store;
    s->impl = std::move(impl);
    *out = s;
    return HWKV_OK;
  });
}

hwkv_status api_store_codec_stats(hwkv_store_t* s, hwkv_store_codec_stats* out) {
  return guarded("store_codec_stats", [&] {
    HWKV_STORE_OR_FAIL("store_codec_stats", s);
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_codec_stats: out is NULL");
    s->impl->codec_stats(out);
    return HWKV_OK;
  });
}

hwkv_status api_store_codec_chunk(hwkv_store_t* s, int32_t block, int32_t token, int32_t layer, int32_t which,
                                  uint32_t* codes, uint16_t* scales, uint16_t* zeros, int64_t* info) {
  return guarded("store_codec_chunk", [&] {
    HWKV_STORE_OR_FAIL("store_codec_chunk", s);
    return s->impl->codec_chunk(block, token, layer, which, codes, scales, zeros, info);
  });
}

void api_store_free(hwkv_store_t* s) { delete s; }

hwkv_status api_store_stats(hwkv_store_t* s, hwkv_store_stats* out) {
  return guarded("store_stats", [&] {
    HWKV_STORE_OR_FAIL("store_stats", s);
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_stats: out is NULL");
    s->impl->stats(out);
    return HWKV_OK;
  });
}

hwkv_status api_block_create(hwkv_store_t* s, int32_t* out_block) {
  return guarded("block_create", [&] {
    HWKV_STORE_OR_FAIL("block_create", s);
    return s->impl->create_block(out_block);
  });
}

hwkv_status api_block_free(hwkv_store_t* s, int32_t block) {
  return guarded("block_free", [&] {
    HWKV_STORE_OR_FAIL("block_free", s);
    return s->impl->free_block(block);
  });
}

hwkv_status api_block_len(hwkv_store_t* s, int32_t block, int32_t* out_len) {
  return guarded("block_len", [&] {
    HWKV_STORE_OR_FAIL("block_len", s);
    if (!out_len) return fail(HWKV_ERR_INVALID_ARGUMENT, "block_len: out_len is NULL");
    HWKV_TRY(s->impl->check_block("block_len", block));
    *out_len = s->impl->len(block);
    return HWKV_OK;
  });
}

hwkv_status api_block_append(hwkv_store_t* s, int32_t block, int32_t n_tok, const float* k, const float* v,
                             const hwkv_rope_params* rope) {
  return guarded("block_append", [&] {
    HWKV_STORE_OR_FAIL("block_append", s);
    Rope r;
    if (rope) HWKV_TRY(rope_init_for_store(*s->impl, rope, "block_append", &r));
    return s->impl->append(block, n_tok, k, v, rope ? &r : nullptr);
  });
}

hwkv_status api_block_truncate(hwkv_store_t* s, int32_t block, int32_t new_len) {
  return guarded("block_truncate", [&] {
    HWKV_STORE_OR_FAIL("block_truncate", s);
    return s->impl->truncate(block, new_len);
  });
}

hwkv_status api_block_merge(hwkv_store_t* s, int32_t dst, int32_t src, const hwkv_rope_params* rope) {
  return guarded("block_merge", [&] {
    HWKV_STORE_OR_FAIL("block_merge", s);
    Rope r;
    if (rope) HWKV_TRY(rope_init_for_store(*s->impl, rope, "block_merge", &r));
    return s->impl->merge(dst, src, rope ? &r : nullptr);
  });
}

hwkv_status api_block_read(hwkv_store_t* s, int32_t block, int32_t layer, int32_t start, int32_t n_tok, float* k, float* v) {
  return guarded("block_read", [&] {
    HWKV_STORE_OR_FAIL("block_read", s);
    return s->impl->read(block, layer, start, n_tok, k, v);
  });
}

hwkv_status api_view_read(hwkv_store_t* s, const int32_t* blocks, int32_t n_blocks, int32_t layer,
                          const hwkv_rope_params* rope, float* k, float* v, int64_t total) {
  return guarded("view_read", [&] {
    HWKV_STORE_OR_FAIL("view_read", s);
    Rope r;
    if (rope) HWKV_TRY(rope_init_for_store(*s->impl, rope, "view_read", &r));
    return s->impl->view_read(blocks, n_blocks, layer, rope ? &r : nullptr, k, v, total);
  });
}

hwkv_status api_attn_views(hwkv_store_t* s, int32_t layer, const hwkv_rope_params* rope, const hwkv_attn_batch* batch,
                           const float* q, int32_t n_head, float scale, float* out, float* lse) {
  return guarded("attn_views", [&] {
    HWKV_STORE_OR_FAIL("attn_views", s);
    if (!rope) return fail(HWKV_ERR_INVALID_ARGUMENT, "attn_views: rope is NULL (attention needs the RoPE parameters)");
    if (!batch) return fail(HWKV_ERR_INVALID_ARGUMENT, "attn_views: batch is NULL");
    Rope r;
    HWKV_TRY(rope_init_for_store(*s->impl, rope, "attn_views", &r));
    if (layer >= 0 && layer < s->impl->n_layer()) HWKV_TRY(s->impl->prepare_layer(layer));
    return attn_views(*s->impl, layer, r, *batch, q, n_head, scale, out, lse);
  });
}

const hwkv_api kApi = {
    HWKV_ABI_VERSION,
    static_cast<uint32_t>(sizeof(hwkv_api)),
    api_last_error,
    api_build_info,
    api_rope_inv_freq,
    api_rope_apply,
    api_pack_bits,
    api_unpack_bits,
    api_fwht,
    api_store_create,
    api_store_free,
    api_store_stats,
    api_block_create,
    api_block_free,
    api_block_len,
    api_block_append,
    api_block_truncate,
    api_block_merge,
    api_block_read,
    api_view_read,
    api_attn_views,
    api_store_create_codec,
    api_store_codec_stats,
    api_store_codec_chunk,
};

}  // namespace
}  // namespace hwkv

extern "C" {

HWKV_API const hwkv_api* hwkv_cpu_api(void) { return &hwkv::kApi; }

HWKV_API void hwkv_cpu_set_simd(int32_t force_scalar) { hwkv::set_simd(force_scalar); }

}  // extern "C"
