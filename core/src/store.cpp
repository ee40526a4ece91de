// store.cpp — the paged KV block store.
#include "store.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <new>

#include "dispatch.h"

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
  for (size_t i = 0; i < n; ++i) free_pages_.push_back(pages[i]);
  pages_in_use_ -= static_cast<int64_t>(n);
}

void BlockStore::trim() {
  for (int32_t idx : free_pages_) {
    page_free(pages_[idx]);
    pages_[idx] = nullptr;
    empty_slots_.push_back(idx);
  }
  pages_allocated_ -= static_cast<int64_t>(free_pages_.size());
  free_pages_.clear();
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

const void* BlockStore::k_page(int32_t b, int32_t page, int32_t layer, int32_t kv_head) const {
  return k_base(blocks_[b].pages[page], layer, kv_head);
}
const void* BlockStore::v_page(int32_t b, int32_t page, int32_t layer, int32_t kv_head) const {
  return v_base(blocks_[b].pages[page], layer, kv_head);
}
const float* BlockStore::k_rows_f32(int32_t b, int32_t page, int32_t layer, int32_t kv_head, int32_t slot0, int32_t n,
                                    float* scratch) const {
  const uint8_t* src = k_base(blocks_[b].pages[page], layer, kv_head) + int64_t(slot0) * p_.head_dim * elem_size();
  if (p_.dtype == HWKV_F32) return reinterpret_cast<const float*>(src);
  load_rows(src, scratch, int64_t(n) * p_.head_dim);
  return scratch;
}
const float* BlockStore::v_rows_f32(int32_t b, int32_t page, int32_t layer, int32_t kv_head, int32_t slot0, int32_t n,
                                    float* scratch) const {
  const uint8_t* src = v_base(blocks_[b].pages[page], layer, kv_head) + int64_t(slot0) * p_.head_dim_v * elem_size();
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
  if (keep < blk.pages.size()) {
    release_pages(blk.pages.data() + keep, blk.pages.size() - keep);
    blk.pages.resize(keep);
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
  for (int32_t L = 0; L < p_.n_layer; ++L) {
    for (int32_t h = 0; h < p_.n_kv_head; ++h) {
      for (int64_t t = 0; t < n;) {
        const int64_t ss = t % pt, dpos = a + t, ds = dpos % pt;
        const int64_t m = std::min(std::min(pt - ss, pt - ds), n - t);
        const int32_t sp = s.pages[t / pt], dp = d.pages[dpos / pt];
        uint8_t* kd = k_base(dp, L, h) + ds * hd * es;
        const uint8_t* ks = k_base(sp, L, h) + ss * hd * es;
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
        std::memcpy(v_base(dp, L, h) + ds * hdv * es, v_base(sp, L, h) + ss * hdv * es, size_t(m * hdv) * es);
        t += m;
      }
    }
  }
  d.len = static_cast<int32_t>(new_len);
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
  for (int64_t t = 0; t < n_tok; ++t) {
    const int64_t tp = start + t;
    const int32_t page = blk.pages[tp / pt];
    const int64_t slot = tp % pt;
    for (int32_t h = 0; h < nkv; ++h) {
      if (k) load_rows(k_base(page, layer, h) + slot * hd * es, k + (t * nkv + h) * hd, hd);
      if (v) load_rows(v_base(page, layer, h) + slot * hdv * es, v + (t * nkv + h) * hdv, hdv);
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

}  // namespace hwkv
