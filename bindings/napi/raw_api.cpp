// raw_api.cpp — RawApi (ts/backend/raw.ts) over one hwkv_api table.
//
// Thin by design: arguments are type-checked, typed arrays are passed by pointer (zero copy) and their
// element counts are checked against what the call implies wherever that is cheap, so that the library
// never reads or writes past a JS buffer. Everything else (ranges, block ids, shapes) is the library's to
// check. Every method returns the hwkv_status code; nothing throws for bad input: a rejected call returns
// HWKV_ERR_INVALID_ARGUMENT and lastError() returns the addon's message.
//
// Store handles: a Napi::External around a StoreBox. The box remembers the table that made the store and
// its parameters (for length checks). storeFree frees the store and marks the box; the External's
// finalizer frees a store that was never freed and deletes the box; a freed store cannot be freed again.
// Boxes are kept in a process-wide registry so a foreign External is recognised and rejected.
#include <cstddef>
#include "call.h"

namespace hwkv_napi {
namespace {

constexpr size_t kStoreStatsLen = hwkv_flat::kStoreStatsLen;


// ------------------------------------------------------------------------------------------------
// Methods (one per hwkv_api member, in table order)
// ------------------------------------------------------------------------------------------------
#define HWKV_API_OF(c) const hwkv_api* api = (c).binding()->api
#define HWKV_REQUIRE(c, member) \
  if (api->member == nullptr) return (c).Unsupported()
#define HWKV_REQUIRE_APPENDED(c, member)                                                                 \
  if (api->size < offsetof(hwkv_api, member) + sizeof(api->member) || api->member == nullptr) return (c).Unsupported()
#define HWKV_CHECKED(c) \
  if (!(c).ok()) return (c).Reject()

Napi::Value LastError(const Napi::CallbackInfo& info) {
  Binding* b = static_cast<Binding*>(info.Data());
  if (b->addon_error_active) return Napi::String::New(info.Env(), b->addon_error);
  const char* msg = b->api->last_error != nullptr ? b->api->last_error() : nullptr;
  return Napi::String::New(info.Env(), msg != nullptr ? msg : "");
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Binding* b = static_cast<Binding*>(info.Data());
  const char* text = b->api->build_info != nullptr ? b->api->build_info() : nullptr;
  return Napi::String::New(info.Env(), text != nullptr ? text : "{}");
}

// ropeInvFreq(rp, invFreq, attentionFactor)
Napi::Value RopeInvFreq(const Napi::CallbackInfo& info) {
  Call c(info, "ropeInvFreq");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, rope_inv_freq);
  hwkv_rope_params rp;
  c.Rope(0, &rp, false);
  Span<float> inv = c.F32Array(1, "invFreq");
  Span<float> af = c.F32Array(2, "attentionFactor", true);
  if (c.ok() && rp.rotary_dim > 0) c.AtLeast(inv, rp.rotary_dim / 2, "invFreq", "rotary_dim/2");
  c.AtLeast(af, 1, "attentionFactor", "one value");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->rope_inv_freq(&rp, inv.data, af.present ? af.data : nullptr));
}

// ropeApply(rp, x, nTok, nHead, pos)
Napi::Value RopeApply(const Napi::CallbackInfo& info) {
  Call c(info, "ropeApply");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, rope_apply);
  hwkv_rope_params rp;
  c.Rope(0, &rp, false);
  Span<float> x = c.F32Array(1, "x");
  int64_t n_tok = c.I64(2, "nTok");
  int32_t n_head = c.I32(3, "nHead");
  Span<int32_t> pos = c.I32Array(4, "pos");
  int64_t need;
  if (c.ok() && Need({n_tok, n_head, rp.head_dim}, &need)) c.AtLeast(x, need, "x", "nTok*nHead*head_dim");
  if (c.ok() && n_tok >= 0) c.AtLeast(pos, n_tok, "pos", "nTok");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->rope_apply(&rp, x.data, n_tok, n_head, pos.data));
}

// packBits(codes, bits, words)
Napi::Value PackBits(const Napi::CallbackInfo& info) {
  Call c(info, "packBits");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, pack_bits);
  Span<uint16_t> codes = c.Array<uint16_t>(0, "codes", napi_uint16_array, false);
  int32_t bits = c.I32(1, "bits");
  Span<uint32_t> words = c.Array<uint32_t>(2, "words", napi_uint32_array, false);
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->pack_bits(codes.data, codes.len, bits, words.data, words.len));
}

// unpackBits(words, bits, codes)
Napi::Value UnpackBits(const Napi::CallbackInfo& info) {
  Call c(info, "unpackBits");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, unpack_bits);
  Span<uint32_t> words = c.Array<uint32_t>(0, "words", napi_uint32_array, false);
  int32_t bits = c.I32(1, "bits");
  Span<uint16_t> codes = c.Array<uint16_t>(2, "codes", napi_uint16_array, false);
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->unpack_bits(words.data, words.len, bits, codes.data, codes.len));
}

// fwht(x, rows, n, scale)
Napi::Value Fwht(const Napi::CallbackInfo& info) {
  Call c(info, "fwht");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, fwht);
  Span<float> x = c.F32Array(0, "x");
  int64_t rows = c.I64(1, "rows");
  int32_t n = c.I32(2, "n");
  float scale = c.F32(3, "scale");
  int64_t need;
  if (c.ok() && Need({rows, n}, &need)) c.AtLeast(x, need, "x", "rows*n");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->fwht(x.data, rows, n, scale));
}

// storeCreate(sp, out): out[0] receives the handle
Napi::Value StoreCreate(const Napi::CallbackInfo& info) {
  Call c(info, "storeCreate");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, store_create);
  hwkv_store_params sp;
  c.StoreParams(0, &sp);
  if (c.ok() && !info[1].IsArray()) c.Fail("out must be an Array (out[0] receives the handle)");
  HWKV_CHECKED(c);
  if (api->store_free == nullptr) return c.Unsupported();
  auto* box = new StoreBox{api, nullptr, sp};
  hwkv_store_t* s = nullptr;
  c.Enter();
  hwkv_status st = api->store_create(&sp, &s);
  return AdoptHandle(c, st, box, s, &StoreBox::store, api->store_free, RegistryMutex(), Registry(), FinalizeStore, info[1],
                     "storeCreate", "store");
}

// storeCreateCodec(sp, codec[CODEC_LEN], grid|null, grid0|null, out): out[0] receives the handle.
// codec = [type, bits, sinks, buffer, chunk_tokens, grid_dim, grid_n, grid0_dim, grid0_n, seed, (layer0_exact, cache_bytes)]
Napi::Value StoreCreateCodec(const Napi::CallbackInfo& info) {
  Call c(info, "storeCreateCodec");
  HWKV_API_OF(c);
  HWKV_REQUIRE_APPENDED(c, store_create_codec);
  hwkv_store_params sp;
  c.StoreParams(0, &sp);
  size_t n_cd = 0;
  const double* cd = c.Flat(1, "codec", hwkv_flat::kCodec, hwkv_flat::kCodecLen, hwkv_flat::kCodecMinLen, "CODEC_LEN",
                            false, &n_cd);
  Span<float> grid = c.F32Array(2, "grid", true);
  Span<float> grid0 = c.F32Array(3, "grid0", true);
  if (c.ok() && !info[4].IsArray()) c.Fail("out must be an Array (out[0] receives the handle)");
  HWKV_CHECKED(c);
  if (api->store_free == nullptr) return c.Unsupported();
  hwkv_store_codec codec = hwkv_flat::codec(cd, n_cd);
  if (grid.data != nullptr && grid.len < int64_t(codec.grid_n) * codec.grid_dim)
    return c.RejectWith(HWKV_ERR_INVALID_ARGUMENT, "storeCreateCodec: grid is shorter than grid_n*grid_dim");
  if (grid0.data != nullptr && grid0.len < int64_t(codec.grid0_n) * codec.grid0_dim)
    return c.RejectWith(HWKV_ERR_INVALID_ARGUMENT, "storeCreateCodec: grid0 is shorter than grid0_n*grid0_dim");
  codec.grid = grid.data;
  codec.grid0 = grid0.data;
  // AQUA: rope (arg 5) and predictors (arg 6), both optional for the other codecs
  hwkv_rope_params rp;
  const bool has_rope = info.Length() > 5 && c.Rope(5, &rp, true);
  Span<float> preds;
  if (info.Length() > 6) preds = c.F32Array(6, "predictors", true);
  HWKV_CHECKED(c);
  codec.rope = has_rope ? &rp : nullptr;
  codec.predictors = preds.present ? preds.data : nullptr;
  codec.n_predictors = preds.present ? preds.len : 0;
  auto* box = new StoreBox{api, nullptr, sp};
  hwkv_store_t* s = nullptr;
  c.Enter();
  hwkv_status st = api->store_create_codec(&sp, &codec, &s);
  return AdoptHandle(c, st, box, s, &StoreBox::store, api->store_free, RegistryMutex(), Registry(), FinalizeStore, info[4],
                     "storeCreateCodec", "store");
}

// storeCodecChunk(s, block, token, layer, which, codes|null, scales|null, zeros|null, info Float64Array[6])
Napi::Value StoreCodecChunk(const Napi::CallbackInfo& info) {
  Call c(info, "storeCodecChunk");
  HWKV_API_OF(c);
  HWKV_REQUIRE_APPENDED(c, store_codec_chunk);
  StoreBox* box = c.Store(0);
  int32_t block = c.I32(1, "block");
  int32_t token = c.I32(2, "token");
  int32_t layer = c.I32(3, "layer");
  int32_t which = c.I32(4, "which");
  Span<uint32_t> codes = c.Array<uint32_t>(5, "codes", napi_uint32_array, true);
  Span<uint16_t> scales = c.Array<uint16_t>(6, "scales", napi_uint16_array, true);
  Span<uint16_t> zeros = c.Array<uint16_t>(7, "zeros", napi_uint16_array, true);
  Span<double> out = c.Array<double>(8, "info", napi_float64_array, false);
  c.AtLeast(out, 6, "info", "6");
  HWKV_CHECKED(c);
  int64_t inf[6] = {0, 0, 0, 0, 0, 0};
  c.Enter();
  hwkv_status rc = api->store_codec_chunk(box->store, block, token, layer, which, nullptr, nullptr, nullptr, inf);
  if (rc != HWKV_OK) return c.Status(rc);
  c.AtLeast(codes, inf[2], "codes", "n_words");
  c.AtLeast(scales, inf[3], "scales", "n_scales");
  c.AtLeast(zeros, inf[4], "zeros", "n_zeros");
  HWKV_CHECKED(c);
  rc = api->store_codec_chunk(box->store, block, token, layer, which, codes.present ? codes.data : nullptr,
                              scales.present ? scales.data : nullptr, zeros.present ? zeros.data : nullptr, inf);
  for (int i = 0; i < 6; ++i) out.data[i] = static_cast<double>(inf[i]);
  return c.Status(rc);
}

// storeCodecStats(s, out[5]) = [bytes_compressed, tokens_compressed, values_compressed, chunks, bytes_scratch]
Napi::Value StoreCodecStats(const Napi::CallbackInfo& info) {
  Call c(info, "storeCodecStats");
  HWKV_API_OF(c);
  HWKV_REQUIRE_APPENDED(c, store_codec_stats);
  StoreBox* box = c.Store(0);
  Span<double> out = c.Array<double>(1, "out", napi_float64_array, false);
  c.AtLeast(out, 5, "out", "5");
  HWKV_CHECKED(c);
  hwkv_store_codec_stats st{};
  c.Enter();
  hwkv_status rc = api->store_codec_stats(box->store, &st);
  if (rc == HWKV_OK) hwkv_flat::put(st, out.data);
  return c.Status(rc);
}

// storeFree(s): frees now (or, while a modelForwardAsync uses the store, as soon as it completes); a second call
// (or GC later) does nothing. Bad handles are ignored (lastError says).
Napi::Value StoreFree(const Napi::CallbackInfo& info) {
  Call c(info, "storeFree");
  Napi::Value v = info[0];
  if (v.IsNull() || v.IsUndefined()) return c.env().Undefined();
  if (v.IsExternal()) {
    StoreBox* box = v.As<Napi::External<StoreBox>>().Data();
    std::lock_guard<std::mutex> lock(RegistryMutex());
    if (Registry().count(box) != 0) {
      if (box->store == nullptr || box->free_pending) return c.env().Undefined();  // double free: no-op
      if (box->busy != 0 && box->api == c.binding()->api) {
        box->free_pending = true;  // a modelForwardAsync still uses it: freed when that completes
        return c.env().Undefined();
      }
    }
  }
  StoreBox* box = c.Store(0);
  if (box == nullptr) {
    c.Reject();
    return c.env().Undefined();
  }
  hwkv_store_t* s = box->store;
  box->store = nullptr;  // mark first: the finalizer and later calls see it freed
  c.Enter();
  box->api->store_free(s);
  return c.env().Undefined();
}

// storeStats(s, out[STORE_STATS_LEN])
Napi::Value StoreStats(const Napi::CallbackInfo& info) {
  Call c(info, "storeStats");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, store_stats);
  StoreBox* box = c.Store(0);
  Span<double> out = c.Array<double>(1, "out", napi_float64_array, false);
  c.AtLeast(out, static_cast<int64_t>(kStoreStatsLen), "out", "STORE_STATS_LEN");
  HWKV_CHECKED(c);
  hwkv_store_stats st{};
  c.Enter();
  hwkv_status rc = api->store_stats(box->store, &st);
  if (rc == HWKV_OK) hwkv_flat::put(st, out.data);
  return c.Status(rc);
}

// blockCreate(s, out[1])
Napi::Value BlockCreate(const Napi::CallbackInfo& info) {
  Call c(info, "blockCreate");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, block_create);
  StoreBox* box = c.Store(0);
  Span<int32_t> out = c.I32Array(1, "out");
  c.AtLeast(out, 1, "out", "one block id");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->block_create(box->store, out.data));
}

// blockFree(s, block)
Napi::Value BlockFree(const Napi::CallbackInfo& info) {
  Call c(info, "blockFree");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, block_free);
  StoreBox* box = c.Store(0);
  int32_t block = c.I32(1, "block");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->block_free(box->store, block));
}

// blockLen(s, block, out[1])
Napi::Value BlockLen(const Napi::CallbackInfo& info) {
  Call c(info, "blockLen");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, block_len);
  StoreBox* box = c.Store(0);
  int32_t block = c.I32(1, "block");
  Span<int32_t> out = c.I32Array(2, "out");
  c.AtLeast(out, 1, "out", "one length");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->block_len(box->store, block, out.data));
}

// blockAppend(s, block, nTok, k, v, rp | null)
Napi::Value BlockAppend(const Napi::CallbackInfo& info) {
  Call c(info, "blockAppend");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, block_append);
  StoreBox* box = c.Store(0);
  int32_t block = c.I32(1, "block");
  int32_t n_tok = c.I32(2, "nTok");
  Span<float> k = c.F32Array(3, "k");
  Span<float> v = c.F32Array(4, "v");
  hwkv_rope_params rp;
  bool has_rope = c.Rope(5, &rp, true);
  if (c.ok()) {
    const hwkv_store_params& p = box->params;
    int64_t need;
    if (Need({p.n_layer, n_tok, p.n_kv_head, p.head_dim}, &need)) c.AtLeast(k, need, "k", "n_layer*nTok*n_kv_head*head_dim");
    if (Need({p.n_layer, n_tok, p.n_kv_head, p.head_dim_v}, &need)) c.AtLeast(v, need, "v", "n_layer*nTok*n_kv_head*head_dim_v");
  }
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->block_append(box->store, block, n_tok, k.data, v.data, has_rope ? &rp : nullptr));
}

// blockTruncate(s, block, newLen)
Napi::Value BlockTruncate(const Napi::CallbackInfo& info) {
  Call c(info, "blockTruncate");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, block_truncate);
  StoreBox* box = c.Store(0);
  int32_t block = c.I32(1, "block");
  int32_t new_len = c.I32(2, "newLen");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->block_truncate(box->store, block, new_len));
}

// blockMerge(s, dst, src, rp | null)
Napi::Value BlockMerge(const Napi::CallbackInfo& info) {
  Call c(info, "blockMerge");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, block_merge);
  StoreBox* box = c.Store(0);
  int32_t dst = c.I32(1, "dst");
  int32_t src = c.I32(2, "src");
  hwkv_rope_params rp;
  bool has_rope = c.Rope(3, &rp, true);
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->block_merge(box->store, dst, src, has_rope ? &rp : nullptr));
}

// blockRead(s, block, layer, start, nTok, k | null, v | null)
Napi::Value BlockRead(const Napi::CallbackInfo& info) {
  Call c(info, "blockRead");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, block_read);
  StoreBox* box = c.Store(0);
  int32_t block = c.I32(1, "block");
  int32_t layer = c.I32(2, "layer");
  int32_t start = c.I32(3, "start");
  int32_t n_tok = c.I32(4, "nTok");
  Span<float> k = c.F32Array(5, "k", true);
  Span<float> v = c.F32Array(6, "v", true);
  if (c.ok()) {
    const hwkv_store_params& p = box->params;
    int64_t need;
    if (Need({n_tok, p.n_kv_head, p.head_dim}, &need)) c.AtLeast(k, need, "k", "nTok*n_kv_head*head_dim");
    if (Need({n_tok, p.n_kv_head, p.head_dim_v}, &need)) c.AtLeast(v, need, "v", "nTok*n_kv_head*head_dim_v");
  }
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->block_read(box->store, block, layer, start, n_tok, k.present ? k.data : nullptr,
                                  v.present ? v.data : nullptr));
}

// viewRead(s, blocks, layer, rp | null, k | null, v | null, total)
Napi::Value ViewRead(const Napi::CallbackInfo& info) {
  Call c(info, "viewRead");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, view_read);
  StoreBox* box = c.Store(0);
  Span<int32_t> blocks = c.I32Array(1, "blocks");
  int32_t layer = c.I32(2, "layer");
  hwkv_rope_params rp;
  bool has_rope = c.Rope(3, &rp, true);
  Span<float> k = c.F32Array(4, "k", true);
  Span<float> v = c.F32Array(5, "v", true);
  int64_t total = c.I64(6, "total");
  if (c.ok() && blocks.len > 2147483647) c.Fail("blocks has more than 2^31-1 elements");
  if (c.ok()) {
    const hwkv_store_params& p = box->params;
    int64_t need;
    if (Need({total, p.n_kv_head, p.head_dim}, &need)) c.AtLeast(k, need, "k", "total*n_kv_head*head_dim");
    if (Need({total, p.n_kv_head, p.head_dim_v}, &need)) c.AtLeast(v, need, "v", "total*n_kv_head*head_dim_v");
  }
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->view_read(box->store, blocks.data, static_cast<int32_t>(blocks.len), layer,
                                 has_rope ? &rp : nullptr, k.present ? k.data : nullptr,
                                 v.present ? v.data : nullptr, total));
}

// attnViews(s, layer, rp, viewIndptr, viewBlocks, qIndptr, qPos, q, nHead, scale, out, lse | null)
Napi::Value AttnViews(const Napi::CallbackInfo& info) {
  Call c(info, "attnViews");
  HWKV_API_OF(c);
  HWKV_REQUIRE(c, attn_views);
  StoreBox* box = c.Store(0);
  int32_t layer = c.I32(1, "layer");
  hwkv_rope_params rp;
  c.Rope(2, &rp, false);
  Span<int32_t> view_indptr = c.I32Array(3, "viewIndptr");
  Span<int32_t> view_blocks = c.I32Array(4, "viewBlocks");
  Span<int32_t> q_indptr = c.I32Array(5, "qIndptr");
  Span<int32_t> q_pos = c.I32Array(6, "qPos");
  Span<float> q = c.F32Array(7, "q");
  int32_t n_head = c.I32(8, "nHead");
  float scale = c.F32(9, "scale");
  Span<float> out = c.F32Array(10, "out");
  Span<float> lse = c.F32Array(11, "lse", true);
  int32_t n_seq = 0;
  if (c.ok()) {
    if (view_indptr.len < 1) c.Fail("viewIndptr must have n_seq + 1 >= 1 elements");
    else if (view_indptr.len - 1 > 2147483647) c.Fail("viewIndptr is too long");
    else n_seq = static_cast<int32_t>(view_indptr.len - 1);
  }
  if (c.ok() && q_indptr.len < static_cast<int64_t>(n_seq) + 1) {
    c.Fail(Format("qIndptr has %" PRId64 " elements, needs n_seq + 1 = %d (n_seq = viewIndptr.length - 1)",
                  q_indptr.len, n_seq + 1));
  }
  CheckIndptr(c, view_indptr, n_seq, view_blocks.len, "viewIndptr", "viewBlocks");
  CheckIndptr(c, q_indptr, n_seq, q_pos.len, "qIndptr", "qPos");
  if (c.ok()) {
    const hwkv_store_params& p = box->params;
    int64_t n_q = q_indptr.data[n_seq];
    int64_t need;
    if (Need({n_q, n_head, p.head_dim}, &need)) c.AtLeast(q, need, "q", "n_q*nHead*head_dim");
    if (Need({n_q, n_head, p.head_dim_v}, &need)) c.AtLeast(out, need, "out", "n_q*nHead*head_dim_v");
    if (Need({n_q, n_head}, &need)) c.AtLeast(lse, need, "lse", "n_q*nHead");
  }
  HWKV_CHECKED(c);
  hwkv_attn_batch batch;
  batch.n_seq = n_seq;
  batch.view_indptr = view_indptr.data;
  batch.view_blocks = view_blocks.data;
  batch.q_indptr = q_indptr.data;
  batch.q_pos = q_pos.data;
  c.Enter();
  return c.Status(api->attn_views(box->store, layer, &rp, &batch, q.data, n_head, scale, out.data,
                                  lse.present ? lse.data : nullptr));
}

// setSimd(forceScalar) — CPU core only
Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  Napi::Value v = info[0];
  bool force = v.IsBoolean() ? v.As<Napi::Boolean>().Value()
                             : (v.IsNumber() ? v.As<Napi::Number>().DoubleValue() != 0 : v.ToBoolean().Value());
  hwkv_cpu_set_simd(force ? 1 : 0);
  return info.Env().Undefined();
}

#undef HWKV_API_OF
#undef HWKV_REQUIRE
#undef HWKV_CHECKED

}  // namespace

std::string CheckTable(const hwkv_api* api) {
  if (api == nullptr) return "no function table";
  if (api->abi_version != HWKV_ABI_VERSION) {
    return Format("ABI version mismatch: library has %u, addon expects %d", api->abi_version, HWKV_ABI_VERSION);
  }
  if (api->size < sizeof(hwkv_api)) {
    return Format("function table too small: library has %u bytes, addon expects %zu", api->size, sizeof(hwkv_api));
  }
  if (api->last_error == nullptr || api->build_info == nullptr) return "function table lacks last_error/build_info";
  return "";
}

Napi::Object MakeRawApi(Napi::Env env, Binding* b) {
  Napi::Object o = Napi::Object::New(env);
  auto add = [&](const char* name, Napi::Function::Callback cb) {
    o.Set(name, Napi::Function::New(env, cb, name, b));
  };
  add("lastError", Method<LastError>);
  add("buildInfo", Method<BuildInfo>);
  add("ropeInvFreq", Method<RopeInvFreq>);
  add("ropeApply", Method<RopeApply>);
  add("packBits", Method<PackBits>);
  add("unpackBits", Method<UnpackBits>);
  add("fwht", Method<Fwht>);
  add("storeCreate", Method<StoreCreate>);
  add("storeFree", Method<StoreFree>);
  add("storeStats", Method<StoreStats>);
  add("storeCreateCodec", Method<StoreCreateCodec>);
  add("storeCodecStats", Method<StoreCodecStats>);
  add("storeCodecChunk", Method<StoreCodecChunk>);
  add("blockCreate", Method<BlockCreate>);
  add("blockFree", Method<BlockFree>);
  add("blockLen", Method<BlockLen>);
  add("blockAppend", Method<BlockAppend>);
  add("blockTruncate", Method<BlockTruncate>);
  add("blockMerge", Method<BlockMerge>);
  add("blockRead", Method<BlockRead>);
  add("viewRead", Method<ViewRead>);
  add("attnViews", Method<AttnViews>);
  if (b->is_cpu) add("setSimd", Method<SetSimd>);
  if (b->model != nullptr) o.Set("model", MakeRawModelApi(env, b));
  if (b->quant != nullptr) o.Set("quant", MakeRawQuantApi(env, b));
  return o;
}

}  // namespace hwkv_napi
