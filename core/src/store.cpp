// store.cpp — the paged KV block store.
#include "store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <new>

#include "codec_params.h"
#include "dispatch.h"
#include "kernels/matmul.h"
#include "quant_internal.h"

namespace hwkv {

namespace {
constexpr size_t kPageAlign = 64;

uint8_t* page_alloc(int64_t bytes) {
  return static_cast<uint8_t*>(::operator new(static_cast<size_t>(bytes), std::align_val_t(kPageAlign), std::nothrow));
}
void page_free(uint8_t* p) {
  if (p) ::operator delete(p, std::align_val_t(kPageAlign));
}
}  // namespace

// ------------------------------------------------------------------------------------------------
// creation
// ------------------------------------------------------------------------------------------------
hwkv_status BlockStore::create(const hwkv_store_params& p, std::unique_ptr<BlockStore>* out) {
  if (p.n_layer < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: n_layer must be >= 1, got %d", p.n_layer);
  if (p.n_kv_head < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: n_kv_head must be >= 1, got %d", p.n_kv_head);
  if (p.head_dim < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: head_dim must be >= 1, got %d", p.head_dim);
  if (p.head_dim_v < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: head_dim_v must be >= 1, got %d", p.head_dim_v);
  if (p.page_tokens < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: page_tokens must be >= 1, got %d", p.page_tokens);
  if (p.dtype != HWKV_F32 && p.dtype != HWKV_F16)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: dtype must be 0 (F32) or 1 (F16), got %d", p.dtype);
  if (p.max_bytes < 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: max_bytes must be >= 0 (0 = unlimited), got %lld", (long long)p.max_bytes);
  const double es = p.dtype == HWKV_F16 ? 2.0 : 4.0;
  const double bytes = double(p.n_layer) * p.n_kv_head * p.page_tokens * (double(p.head_dim) + p.head_dim_v) * es;
  if (bytes > double(int64_t(1) << 40))
    return fail(HWKV_ERR_INVALID_ARGUMENT, "store_create: one page would take %.0f bytes (n_layer*n_kv_head*page_tokens*"
                "(head_dim+head_dim_v)*elem_size); limit is 2^40", bytes);
  out->reset(new BlockStore(p));
  return HWKV_OK;
}

struct BlockStore::Chunk {
  struct Layer {
    std::vector<uint32_t> kw, vw;
    std::vector<uint16_t> ks, kz, vs, vz;
  };
  int32_t n_pages = 0, n_tok = 0;
  int32_t pos0 = 0;  // block-local position of the first token (AQUA: keys are rotated back there on decode)
  std::vector<Layer> layers;
  int64_t bytes = 0;
  int64_t dec_off = -1;
  uint64_t dec_epoch = 0;
  const uint8_t* dec_ptr = nullptr;  // this layer's decoded pages (scratch or kept), set by prepare_layer
  std::vector<uint8_t> kept;         // cache_bytes: decoded pages of every layer ([layer][page] x layer_bytes_)
  std::vector<uint8_t> kept_layers;  // 1 = layer decoded into `kept`
  // AQUA decode chain state (prepare_layer): pre-RoPE K̂/V̂ of layer st_layer at aq_state_[st_off ...]
  int64_t st_off = -1;
  int32_t st_layer = -1;
  uint64_t st_epoch = 0;
};

hwkv_status BlockStore::create(const hwkv_store_params& p, const hwkv_store_codec* codec, std::unique_ptr<BlockStore>* out) {
  const char* fn = "store_create_codec";
  std::unique_ptr<BlockStore> st;
  HWKV_TRY(create(p, &st));
  if (!codec || codec->type == HWKV_KV_EXACT) {
    *out = std::move(st);
    return HWKV_OK;
  }
  const hwkv_store_codec& c = *codec;
  HWKV_TRY(codec::check_codec(fn, p, c));
  if (c.type != HWKV_KV_UNIFORM) {
    st->grid_.assign(c.grid, c.grid + int64_t(c.grid_n) * c.grid_dim);
    if (codec::uses_grid0(c)) st->grid0_.assign(c.grid0, c.grid0 + int64_t(c.grid0_n) * c.grid0_dim);
    if (c.type == HWKV_KV_AQUA) HWKV_TRY(st->aqua_init(c));
  }
  st->codec_ = codec::kept_codec(c);
  st->sink_tokens_ = codec::sink_tokens(p, c);
  *out = std::move(st);
  return HWKV_OK;
}

BlockStore::BlockStore(const hwkv_store_params& p) : p_(p) {
  const int64_t es = static_cast<int64_t>(elem_size());
  k_head_bytes_ = int64_t(p.page_tokens) * p.head_dim * es;
  v_head_bytes_ = int64_t(p.page_tokens) * p.head_dim_v * es;
  layer_bytes_ = int64_t(p.n_kv_head) * (k_head_bytes_ + v_head_bytes_);
  page_bytes_ = layer_bytes_ * p.n_layer;
}

BlockStore::~BlockStore() {
  for (uint8_t* pg : pages_) page_free(pg);
}

// ------------------------------------------------------------------------------------------------
// pages
// ------------------------------------------------------------------------------------------------
hwkv_status BlockStore::reserve_pages(const char* fn, int64_t n, std::vector<int32_t>* got) {
  got->clear();
  if (n <= 0) return HWKV_OK;
  got->reserve(static_cast<size_t>(n));
  const int64_t from_free = std::min<int64_t>(n, static_cast<int64_t>(free_pages_.size()));
  const int64_t fresh = n - from_free;
  if (fresh > 0) {
    if (p_.max_bytes > 0 && (pages_allocated_ + fresh) * page_bytes_ > p_.max_bytes)
      return fail(HWKV_ERR_OUT_OF_MEMORY,
                  "%s: needs %lld more pages of %lld bytes but max_bytes %lld allows %lld pages in all (%lld allocated, "
                  "%lld in use)",
                  fn, (long long)fresh, (long long)page_bytes_, (long long)p_.max_bytes,
                  (long long)(p_.max_bytes / page_bytes_), (long long)pages_allocated_, (long long)pages_in_use_);
    if (pages_allocated_ + fresh > INT32_MAX)
      return fail(HWKV_ERR_OUT_OF_MEMORY, "%s: the store cannot hold more than %d pages", fn, INT32_MAX);
    const int64_t new_slots = std::max<int64_t>(0, fresh - static_cast<int64_t>(empty_slots_.size()));
    pages_.reserve(pages_.size() + static_cast<size_t>(new_slots));  // may throw: nothing changed yet
    std::vector<uint8_t*> fresh_pages(static_cast<size_t>(fresh), nullptr);
    for (int64_t i = 0; i < fresh; ++i) {
      fresh_pages[i] = page_alloc(page_bytes_);
      if (!fresh_pages[i]) {
        for (int64_t j = 0; j < i; ++j) page_free(fresh_pages[j]);
        return fail(HWKV_ERR_OUT_OF_MEMORY, "%s: could not allocate %lld pages of %lld bytes (host memory exhausted)", fn,
                    (long long)fresh, (long long)page_bytes_);
      }
    }
    // commit (no throws below: capacities reserved above)
    for (int64_t i = 0; i < fresh; ++i) {
      int32_t idx;
      if (!empty_slots_.empty()) {
        idx = empty_slots_.back();
        empty_slots_.pop_back();
        pages_[idx] = fresh_pages[i];
      } else {
        idx = static_cast<int32_t>(pages_.size());
        pages_.push_back(fresh_pages[i]);
      }
      got->push_back(idx);
    }
    pages_allocated_ += fresh;
  }
  for (int64_t i = 0; i < from_free; ++i) {
    got->push_back(free_pages_.back());
    free_pages_.pop_back();
  }
  pages_in_use_ += n;
  return HWKV_OK;
}

// Capacity of free_pages_ is kept >= pages_allocated_ so this never throws.
void BlockStore::release_pages(const int32_t* pages, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (pages[i] < 0) continue;  // compressed page: nothing to release (its chunk goes with its last ref)
    free_pages_.push_back(pages[i]);
    --pages_in_use_;
  }
}

void BlockStore::trim() {
  for (int32_t idx : free_pages_) {
    page_free(pages_[idx]);
    pages_[idx] = nullptr;
    empty_slots_.push_back(idx);
  }
  pages_allocated_ -= static_cast<int64_t>(free_pages_.size());
  free_pages_.clear();
  std::vector<uint8_t>().swap(dec_);  // codec decode scratch: re-grown by the next prepare_layer
  std::vector<float>().swap(aq_state_);
  for (Block& blk : blocks_)
    for (CompRef& r : blk.comp)
      if (r.c) r.c->st_epoch = 0;
}

uint8_t* BlockStore::k_base(int32_t page_index, int32_t layer, int32_t kv_head) const {
  return pages_[page_index] + layer * layer_bytes_ + kv_head * k_head_bytes_;
}
uint8_t* BlockStore::v_base(int32_t page_index, int32_t layer, int32_t kv_head) const {
  return pages_[page_index] + layer * layer_bytes_ + p_.n_kv_head * k_head_bytes_ + kv_head * v_head_bytes_;
}

void BlockStore::store_rows(uint8_t* dst, const float* src, int64_t n_floats) const {
  if (p_.dtype == HWKV_F32)
    std::memcpy(dst, src, static_cast<size_t>(n_floats) * 4);
  else
    kernels().f32_to_f16(src, reinterpret_cast<uint16_t*>(dst), n_floats);
}
void BlockStore::load_rows(const uint8_t* src, float* dst, int64_t n_floats) const {
  if (p_.dtype == HWKV_F32)
    std::memcpy(dst, src, static_cast<size_t>(n_floats) * 4);
  else
    kernels().f16_to_f32(reinterpret_cast<const uint16_t*>(src), dst, n_floats);
}

const uint8_t* BlockStore::kptr(const Block& blk, int32_t page, int32_t layer, int32_t kv_head) const {
  const int32_t idx = blk.pages[page];
  if (idx >= 0) return k_base(idx, layer, kv_head);
  const CompRef& r = blk.comp[page];
  return r.c->dec_ptr + int64_t(r.page) * layer_bytes_ + kv_head * k_head_bytes_;
}
const uint8_t* BlockStore::vptr(const Block& blk, int32_t page, int32_t layer, int32_t kv_head) const {
  const int32_t idx = blk.pages[page];
  if (idx >= 0) return v_base(idx, layer, kv_head);
  const CompRef& r = blk.comp[page];
  return r.c->dec_ptr + int64_t(r.page) * layer_bytes_ + p_.n_kv_head * k_head_bytes_ + kv_head * v_head_bytes_;
}
const void* BlockStore::k_page(int32_t b, int32_t page, int32_t layer, int32_t kv_head) const {
  return kptr(blocks_[b], page, layer, kv_head);
}
const void* BlockStore::v_page(int32_t b, int32_t page, int32_t layer, int32_t kv_head) const {
  return vptr(blocks_[b], page, layer, kv_head);
}
const float* BlockStore::k_rows_f32(int32_t b, int32_t page, int32_t layer, int32_t kv_head, int32_t slot0, int32_t n,
                                    float* scratch) const {
  const uint8_t* src = kptr(blocks_[b], page, layer, kv_head) + int64_t(slot0) * p_.head_dim * elem_size();
  if (p_.dtype == HWKV_F32) return reinterpret_cast<const float*>(src);
  load_rows(src, scratch, int64_t(n) * p_.head_dim);
  return scratch;
}
const float* BlockStore::v_rows_f32(int32_t b, int32_t page, int32_t layer, int32_t kv_head, int32_t slot0, int32_t n,
                                    float* scratch) const {
  const uint8_t* src = vptr(blocks_[b], page, layer, kv_head) + int64_t(slot0) * p_.head_dim_v * elem_size();
  if (p_.dtype == HWKV_F32) return reinterpret_cast<const float*>(src);
  load_rows(src, scratch, int64_t(n) * p_.head_dim_v);
  return scratch;
}

// ------------------------------------------------------------------------------------------------
// checks
// ------------------------------------------------------------------------------------------------
hwkv_status BlockStore::check_block(const char* fn, int32_t b) const {
  if (is_live(b)) return HWKV_OK;
  return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d is not a live block (store has %d live blocks)", fn, b, live_count_);
}

hwkv_status BlockStore::check_layer(const char* fn, int32_t layer) const {
  if (layer >= 0 && layer < p_.n_layer) return HWKV_OK;
  return fail(HWKV_ERR_OUT_OF_RANGE, "%s: layer %d is out of range (store has %d layers)", fn, layer, p_.n_layer);
}

hwkv_status BlockStore::check_rope(const char* fn, const Rope* rope) const {
  if (!rope || rope->head_dim == p_.head_dim) return HWKV_OK;
  return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope head_dim (%d) differs from the store's head_dim (%d)", fn, rope->head_dim,
              p_.head_dim);
}

hwkv_status rope_init_for_store(const BlockStore& s, const hwkv_rope_params* p, const char* fn, Rope* out) {
  HWKV_TRY(rope_init(p, fn, out));
  if (out->head_dim != s.head_dim())
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope head_dim (%d) differs from the store's head_dim (%d)", fn, out->head_dim,
                s.head_dim());
  return HWKV_OK;
}

// ------------------------------------------------------------------------------------------------
// blocks
// ------------------------------------------------------------------------------------------------
hwkv_status BlockStore::create_block(int32_t* out) {
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "block_create: out_block is NULL");
  int32_t id;
  if (!free_ids_.empty()) {
    std::pop_heap(free_ids_.begin(), free_ids_.end(), std::greater<int32_t>());
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    if (blocks_.size() >= static_cast<size_t>(INT32_MAX))
      return fail(HWKV_ERR_OUT_OF_RANGE, "block_create: too many blocks (%zu)", blocks_.size());
    free_ids_.reserve(blocks_.size() + 1);  // so block_free never allocates
    blocks_.emplace_back();
    id = static_cast<int32_t>(blocks_.size() - 1);
  }
  Block& blk = blocks_[id];
  blk.live = true;
  blk.len = 0;
  blk.pages.clear();
  ++live_count_;
  *out = id;
  return HWKV_OK;
}

hwkv_status BlockStore::free_block(int32_t b) {
  HWKV_TRY(check_block("block_free", b));
  Block& blk = blocks_[b];
  release_pages(blk.pages.data(), blk.pages.size());
  std::vector<int32_t>().swap(blk.pages);
  std::vector<CompRef>().swap(blk.comp);
  blk.no_compress = false;
  blk.live = false;
  blk.len = 0;
  --live_count_;
  free_ids_.push_back(b);
  std::push_heap(free_ids_.begin(), free_ids_.end(), std::greater<int32_t>());
  return HWKV_OK;
}

// Ensures free_pages_ can take back every allocated page without allocating (release_pages never throws).
#define HWKV_RESERVE_FREE_LIST(extra) free_pages_.reserve(static_cast<size_t>(pages_allocated_ + (extra)))

hwkv_status BlockStore::append(int32_t b, int32_t n_tok, const float* k, const float* v, const Rope* rope) {
  const char* fn = "block_append";
  HWKV_TRY(check_block(fn, b));
  if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 0, got %d", fn, n_tok);
  if (n_tok == 0) return HWKV_OK;
  if (!k) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: k is NULL", fn);
  if (!v) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: v is NULL", fn);
  HWKV_TRY(check_rope(fn, rope));
  Block& blk = blocks_[b];
  const int64_t len0 = blk.len, new_len = len0 + n_tok;
  if (new_len > INT32_MAX)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would hold %lld tokens (limit %d)", fn, b, (long long)new_len, INT32_MAX);
  const int64_t pt = p_.page_tokens;
  const int64_t need = ceil_div(new_len, pt) - static_cast<int64_t>(blk.pages.size());

  // Everything that may throw happens before pages are taken.
  const int32_t hd = p_.head_dim, hdv = p_.head_dim_v, nkv = p_.n_kv_head;
  const int64_t chunk = 64;
  std::vector<int64_t> pos;
  RopeTable table;
  std::vector<float> tmp(p_.dtype == HWKV_F16 ? static_cast<size_t>(hd) : 0);
  if (rope) pos.resize(static_cast<size_t>(std::min<int64_t>(chunk, n_tok)));
  blk.pages.reserve(static_cast<size_t>(blk.pages.size() + std::max<int64_t>(need, 0)));
  HWKV_RESERVE_FREE_LIST(std::max<int64_t>(need, 0));
  if (rope) table.build(*rope, pos.data(), static_cast<int64_t>(pos.size()));  // sizes the buffers
  std::vector<int32_t> got;
  HWKV_TRY(reserve_pages(fn, need, &got));
  blk.pages.insert(blk.pages.end(), got.begin(), got.end());

  const size_t es = elem_size();
  for (int64_t c0 = 0; c0 < n_tok; c0 += chunk) {
    const int64_t c1 = std::min<int64_t>(n_tok, c0 + chunk);
    if (rope) {
      for (int64_t t = c0; t < c1; ++t) pos[t - c0] = len0 + t;
      table.build(*rope, pos.data(), c1 - c0);  // no reallocation: same or smaller size
    }
    for (int32_t L = 0; L < p_.n_layer; ++L) {
      for (int64_t t = c0; t < c1; ++t) {
        const int64_t tp = len0 + t;
        const int32_t page = blk.pages[tp / pt];
        const int64_t slot = tp % pt;
        const float* ksrc = k + ((int64_t(L) * n_tok + t) * nkv) * hd;
        const float* vsrc = v + ((int64_t(L) * n_tok + t) * nkv) * hdv;
        for (int32_t h = 0; h < nkv; ++h) {
          uint8_t* kd = k_base(page, L, h) + slot * hd * es;
          uint8_t* vd = v_base(page, L, h) + slot * hdv * es;
          if (!rope) {
            store_rows(kd, ksrc + int64_t(h) * hd, hd);
          } else if (p_.dtype == HWKV_F32) {
            std::memcpy(kd, ksrc + int64_t(h) * hd, size_t(hd) * 4);
            rope_rotate(*rope, reinterpret_cast<float*>(kd), 1, hd, table.cos(t - c0), table.sin(t - c0));
          } else {
            std::memcpy(tmp.data(), ksrc + int64_t(h) * hd, size_t(hd) * 4);
            rope_rotate(*rope, tmp.data(), 1, hd, table.cos(t - c0), table.sin(t - c0));
            store_rows(kd, tmp.data(), hd);
          }
          store_rows(vd, vsrc + int64_t(h) * hdv, hdv);
        }
      }
    }
  }
  blk.len = static_cast<int32_t>(new_len);
  compact(b);
  return HWKV_OK;
}

hwkv_status BlockStore::extend(int32_t b, int32_t n_tok) {
  const char* fn = "block_extend";
  HWKV_TRY(check_block(fn, b));
  if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 0, got %d", fn, n_tok);
  Block& blk = blocks_[b];
  const int64_t new_len = int64_t(blk.len) + n_tok;
  if (new_len > INT32_MAX)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would hold %lld tokens (limit %d)", fn, b, (long long)new_len, INT32_MAX);
  const int64_t need = ceil_div(new_len, p_.page_tokens) - static_cast<int64_t>(blk.pages.size());
  blk.pages.reserve(static_cast<size_t>(blk.pages.size() + std::max<int64_t>(need, 0)));
  HWKV_RESERVE_FREE_LIST(std::max<int64_t>(need, 0));
  std::vector<int32_t> got;
  HWKV_TRY(reserve_pages(fn, need, &got));
  blk.pages.insert(blk.pages.end(), got.begin(), got.end());
  blk.len = static_cast<int32_t>(new_len);
  return HWKV_OK;
}

hwkv_status BlockStore::write(int32_t b, int32_t layer, int32_t start, int32_t n_tok, const float* k, const float* v,
                              const Rope* rope, const RopeTable* table) {
  const char* fn = "block_write";
  HWKV_TRY(check_block(fn, b));
  HWKV_TRY(check_layer(fn, layer));
  HWKV_TRY(check_rope(fn, rope));
  Block& blk = blocks_[b];
  if (start < 0 || n_tok < 0 || int64_t(start) + n_tok > blk.len)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: tokens [%d, %lld) are out of range (block %d holds %d tokens)", fn, start,
                (long long)start + n_tok, b, blk.len);
  const int64_t pt = p_.page_tokens, nkv = p_.n_kv_head, hd = p_.head_dim, hdv = p_.head_dim_v;
  const size_t es = elem_size();
  if (!blk.comp.empty() && n_tok > 0)
    for (int64_t pg = start / pt; pg <= (int64_t(start) + n_tok - 1) / pt; ++pg)
      if (blk.pages[pg] < 0)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: tokens [%d, %lld) of block %d include compressed tokens (page %lld)", fn,
                    start, (long long)start + n_tok, b, (long long)pg);
  std::vector<float> C, S, tmp(p_.dtype == HWKV_F16 && rope && k ? static_cast<size_t>(hd) : 0);
  if (rope && !table) {
    C.resize(static_cast<size_t>(rope->rotary_dim));
    S.resize(static_cast<size_t>(rope->rotary_dim));
  }
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t tp = start + t;
    const int32_t page = blk.pages[tp / pt];
    const int64_t slot = tp % pt;
    const float *c = nullptr, *sn = nullptr;
    if (rope && k) {
      if (table) {
        c = table->cos(t), sn = table->sin(t);
      } else {
        rope_table_one(*rope, static_cast<double>(tp), C.data(), S.data());
        c = C.data(), sn = S.data();
      }
    }
    for (int32_t h = 0; h < nkv; ++h) {
      if (k) {
        uint8_t* kd = k_base(page, layer, h) + slot * hd * es;
        const float* ks = k + (t * nkv + h) * hd;
        if (!rope) {
          store_rows(kd, ks, hd);
        } else if (p_.dtype == HWKV_F32) {
          std::memcpy(kd, ks, size_t(hd) * 4);
          rope_rotate(*rope, reinterpret_cast<float*>(kd), 1, hd, c, sn);
        } else {
          std::memcpy(tmp.data(), ks, size_t(hd) * 4);
          rope_rotate(*rope, tmp.data(), 1, hd, c, sn);
          store_rows(kd, tmp.data(), hd);
        }
      }
      if (v) store_rows(v_base(page, layer, h) + slot * hdv * es, v + (t * nkv + h) * hdv, hdv);
    }
  }
  return HWKV_OK;
}

hwkv_status BlockStore::truncate(int32_t b, int32_t new_len) {
  const char* fn = "block_truncate";
  HWKV_TRY(check_block(fn, b));
  Block& blk = blocks_[b];
  if (new_len < 0 || new_len > blk.len)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: new_len %d is out of range 0..%d (length of block %d)", fn, new_len, blk.len, b);
  const size_t keep = static_cast<size_t>(ceil_div(new_len, p_.page_tokens));
  if (new_len % p_.page_tokens != 0 && blk.pages[keep - 1] < 0) {
    // A partially kept compressed page becomes an exact page again (holding its decoded values), so the
    // block can grow into it.
    HWKV_RESERVE_FREE_LIST(1);
    std::vector<uint8_t> tmp;
    const CompRef& r = blk.comp[keep - 1];
    tmp.resize(static_cast<size_t>(r.c->n_pages * layer_bytes_));
    std::vector<int32_t> got;
    HWKV_TRY(reserve_pages(fn, 1, &got));
    for (int32_t L = 0; L < p_.n_layer; ++L) {
      const hwkv_status st = decode_chunk(*r.c, L, tmp.data());
      if (st != HWKV_OK) {
        release_pages(got.data(), 1);
        return st;
      }
      std::memcpy(pages_[got[0]] + L * layer_bytes_, tmp.data() + int64_t(r.page) * layer_bytes_, size_t(layer_bytes_));
    }
    blk.pages[keep - 1] = got[0];
    blk.comp[keep - 1].c.reset();
  }
  if (keep < blk.pages.size()) {
    release_pages(blk.pages.data() + keep, blk.pages.size() - keep);
    blk.pages.resize(keep);
    if (blk.comp.size() > keep) blk.comp.resize(keep);
  }
  blk.len = new_len;
  return HWKV_OK;
}

hwkv_status BlockStore::merge(int32_t dst, int32_t src, const Rope* rope) {
  const char* fn = "block_merge";
  HWKV_TRY(check_block(fn, dst));
  HWKV_TRY(check_block(fn, src));
  if (dst == src) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: src and dst are the same block (%d)", fn, dst);
  HWKV_TRY(check_rope(fn, rope));
  Block& d = blocks_[dst];
  const Block& s = blocks_[src];
  const int64_t a = d.len, n = s.len, new_len = a + n;
  if (n == 0) return HWKV_OK;
  if (new_len > INT32_MAX)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would hold %lld tokens (limit %d)", fn, dst, (long long)new_len, INT32_MAX);
  const int64_t pt = p_.page_tokens;
  if (aqua() && !s.comp.empty() && a % pt == 0 && (!rope || same_rope(*rope, aq_rope_))) return merge_aqua(d, s, rope);
  const int64_t need = ceil_div(new_len, pt) - static_cast<int64_t>(d.pages.size());
  const int32_t hd = p_.head_dim, hdv = p_.head_dim_v;
  RopeTable table;
  std::vector<float> tmp(rope && p_.dtype == HWKV_F16 ? static_cast<size_t>(pt * hd) : 0);
  if (rope) table.build_one(*rope, static_cast<double>(a));
  d.pages.reserve(static_cast<size_t>(d.pages.size() + std::max<int64_t>(need, 0)));
  HWKV_RESERVE_FREE_LIST(std::max<int64_t>(need, 0));
  std::vector<int32_t> got;
  HWKV_TRY(reserve_pages(fn, need, &got));
  d.pages.insert(d.pages.end(), got.begin(), got.end());

  const size_t es = elem_size();
  std::vector<uint8_t> dtmp;
  const Chunk* dc = nullptr;
  int32_t dl = -1;
  for (int32_t L = 0; L < p_.n_layer; ++L) {
    for (int32_t h = 0; h < p_.n_kv_head; ++h) {
      for (int64_t t = 0; t < n;) {
        const int64_t ss = t % pt, dpos = a + t, ds = dpos % pt;
        const int64_t m = std::min(std::min(pt - ss, pt - ds), n - t);
        const int32_t sp = s.pages[t / pt], dp = d.pages[dpos / pt];
        uint8_t* kd = k_base(dp, L, h) + ds * hd * es;
        (void)sp;
        const uint8_t* ks = page_k_any(s, static_cast<int32_t>(t / pt), L, h, &dtmp, &dc, &dl) + ss * hd * es;
        const uint8_t* vs = page_v_any(s, static_cast<int32_t>(t / pt), L, h, &dtmp, &dc, &dl) + ss * hdv * es;
        if (!rope) {
          std::memcpy(kd, ks, size_t(m * hd) * es);
        } else if (p_.dtype == HWKV_F32) {
          std::memcpy(kd, ks, size_t(m * hd) * es);
          rope_rotate(*rope, reinterpret_cast<float*>(kd), m, hd, table.cos(0), table.sin(0));
        } else {
          load_rows(ks, tmp.data(), m * hd);
          rope_rotate(*rope, tmp.data(), m, hd, table.cos(0), table.sin(0));
          store_rows(kd, tmp.data(), m * hd);
        }
        std::memcpy(v_base(dp, L, h) + ds * hdv * es, vs, size_t(m * hdv) * es);
        t += m;
      }
    }
  }
  d.len = static_cast<int32_t>(new_len);
  return HWKV_OK;
}

bool BlockStore::same_rope(const Rope& x, const Rope& y) {
  return x.head_dim == y.head_dim && x.rotary_dim == y.rotary_dim && x.style == y.style && x.inv_freq == y.inv_freq;
}

// AQUA merge at a page boundary of dst: compressed chunks of src move without being decoded (their keys are
// pre-RoPE, so only their block-local start changes: pos0 + len(dst) with rope, unchanged without); exact pages
// are copied (keys rotated by +len(dst) with rope). No re-quantization.
hwkv_status BlockStore::merge_aqua(Block& d, const Block& s, const Rope* rope) {
  const char* fn = "block_merge";
  const int64_t pt = p_.page_tokens, a = d.len, n = s.len;
  const int32_t hd = p_.head_dim, hdv = p_.head_dim_v, nkv = p_.n_kv_head;
  const size_t np = s.pages.size();
  int64_t n_exact = 0;
  for (int32_t idx : s.pages) n_exact += idx >= 0 ? 1 : 0;
  // everything that may throw (allocations) first; then the pages
  std::vector<std::shared_ptr<Chunk>> moved;
  std::vector<CompRef> refs(np);
  for (size_t p = 0; p < np; ++p) {
    if (s.pages[p] >= 0) continue;
    const CompRef& r = s.comp[p];
    if (p == 0 || s.pages[p - 1] >= 0 || s.comp[p - 1].c != r.c) {  // first page of a chunk: one copy per chunk
      auto c = std::make_shared<Chunk>();
      c->n_pages = r.c->n_pages;
      c->n_tok = r.c->n_tok;
      c->pos0 = r.c->pos0 + static_cast<int32_t>(rope ? a : 0);
      c->layers = r.c->layers;
      c->bytes = r.c->bytes;
      moved.push_back(std::move(c));
    }
    refs[p] = CompRef{moved.back(), r.page};
  }
  RopeTable table;
  std::vector<float> tmp(static_cast<size_t>(pt) * std::max(hd, hdv));
  if (rope) table.build_one(*rope, static_cast<double>(a));
  d.pages.reserve(d.pages.size() + np);
  d.comp.reserve(d.pages.size() + np);
  HWKV_RESERVE_FREE_LIST(n_exact);
  std::vector<int32_t> got;
  HWKV_TRY(reserve_pages(fn, n_exact, &got));
  if (d.comp.size() < d.pages.size()) d.comp.resize(d.pages.size());
  const size_t es = elem_size();
  size_t gi = 0;
  for (size_t p = 0; p < np; ++p) {
    if (s.pages[p] < 0) {
      d.pages.push_back(-1);
      d.comp.push_back(refs[p]);
      continue;
    }
    const int32_t sp = s.pages[p], dp = got[gi++];
    const int64_t m = std::min<int64_t>(pt, n - int64_t(p) * pt);
    for (int32_t L = 0; L < p_.n_layer; ++L)
      for (int32_t h = 0; h < nkv; ++h) {
        uint8_t* kd = k_base(dp, L, h);
        const uint8_t* ks = k_base(sp, L, h);
        if (!rope) {
          std::memcpy(kd, ks, size_t(m * hd) * es);
        } else {
          load_rows(ks, tmp.data(), m * hd);
          rope_rotate(*rope, tmp.data(), m, hd, table.cos(0), table.sin(0));
          store_rows(kd, tmp.data(), m * hd);
        }
        std::memcpy(v_base(dp, L, h), v_base(sp, L, h), size_t(m * hdv) * es);
      }
    d.pages.push_back(dp);
    d.comp.push_back(CompRef{});
  }
  d.len = static_cast<int32_t>(a + n);
  return HWKV_OK;
}

// ------------------------------------------------------------------------------------------------
// reads
// ------------------------------------------------------------------------------------------------
hwkv_status BlockStore::read(int32_t b, int32_t layer, int32_t start, int32_t n_tok, float* k, float* v) const {
  const char* fn = "block_read";
  HWKV_TRY(check_block(fn, b));
  HWKV_TRY(check_layer(fn, layer));
  const Block& blk = blocks_[b];
  if (start < 0 || n_tok < 0 || int64_t(start) + n_tok > blk.len)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: tokens [%d, %lld) are out of range (block %d holds %d tokens)", fn, start,
                (long long)start + n_tok, b, blk.len);
  const int64_t pt = p_.page_tokens, nkv = p_.n_kv_head, hd = p_.head_dim, hdv = p_.head_dim_v;
  const size_t es = elem_size();
  std::vector<uint8_t> dtmp;
  const Chunk* dc = nullptr;
  int32_t dl = -1;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t tp = start + t;
    const int32_t page = static_cast<int32_t>(tp / pt);
    const int64_t slot = tp % pt;
    for (int32_t h = 0; h < nkv; ++h) {
      if (k) load_rows(page_k_any(blk, page, layer, h, &dtmp, &dc, &dl) + slot * hd * es, k + (t * nkv + h) * hd, hd);
      if (v) load_rows(page_v_any(blk, page, layer, h, &dtmp, &dc, &dl) + slot * hdv * es, v + (t * nkv + h) * hdv, hdv);
    }
  }
  return HWKV_OK;
}

hwkv_status BlockStore::view_read(const int32_t* blocks, int32_t n_blocks, int32_t layer, const Rope* rope, float* k,
                                  float* v, int64_t total) const {
  const char* fn = "view_read";
  if (n_blocks < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_blocks must be >= 0, got %d", fn, n_blocks);
  if (n_blocks > 0 && !blocks) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: blocks is NULL", fn);
  HWKV_TRY(check_layer(fn, layer));
  HWKV_TRY(check_rope(fn, rope));
  int64_t sum = 0;
  std::vector<int32_t> seen(blocks_.size(), -1);
  for (int32_t j = 0; j < n_blocks; ++j) {
    const int32_t b = blocks[j];
    if (!is_live(b))
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: view entry %d: block %d is not a live block (store has %d live blocks)", fn, j, b,
                  live_count_);
    if (seen[b] >= 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: block %d appears twice in the view (entries %d and %d)", fn, b, seen[b], j);
    seen[b] = j;
    sum += blocks_[b].len;
  }
  if (total != sum)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: total is %lld but the view holds %lld tokens", fn, (long long)total,
                (long long)sum);
  const int64_t nkv = p_.n_kv_head, hd = p_.head_dim, hdv = p_.head_dim_v;
  RopeTable table;
  int64_t o = 0;
  for (int32_t j = 0; j < n_blocks; ++j) {
    const int32_t b = blocks[j];
    const int32_t n = blocks_[b].len;
    float* kj = k ? k + o * nkv * hd : nullptr;
    float* vj = v ? v + o * nkv * hdv : nullptr;
    HWKV_TRY(read(b, layer, 0, n, kj, vj));
    if (rope && kj && o != 0 && n > 0) {
      table.build_one(*rope, static_cast<double>(o));
      rope_rotate(*rope, kj, int64_t(n) * nkv, hd, table.cos(0), table.sin(0));
    }
    o += n;
  }
  return HWKV_OK;
}

void BlockStore::stats(hwkv_store_stats* out) const {
  out->bytes_reserved = pages_allocated_ * page_bytes_;
  out->bytes_in_use = pages_in_use_ * page_bytes_;
  out->pages_in_use = static_cast<int32_t>(pages_in_use_);
  out->pages_free = static_cast<int32_t>(free_pages_.size());
  out->blocks_live = live_count_;
  out->reserved = 0;
}

// ------------------------------------------------------------------------------------------------
// KV codec
// ------------------------------------------------------------------------------------------------
hwkv_status BlockStore::aqua_init(const hwkv_store_codec& c) {
  const char* fn = "store_create_codec";
  const int32_t L = p_.n_layer, Ck = p_.n_kv_head * p_.head_dim, Cv = p_.n_kv_head * p_.head_dim_v;
  if (!c.rope) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: the aqua codec needs the model's rope (keys are compressed before RoPE)", fn);
  HWKV_TRY(rope_init_for_store(*this, c.rope, fn, &aq_rope_));
  HWKV_TRY(codec::check_aqua_predictors(fn, p_, c));
  aq_.assign(static_cast<size_t>(L), AquaLayer{});
  const codec::AquaView v0 = codec::aqua_layer(p_, c.predictors, 0);  // a constant predictor (the calibration mean)
  aq_[0].bk.assign(v0.bk, v0.bk + Ck);
  aq_[0].bv.assign(v0.bv, v0.bv + Cv);
  for (int32_t l = 1; l < L; ++l) {
    AquaLayer& a = aq_[l];
    const codec::AquaView v = codec::aqua_layer(p_, c.predictors, l);
    a.wk.assign(v.wk, v.wk + int64_t(Ck) * Ck);
    a.bk.assign(v.bk, v.bk + Ck);
    a.wvk.resize(size_t(Cv) * Ck);
    a.wvv.resize(size_t(Cv) * Cv);
    codec::split_wv(v.wv, Ck, Cv, a.wvk.data(), a.wvv.data());
    a.bv.assign(v.bv, v.bv + Cv);
  }
  return HWKV_OK;
}

hwkv_status BlockStore::higgs_params_for(int32_t L, bool value, hwkv_higgs_params* hp, const float** grid) const {
  bool g0;
  codec::higgs_params(p_, codec_, L, value, hp, &g0);
  *grid = g0 ? grid0_.data() : grid_.data();
  return HWKV_OK;
}

namespace {
// y[n, out] (+)= W[out, in] x[n, in] on the core's matmul kernels; then + bias (if given).
hwkv_status linear(const float* W, int64_t n_out, int64_t n_in, const float* x, int64_t n, float* y, int32_t accumulate,
                   const float* bias, ThreadPool* pool) {
  kern::MatmulOut o{W, kern::HWKV_WT_F32, accumulate, n_out, y, 0};
  HWKV_TRY(kern::matmul_multi(&o, 1, n_in, x, n, pool));
  if (bias)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < n_out; ++j) y[t * n_out + j] += bias[j];
  return HWKV_OK;
}
}  // namespace

hwkv_status BlockStore::aqua_layer(const Chunk& c, int32_t L, const float* pk, const float* pv, float* yk, float* yv,
                                   ThreadPool* pool) const {
  const int32_t n = c.n_tok, Ck = p_.n_kv_head * p_.head_dim, Cv = p_.n_kv_head * p_.head_dim_v;
  const Chunk::Layer& Ly = c.layers[L];
  hwkv_higgs_params kp, vp;
  const float *gk, *gv;
  higgs_params_for(L, false, &kp, &gk);
  higgs_params_for(L, true, &vp, &gv);
  if (L == 0) {
    if (codec_.layer0_exact) {
      for (int64_t i = 0; i < int64_t(n) * Ck; ++i) yk[i] = f16_to_f32_one(Ly.ks[i]);
      for (int64_t i = 0; i < int64_t(n) * Cv; ++i) yv[i] = f16_to_f32_one(Ly.vs[i]);
      return HWKV_OK;
    }
    const AquaLayer& a = aq_[0];
    for (int64_t t = 0; t < n; ++t) std::memcpy(yk + t * Ck, a.bk.data(), size_t(Ck) * 4);
    for (int64_t t = 0; t < n; ++t) std::memcpy(yv + t * Cv, a.bv.data(), size_t(Cv) * 4);
    HWKV_TRY(quant::higgs_decode(&kp, gk, Ly.kw.data(), int64_t(Ly.kw.size()), Ly.ks.data(), n, yk, 1));
    return quant::higgs_decode(&vp, gv, Ly.vw.data(), int64_t(Ly.vw.size()), Ly.vs.data(), n, yv, 1);
  }
  const AquaLayer& a = aq_[L];
  HWKV_TRY(linear(a.wk.data(), Ck, Ck, pk, n, yk, 0, a.bk.data(), pool));
  HWKV_TRY(quant::higgs_decode(&kp, gk, Ly.kw.data(), int64_t(Ly.kw.size()), Ly.ks.data(), n, yk, 1));
  HWKV_TRY(linear(a.wvk.data(), Cv, Ck, yk, n, yv, 0, nullptr, pool));
  HWKV_TRY(linear(a.wvv.data(), Cv, Cv, pv, n, yv, 1, a.bv.data(), pool));
  return quant::higgs_decode(&vp, gv, Ly.vw.data(), int64_t(Ly.vw.size()), Ly.vs.data(), n, yv, 1);
}

void BlockStore::aqua_store(const Chunk& c, float* yk, const float* yv, uint8_t* out) const {
  const int32_t pt = p_.page_tokens, nkv = p_.n_kv_head, hd = p_.head_dim, hdv = p_.head_dim_v;
  const int32_t Ck = nkv * hd, Cv = nkv * hdv;
  const size_t es = elem_size();
  thread_local std::vector<float> C, S;
  C.resize(size_t(aq_rope_.rotary_dim));
  S.resize(size_t(aq_rope_.rotary_dim));
  for (int32_t t = 0; t < c.n_tok; ++t) {
    rope_table_one(aq_rope_, double(c.pos0) + t, C.data(), S.data());
    rope_rotate(aq_rope_, yk + int64_t(t) * Ck, nkv, hd, C.data(), S.data());
  }
  for (int32_t pi = 0; pi < c.n_pages; ++pi) {
    uint8_t* base = out + int64_t(pi) * layer_bytes_;
    for (int32_t h = 0; h < nkv; ++h)
      for (int32_t t = 0; t < pt; ++t) {
        store_rows(base + h * k_head_bytes_ + int64_t(t) * hd * es, yk + (int64_t(pi) * pt + t) * Ck + int64_t(h) * hd, hd);
        store_rows(base + nkv * k_head_bytes_ + h * v_head_bytes_ + int64_t(t) * hdv * es,
                   yv + (int64_t(pi) * pt + t) * Cv + int64_t(h) * hdv, hdv);
      }
  }
}

hwkv_status BlockStore::encode_chunk(const Block& blk, int32_t p0, std::shared_ptr<Chunk>* out, ThreadPool* pool) {
  const int32_t pt = p_.page_tokens, nkv = p_.n_kv_head, hd = p_.head_dim, hdv = p_.head_dim_v;
  const int32_t cp = codec_.chunk_tokens / pt, n = codec_.chunk_tokens;
  const int32_t Ck = nkv * hd, Cv = nkv * hdv;
  const size_t es = elem_size();
  std::shared_ptr<Chunk> c = std::make_shared<Chunk>();
  c->n_pages = cp;
  c->n_tok = n;
  c->pos0 = p0 * pt;
  c->layers.resize(static_cast<size_t>(p_.n_layer));
  std::vector<float> xk(size_t(n) * Ck), xv(size_t(n) * Cv);
  // AQUA: reconstructions of the previous layer (pk, pv) and of this one (yk, yv); residuals in rk / rv.
  std::vector<float> pk, pv, yk, yv, rk, rv, Cs, Ss;
  if (aqua()) {
    pk.resize(xk.size()), yk.resize(xk.size()), rk.resize(xk.size());
    pv.resize(xv.size()), yv.resize(xv.size()), rv.resize(xv.size());
    Cs.resize(size_t(n) * aq_rope_.rotary_dim), Ss.resize(size_t(n) * aq_rope_.rotary_dim);
    for (int32_t t = 0; t < n; ++t)  // un-rotation: R(-(pos0 + t))
      rope_table_one(aq_rope_, -(double(c->pos0) + t), Cs.data() + int64_t(t) * aq_rope_.rotary_dim,
                     Ss.data() + int64_t(t) * aq_rope_.rotary_dim);
  }
  int64_t bytes = 0;
  for (int32_t L = 0; L < p_.n_layer; ++L) {
    for (int32_t pi = 0; pi < cp; ++pi) {
      const int32_t idx = blk.pages[p0 + pi];
      for (int32_t h = 0; h < nkv; ++h)
        for (int32_t t = 0; t < pt; ++t) {
          load_rows(k_base(idx, L, h) + int64_t(t) * hd * es, xk.data() + (int64_t(pi) * pt + t) * Ck + int64_t(h) * hd, hd);
          load_rows(v_base(idx, L, h) + int64_t(t) * hdv * es, xv.data() + (int64_t(pi) * pt + t) * Cv + int64_t(h) * hdv, hdv);
        }
    }
    Chunk::Layer& Ly = c->layers[L];
    int64_t nw, ns;
    if (codec_.type == HWKV_KV_UNIFORM) {
      hwkv_uniform_params kp, vp;
      codec::uniform_params(p_, codec_, &kp, &vp);
      HWKV_TRY(quant::uniform_size(&kp, n, &nw, &ns));
      Ly.kw.resize(size_t(nw)), Ly.ks.resize(size_t(ns)), Ly.kz.resize(size_t(ns));
      HWKV_TRY(quant::uniform_encode(&kp, xk.data(), n, Ly.kw.data(), nw, Ly.ks.data(), Ly.kz.data()));
      HWKV_TRY(quant::uniform_size(&vp, n, &nw, &ns));
      Ly.vw.resize(size_t(nw)), Ly.vs.resize(size_t(ns)), Ly.vz.resize(size_t(ns));
      HWKV_TRY(quant::uniform_encode(&vp, xv.data(), n, Ly.vw.data(), nw, Ly.vs.data(), Ly.vz.data()));
    } else {
      hwkv_higgs_params kp, vp;
      const float *gk, *gv;
      higgs_params_for(L, false, &kp, &gk);
      higgs_params_for(L, true, &vp, &gv);
      const float* ek = xk.data();
      const float* ev = xv.data();
      if (aqua()) {
        for (int32_t t = 0; t < n; ++t)
          rope_rotate(aq_rope_, xk.data() + int64_t(t) * Ck, nkv, hd, Cs.data() + int64_t(t) * aq_rope_.rotary_dim,
                      Ss.data() + int64_t(t) * aq_rope_.rotary_dim);
        if (L == 0 && codec_.layer0_exact) {
          Ly.ks.resize(xk.size()), Ly.vs.resize(xv.size());
          for (size_t i = 0; i < xk.size(); ++i) {
            if (!(std::fabs(xk[i]) <= 65504.0f))
              return fail(HWKV_ERR_OUT_OF_RANGE, "store codec: a layer-0 key (%g) is beyond the fp16 range", double(xk[i]));
            Ly.ks[i] = f32_to_f16_one(xk[i]);
          }
          for (size_t i = 0; i < xv.size(); ++i) {
            if (!(std::fabs(xv[i]) <= 65504.0f))
              return fail(HWKV_ERR_OUT_OF_RANGE, "store codec: a layer-0 value (%g) is beyond the fp16 range", double(xv[i]));
            Ly.vs[i] = f32_to_f16_one(xv[i]);
          }
          HWKV_TRY(aqua_layer(*c, 0, nullptr, nullptr, pk.data(), pv.data(), pool));
          bytes += 2 * int64_t(Ly.ks.size() + Ly.vs.size());
          continue;
        }
        if (L > 0) {
          // keys: residual of the prediction from K̂_{L-1}
          const AquaLayer& a = aq_[L];
          HWKV_TRY(linear(a.wk.data(), Ck, Ck, pk.data(), n, yk.data(), 0, a.bk.data(), pool));
          for (size_t i = 0; i < xk.size(); ++i) rk[i] = xk[i] - yk[i];
          ek = rk.data();
        } else {
          // layer 0: residual of the constant predictor (mean)
          const AquaLayer& a = aq_[0];
          for (size_t i = 0; i < xk.size(); ++i) rk[i] = xk[i] - a.bk[i % size_t(Ck)];
          for (size_t i = 0; i < xv.size(); ++i) rv[i] = xv[i] - a.bv[i % size_t(Cv)];
          ek = rk.data();
          ev = rv.data();
        }
      }
      HWKV_TRY(quant::higgs_size(&kp, n, &nw, &ns));
      Ly.kw.resize(size_t(nw)), Ly.ks.resize(size_t(ns));
      HWKV_TRY(quant::higgs_encode(&kp, gk, ek, n, Ly.kw.data(), nw, Ly.ks.data()));
      if (aqua() && L > 0) {
        // K̂_L = prediction + decoded residual; values: residual of the prediction from [K̂_L, V̂_{L-1}]
        const AquaLayer& a = aq_[L];
        HWKV_TRY(quant::higgs_decode(&kp, gk, Ly.kw.data(), nw, Ly.ks.data(), n, yk.data(), 1));
        HWKV_TRY(linear(a.wvk.data(), Cv, Ck, yk.data(), n, yv.data(), 0, nullptr, pool));
        HWKV_TRY(linear(a.wvv.data(), Cv, Cv, pv.data(), n, yv.data(), 1, a.bv.data(), pool));
        for (size_t i = 0; i < xv.size(); ++i) rv[i] = xv[i] - yv[i];
        ev = rv.data();
      }
      HWKV_TRY(quant::higgs_size(&vp, n, &nw, &ns));
      Ly.vw.resize(size_t(nw)), Ly.vs.resize(size_t(ns));
      HWKV_TRY(quant::higgs_encode(&vp, gv, ev, n, Ly.vw.data(), nw, Ly.vs.data()));
      if (aqua()) {
        if (L == 0) {
          HWKV_TRY(aqua_layer(*c, 0, nullptr, nullptr, pk.data(), pv.data(), pool));
        } else {
          HWKV_TRY(quant::higgs_decode(&vp, gv, Ly.vw.data(), nw, Ly.vs.data(), n, yv.data(), 1));
          pk.swap(yk);
          pv.swap(yv);
        }
      }
    }
    bytes += 4 * int64_t(Ly.kw.size() + Ly.vw.size()) + 2 * int64_t(Ly.ks.size() + Ly.kz.size() + Ly.vs.size() + Ly.vz.size());
  }
  c->bytes = bytes;
  *out = std::move(c);
  return HWKV_OK;
}

hwkv_status BlockStore::decode_chunk(const Chunk& c, int32_t L, uint8_t* out) const {
  const int32_t pt = p_.page_tokens, nkv = p_.n_kv_head, hd = p_.head_dim, hdv = p_.head_dim_v;
  const int32_t n = c.n_tok, Ck = nkv * hd, Cv = nkv * hdv;
  const size_t es = elem_size();
  thread_local std::vector<float> yk, yv, pk, pv;
  yk.resize(size_t(n) * Ck);
  yv.resize(size_t(n) * Cv);
  if (aqua()) {
    // the chain: layers 0..L of this chunk
    pk.resize(yk.size());
    pv.resize(yv.size());
    for (int32_t l = 0; l <= L; ++l) {
      HWKV_TRY(aqua_layer(c, l, pk.data(), pv.data(), yk.data(), yv.data(), nullptr));
      if (l < L) pk.swap(yk), pv.swap(yv);
    }
    aqua_store(c, yk.data(), yv.data(), out);
    return HWKV_OK;
  }
  const Chunk::Layer& Ly = c.layers[L];
  if (codec_.type == HWKV_KV_UNIFORM) {
    hwkv_uniform_params kp, vp;
    codec::uniform_params(p_, codec_, &kp, &vp);
    HWKV_TRY(quant::uniform_decode(&kp, Ly.kw.data(), int64_t(Ly.kw.size()), Ly.ks.data(), Ly.kz.data(), n, yk.data(), 0));
    HWKV_TRY(quant::uniform_decode(&vp, Ly.vw.data(), int64_t(Ly.vw.size()), Ly.vs.data(), Ly.vz.data(), n, yv.data(), 0));
  } else {
    hwkv_higgs_params kp, vp;
    const float *gk, *gv;
    higgs_params_for(L, false, &kp, &gk);
    higgs_params_for(L, true, &vp, &gv);
    HWKV_TRY(quant::higgs_decode(&kp, gk, Ly.kw.data(), int64_t(Ly.kw.size()), Ly.ks.data(), n, yk.data(), 0));
    HWKV_TRY(quant::higgs_decode(&vp, gv, Ly.vw.data(), int64_t(Ly.vw.size()), Ly.vs.data(), n, yv.data(), 0));
  }
  for (int32_t pi = 0; pi < c.n_pages; ++pi) {
    uint8_t* base = out + int64_t(pi) * layer_bytes_;
    for (int32_t h = 0; h < nkv; ++h)
      for (int32_t t = 0; t < pt; ++t) {
        store_rows(base + h * k_head_bytes_ + int64_t(t) * hd * es, yk.data() + (int64_t(pi) * pt + t) * Ck + int64_t(h) * hd, hd);
        store_rows(base + nkv * k_head_bytes_ + h * v_head_bytes_ + int64_t(t) * hdv * es,
                   yv.data() + (int64_t(pi) * pt + t) * Cv + int64_t(h) * hdv, hdv);
      }
  }
  return HWKV_OK;
}

const uint8_t* BlockStore::page_k_any(const Block& blk, int32_t page, int32_t layer, int32_t kv_head, std::vector<uint8_t>* tmp,
                                      const Chunk** tmp_c, int32_t* tmp_layer) const {
  const int32_t idx = blk.pages[page];
  if (idx >= 0) return k_base(idx, layer, kv_head);
  const CompRef& r = blk.comp[page];
  if (*tmp_c != r.c.get() || *tmp_layer != layer) {
    tmp->resize(static_cast<size_t>(r.c->n_pages * layer_bytes_));
    decode_chunk(*r.c, layer, tmp->data());  // cannot fail on codes it produced
    *tmp_c = r.c.get();
    *tmp_layer = layer;
  }
  return tmp->data() + int64_t(r.page) * layer_bytes_ + kv_head * k_head_bytes_;
}
const uint8_t* BlockStore::page_v_any(const Block& blk, int32_t page, int32_t layer, int32_t kv_head, std::vector<uint8_t>* tmp,
                                      const Chunk** tmp_c, int32_t* tmp_layer) const {
  const int32_t idx = blk.pages[page];
  if (idx >= 0) return v_base(idx, layer, kv_head);
  page_k_any(blk, page, layer, kv_head, tmp, tmp_c, tmp_layer);
  const CompRef& r = blk.comp[page];
  return tmp->data() + int64_t(r.page) * layer_bytes_ + p_.n_kv_head * k_head_bytes_ + kv_head * v_head_bytes_;
}

void BlockStore::compact(int32_t b, ThreadPool* pool) {
  if (!has_codec() || !is_live(b)) return;
  Block& blk = blocks_[b];
  if (blk.no_compress) return;
  const int64_t cp = codec_.chunk_tokens / p_.page_tokens;
  try {
    std::vector<int32_t> p0s;
    codec::compact_candidates(p_, codec_, sink_tokens_, blk.pages, blk.len, &p0s);
    for (const int32_t p0 : p0s) {
      std::shared_ptr<Chunk> c;
      if (encode_chunk(blk, p0, &c, pool) != HWKV_OK) {
        blk.no_compress = true;
        return;
      }
      if (blk.comp.size() < blk.pages.size()) blk.comp.resize(blk.pages.size());
      release_pages(blk.pages.data() + p0, static_cast<size_t>(cp));
      for (int64_t i = 0; i < cp; ++i) {
        blk.pages[p0 + i] = -1;
        blk.comp[p0 + i] = CompRef{c, static_cast<int32_t>(i)};
      }
    }
  } catch (...) {
    blk.no_compress = true;
  }
}

void BlockStore::compact_all(ThreadPool* pool) {
  if (!has_codec()) return;
  for (int32_t b = 0; b < block_id_limit(); ++b)
    if (blocks_[b].live) compact(b, pool);
}

hwkv_status BlockStore::prepare_layer(int32_t layer, ThreadPool* pool, const int32_t* only, int64_t n_only) {
  if (!has_codec()) return HWKV_OK;
  ++dec_epoch_;
  int64_t total = 0;
  std::vector<Chunk*> list;   // chunks to decode for this layer
  std::vector<Chunk*> every;  // the compressed chunks of the blocks concerned
  int64_t kept_bytes = 0;
  for (const Block& blk : blocks_)
    for (const CompRef& r : blk.comp)
      if (blk.live && r.c && r.page == 0) kept_bytes += static_cast<int64_t>(r.c->kept.size());  // once per chunk
  auto collect = [&](const Block& blk) {
    if (!blk.live || blk.comp.empty()) return;
    for (size_t p = 0; p < blk.pages.size(); ++p) {
      if (blk.pages[p] >= 0) continue;
      Chunk& c = *blk.comp[p].c;
      if (c.dec_epoch == dec_epoch_) continue;
      c.dec_epoch = dec_epoch_;
      every.push_back(&c);
    }
  };
  if (only) {
    for (int64_t i = 0; i < n_only; ++i)
      if (is_live(only[i])) collect(blocks_[only[i]]);
  } else {
    for (const Block& blk : blocks_) collect(blk);
  }
  const int64_t lb = layer_bytes_;
  for (Chunk* cp : every) {
    Chunk& c = *cp;
    const int64_t all = int64_t(c.n_pages) * lb * p_.n_layer;
    if (c.kept.empty() && codec_.cache_bytes > 0 && kept_bytes + all <= codec_.cache_bytes) {
      try {
        c.kept.resize(static_cast<size_t>(all));
        c.kept_layers.assign(static_cast<size_t>(p_.n_layer), 0);
        kept_bytes += all;
      } catch (...) {
        std::vector<uint8_t>().swap(c.kept);
      }
    }
    if (!c.kept.empty()) {
      c.dec_ptr = c.kept.data() + int64_t(layer) * c.n_pages * lb;
      if (c.kept_layers[layer]) continue;  // decoded by an earlier forward: nothing to do
      c.dec_off = -1;
    } else {
      c.dec_off = total;
      total += c.n_pages * lb;
    }
    list.push_back(&c);
  }
  if (list.empty()) return HWKV_OK;
  if (dec_.size() < static_cast<size_t>(total)) dec_.resize(static_cast<size_t>(total));
  for (Chunk* c : list) {
    if (c->dec_off >= 0) c->dec_ptr = dec_.data() + c->dec_off;
  }
  auto mark = [&]() {
    for (Chunk* c : list)
      if (!c->kept.empty()) c->kept_layers[layer] = 1;
  };
  if (!aqua()) {
    const int64_t nc = static_cast<int64_t>(list.size());
    std::vector<hwkv_status> rc(list.size(), HWKV_OK);
    auto one = [&](int64_t i, int) {
      Chunk* c = list[static_cast<size_t>(i)];
      rc[static_cast<size_t>(i)] = decode_chunk(*c, layer, const_cast<uint8_t*>(c->dec_ptr));
    };
    if (pool && pool->size() > 1 && nc > 1)
      pool->parallel_for(nc, one);
    else
      for (int64_t i = 0; i < nc; ++i) one(i, 0);
    for (hwkv_status st : rc) HWKV_TRY(st);
    mark();
    dec_layer_ = layer;
    return HWKV_OK;
  }
  // AQUA: one step of the predictor chain per chunk from the state of layer-1 (kept in aq_state_ between
  // the calls of one forward); layer 0 starts a new state layout.
  const int64_t Ck = int64_t(p_.n_kv_head) * p_.head_dim, Cv = int64_t(p_.n_kv_head) * p_.head_dim_v;
  if (layer == 0) ++st_epoch_;
  int64_t st_total = 0;
  for (Chunk* c : list)
    if (c->st_epoch == st_epoch_) st_total = std::max(st_total, c->st_off + int64_t(c->n_tok) * (Ck + Cv));
  for (Chunk* c : list)
    if (c->st_epoch != st_epoch_) {
      c->st_epoch = st_epoch_;
      c->st_off = st_total;
      c->st_layer = -1;
      st_total += int64_t(c->n_tok) * (Ck + Cv);
    }
  if (aq_state_.size() < static_cast<size_t>(st_total)) aq_state_.resize(static_cast<size_t>(st_total));
  std::vector<hwkv_status> rc(list.size(), HWKV_OK);
  auto one = [&](int64_t i, ThreadPool* mp) {
    Chunk& c = *list[static_cast<size_t>(i)];
    const int64_t n = c.n_tok;
    float* sk = aq_state_.data() + c.st_off;
    float* sv = sk + n * Ck;
    thread_local std::vector<float> yk, yv;
    yk.resize(size_t(n * Ck));
    yv.resize(size_t(n * Cv));
    hwkv_status st = HWKV_OK;
    if (c.st_layer != layer) {
      const int32_t from = c.st_layer == layer - 1 ? layer : 0;  // else: the chain from layer 0
      for (int32_t l = from; l <= layer && st == HWKV_OK; ++l) {
        st = aqua_layer(c, l, sk, sv, yk.data(), yv.data(), mp);
        if (st == HWKV_OK) {
          std::memcpy(sk, yk.data(), size_t(n * Ck) * 4);
          std::memcpy(sv, yv.data(), size_t(n * Cv) * 4);
        }
      }
      c.st_layer = st == HWKV_OK ? layer : -1;
    }
    if (st == HWKV_OK) {
      std::memcpy(yk.data(), sk, size_t(n * Ck) * 4);
      aqua_store(c, yk.data(), sv, const_cast<uint8_t*>(c.dec_ptr));
    }
    rc[static_cast<size_t>(i)] = st;
  };
  const int64_t nc = static_cast<int64_t>(list.size());
  if (pool && pool->size() > 1 && nc > 1) {
    pool->parallel_for(nc, [&](int64_t i, int) { one(i, nullptr); });
  } else {
    for (int64_t i = 0; i < nc; ++i) one(i, pool);
  }
  for (hwkv_status st : rc) HWKV_TRY(st);
  mark();
  dec_layer_ = layer;
  return HWKV_OK;
}

hwkv_status BlockStore::codec_chunk(int32_t b, int32_t token, int32_t layer, int32_t which, uint32_t* codes,
                                    uint16_t* scales, uint16_t* zeros, int64_t* info) const {
  const char* fn = "store_codec_chunk";
  HWKV_TRY(check_block(fn, b));
  HWKV_TRY(check_layer(fn, layer));
  if (which != 0 && which != 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: which must be 0 (keys) or 1 (values), got %d", fn, which);
  if (!info) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: info is NULL", fn);
  const Block& blk = blocks_[b];
  if (token < 0 || token >= blk.len)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: token %d is out of range (block %d holds %d tokens)", fn, token, b, blk.len);
  const int32_t page = token / p_.page_tokens;
  if (blk.pages[page] >= 0)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: token %d of block %d is not held compressed", fn, token, b);
  const CompRef& r = blk.comp[page];
  const Chunk& c = *r.c;
  const Chunk::Layer& Ly = c.layers[layer];
  const std::vector<uint32_t>& w = which ? Ly.vw : Ly.kw;
  const std::vector<uint16_t>& s = which ? Ly.vs : Ly.ks;
  const std::vector<uint16_t>& z = which ? Ly.vz : Ly.kz;
  info[0] = int64_t(page - r.page) * p_.page_tokens;
  info[1] = c.n_tok;
  info[2] = static_cast<int64_t>(w.size());
  info[3] = static_cast<int64_t>(s.size());
  info[4] = static_cast<int64_t>(z.size());
  info[5] = aqua() && layer == 0 && codec_.layer0_exact ? 1 : 0;
  if (codes && !w.empty()) std::memcpy(codes, w.data(), w.size() * 4);
  if (scales && !s.empty()) std::memcpy(scales, s.data(), s.size() * 2);
  if (zeros && !z.empty()) std::memcpy(zeros, z.data(), z.size() * 2);
  return HWKV_OK;
}

void BlockStore::codec_stats(hwkv_store_codec_stats* out) const {
  *out = hwkv_store_codec_stats{};
  codec::count_chunks(blocks_, p_.page_tokens, [](const Chunk& c) { return static_cast<int64_t>(c.kept.capacity()); }, out);
  out->bytes_scratch += static_cast<int64_t>(dec_.capacity()) + static_cast<int64_t>(aq_state_.capacity()) * 4;
  out->values_compressed = codec::values_compressed(p_, out->tokens_compressed);
}

}  // namespace hwkv
