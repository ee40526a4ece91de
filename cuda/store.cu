// store.cu — the block store: device page pool, block table, append / truncate / merge / read / view_read.
#include <algorithm>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

#include "codec.cuh"
#include "ops.cuh"
#include "rope.cuh"
#include "store.cuh"

namespace hwkv_cuda {

namespace {
std::mutex& registry_mutex() {
  static std::mutex* m = new std::mutex;  // leaked on purpose: store_free may run during process teardown
  return *m;
}
std::unordered_set<const hwkv_store*>& registry() {
  static auto* r = new std::unordered_set<const hwkv_store*>;
  return *r;
}
}  // namespace

bool store_is_ours(const hwkv_store* s) {
  if (!s) return false;
  std::lock_guard<std::mutex> lock(registry_mutex());
  return registry().count(s) != 0;
}

bool is_live(const hwkv_store* s, int32_t block) {
  return block >= 0 && block < static_cast<int32_t>(s->blocks.size()) && s->blocks[block].live;
}

hwkv_status check_block(const char* fn, const hwkv_store* s, int32_t block) {
  if (is_live(s, block)) return HWKV_OK;
  return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d is not a live block (store has %d live blocks)", fn, block,
              s->blocks_live);
}

hwkv_status check_layer(const char* fn, const hwkv_store* s, int32_t layer) {
  if (layer < 0 || layer >= s->p.n_layer)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: layer %d is out of range (store has %d layers)", fn, layer, s->p.n_layer);
  return HWKV_OK;
}

hwkv_status store_rope(const char* fn, const hwkv_store* s, const hwkv_rope_params* rope, RopeHost* out) {
  HWKV_TRY(rope_prepare(fn, rope, out));
  if (rope->head_dim != s->p.head_dim)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: rope head_dim (%d) differs from the store's head_dim (%d)", fn,
                rope->head_dim, s->p.head_dim);
  return HWKV_OK;
}

namespace {

// Writes n tokens into a block at positions pos0.. (pages dst_pages[pos / T - dst_first]).
// Source: if src_pages is non-null, tokens src_start.. of another block (pages src_pages[l / T]) of the
// same layer layout; else linear staging k[n_layer, n, n_kv, D], v[n_layer, n, n_kv, Dv].
// Keys are rotated with table row tab + (t * tab_stride) when rd.half > 0.
__global__ void write_tokens_kernel(PageGeo geo, RopeDev rd, int32_t n, int32_t pos0, float* const* dst_pages,
                                    int32_t dst_first, const float* const* src_pages, const float* src_k,
                                    const float* src_v, const float* tab, int32_t tab_stride) {
  const int32_t units = rope_units(rd);
  const int64_t per_layer_k = static_cast<int64_t>(n) * geo.n_kv * units;
  const int64_t per_layer_v = static_cast<int64_t>(n) * geo.n_kv * geo.Dv;
  const int64_t total_k = per_layer_k * geo.n_layer;
  const int64_t total = total_k + per_layer_v * geo.n_layer;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const bool is_k = i < total_k;
    int64_t r = is_k ? i : i - total_k;
    const int32_t width = is_k ? units : geo.Dv;
    const int32_t e = static_cast<int32_t>(r % width);
    r /= width;
    const int32_t g = static_cast<int32_t>(r % geo.n_kv);
    r /= geo.n_kv;
    const int32_t t = static_cast<int32_t>(r % n);
    const int32_t layer = static_cast<int32_t>(r / n);
    const int32_t pos = pos0 + t;
    float* dpage = dst_pages[pos / geo.T - dst_first];
    const int32_t f16 = geo.f16;
    if (src_pages) {
      const float* spage = src_pages[t / geo.T];
      const int64_t so = is_k ? geo.k_off(layer, g, t % geo.T) : geo.v_off(layer, g, t % geo.T);
      const int64_t dof = is_k ? geo.k_off(layer, g, pos % geo.T) : geo.v_off(layer, g, pos % geo.T);
      auto ld = [spage, so, f16](int32_t i) { return kv_get(spage, so + i, f16); };
      auto st = [dpage, dof, f16](int32_t i, float x) { kv_set(dpage, dof + i, x, f16); };
      if (is_k)
        rope_unit_fn(rd, e, ld, st, tab + static_cast<int64_t>(t) * tab_stride);
      else
        st(e, ld(e));
    } else {
      const float* src = is_k ? src_k + ((static_cast<int64_t>(layer) * n + t) * geo.n_kv + g) * geo.D
                              : src_v + ((static_cast<int64_t>(layer) * n + t) * geo.n_kv + g) * geo.Dv;
      const int64_t dof = is_k ? geo.k_off(layer, g, pos % geo.T) : geo.v_off(layer, g, pos % geo.T);
      auto ld = [src](int32_t i) { return src[i]; };
      auto st = [dpage, dof, f16](int32_t i, float x) { kv_set(dpage, dof + i, x, f16); };
      if (is_k)
        rope_unit_fn(rd, e, ld, st, tab + static_cast<int64_t>(t) * tab_stride);
      else
        st(e, ld(e));
    }
  }
}

// Gathers one layer of a list of segments into out[total, n_kv, width] (K with optional rotation, or V).
// Segment j covers output tokens [seg_out[j], seg_out[j+1]) taken from tokens seg_src[j].. of the block
// whose page pointers start at pages + seg_page[j]; keys rotated by table row seg_tab[j] (if >= 0).
__global__ void gather_kernel(PageGeo geo, RopeDev rd, int is_v, int32_t layer, int64_t total, int32_t n_seg,
                              const int64_t* __restrict__ seg_out, const int32_t* __restrict__ seg_src,
                              const int32_t* __restrict__ seg_page, const int32_t* __restrict__ seg_tab,
                              const float* const* __restrict__ pages, const float* __restrict__ tab,
                              float* __restrict__ out) {
  const int32_t width = is_v ? geo.Dv : geo.D;
  const int32_t units = is_v ? geo.Dv : rope_units(rd);
  const int64_t n_items = total * geo.n_kv * units;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_items; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i;
    const int32_t e = static_cast<int32_t>(r % units);
    r /= units;
    const int32_t g = static_cast<int32_t>(r % geo.n_kv);
    const int64_t o = r / geo.n_kv;
    // last segment with seg_out[j] <= o (empty segments are skipped by taking the last such j)
    int32_t lo = 0, hi = n_seg - 1;
    while (lo < hi) {
      const int32_t mid = (lo + hi + 1) / 2;
      if (seg_out[mid] <= o) lo = mid; else hi = mid - 1;
    }
    const int32_t j = lo;
    const int32_t l = seg_src[j] + static_cast<int32_t>(o - seg_out[j]);
    const float* page = pages[seg_page[j] + l / geo.T];
    float* dst = out + (o * geo.n_kv + g) * width;
    const int32_t f16 = geo.f16;
    if (is_v) {
      dst[e] = kv_get(page, geo.v_off(layer, g, l % geo.T) + e, f16);
    } else {
      const int64_t so = geo.k_off(layer, g, l % geo.T);
      auto ld = [page, so, f16](int32_t i) { return kv_get(page, so + i, f16); };
      auto st = [dst](int32_t i, float x) { dst[i] = x; };
      if (seg_tab[j] >= 0) {
        rope_unit_fn(rd, e, ld, st, tab + static_cast<int64_t>(seg_tab[j]) * 2 * rd.half);
      } else {
        rope_copy_unit_fn(rd, e, ld, st);  // this segment is not rotated (offset 0, or no rope)
      }
    }
  }
}

}  // namespace

// Takes `count` pages for a block (free pages first, then new allocations within max_bytes).
// All-or-nothing: on failure nothing is taken and nothing new stays allocated.
hwkv_status acquire_pages(const char* fn, hwkv_store* s, int32_t count, std::vector<int32_t>& got) {
  got.clear();
  if (count <= 0) return HWKV_OK;
  const int32_t n_free = static_cast<int32_t>(s->free_pages.size());
  const int32_t n_new = count > n_free ? count - n_free : 0;
  if (n_new > 0) {
    const int64_t reserved = static_cast<int64_t>(s->page_ptr.size()) * s->page_bytes;
    const int64_t after = reserved + static_cast<int64_t>(n_new) * s->page_bytes;
    if (s->p.max_bytes > 0 && after > s->p.max_bytes)
      return fail(HWKV_ERR_OUT_OF_MEMORY,
                  "%s: needs %lld more pages of %lld bytes but max_bytes %lld allows %lld pages in all (%lld allocated, "
                  "%lld in use)",
                  fn, (long long)n_new, (long long)s->page_bytes, (long long)s->p.max_bytes,
                  (long long)(s->p.max_bytes / s->page_bytes), (long long)s->page_ptr.size(),
                  (long long)s->pages_in_use);
    std::vector<float*> fresh;
    fresh.reserve(n_new);
    s->page_ptr.reserve(s->page_ptr.size() + n_new);
    got.reserve(count);
    for (int32_t i = 0; i < n_new; ++i) {
      void* p = nullptr;
      cudaError_t e = cudaMalloc(&p, static_cast<size_t>(s->page_bytes));
      if (e != cudaSuccess) {
        for (float* f : fresh) (void)cudaFree(f);
        return cuda_fail(e, fn, "cudaMalloc(page)");
      }
      fresh.push_back(static_cast<float*>(p));
    }
    for (float* f : fresh) {
      got.push_back(static_cast<int32_t>(s->page_ptr.size()));
      s->page_ptr.push_back(f);
    }
  }
  got.reserve(count);
  while (static_cast<int32_t>(got.size()) < count) {
    got.push_back(s->free_pages.back());
    s->free_pages.pop_back();
  }
  return HWKV_OK;
}

// Gives exact pages back (compressed entries, -1, go with their chunk's last reference); pages_in_use drops.
void release_pages(hwkv_store* s, const int32_t* pages, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (pages[i] >= 0) {
      s->free_pages.push_back(pages[i]);
      --s->pages_in_use;
    }
}

namespace {

// Copies a list of device pointers for the block's pages [first, last) into `ptrs`.
void page_list(const hwkv_store* s, const StoreBlock& b, size_t first, size_t last, std::vector<float*>& ptrs) {
  for (size_t i = first; i < last; ++i) ptrs.push_back(const_cast<float*>(block_page_ptr(s, b, i)));
}

// Shared tail of append and merge: blocks[block] gains n tokens at positions len.. (pages already in b).
hwkv_status launch_write(const char* fn, hwkv_store* s, const StoreBlock& dst, int32_t pos0, int32_t n,
                         const RopeHost* rope, const std::vector<float>& tab, int32_t tab_stride,
                         const std::vector<float*>* src_ptrs, const float* k, const float* v) {
  const PageGeo& geo = s->geo;
  const int32_t T = geo.T;
  const int32_t first = pos0 / T, last = (pos0 + n - 1) / T + 1;
  std::vector<float*> ptrs;
  page_list(s, dst, first, last, ptrs);
  const size_t n_dst_ptrs = ptrs.size();
  const bool src_block = src_ptrs != nullptr;
  if (src_ptrs) ptrs.insert(ptrs.end(), src_ptrs->begin(), src_ptrs->end());

  const size_t k_bytes = src_block ? 0 : static_cast<size_t>(geo.n_layer) * n * geo.n_kv * geo.D * sizeof(float);
  const size_t v_bytes = src_block ? 0 : static_cast<size_t>(geo.n_layer) * n * geo.n_kv * geo.Dv * sizeof(float);
  Scratch d_ptrs, d_tab, d_k, d_v;
  HWKV_TRY(d_ptrs.alloc(fn, ptrs.size() * sizeof(float*)));
  HWKV_TRY(d_tab.alloc(fn, tab.size() * sizeof(float)));
  HWKV_TRY(d_k.alloc(fn, k_bytes));
  HWKV_TRY(d_v.alloc(fn, v_bytes));
  HWKV_TRY(h2d(fn, d_ptrs.ptr(), ptrs.data(), ptrs.size() * sizeof(float*)));
  HWKV_TRY(h2d(fn, d_tab.ptr(), tab.data(), tab.size() * sizeof(float)));
  HWKV_TRY(h2d(fn, d_k.ptr(), k, k_bytes));
  HWKV_TRY(h2d(fn, d_v.ptr(), v, v_bytes));
  const RopeDev rd = rope_dev(rope, geo.D);
  float* const* dp = d_ptrs.as<float*>();
  const float* const* sp = src_block ? const_cast<const float* const*>(dp + n_dst_ptrs) : nullptr;
  const int64_t items = static_cast<int64_t>(geo.n_layer) * n * geo.n_kv * (rope_units(rd) + geo.Dv);
  const int threads = 256;
  write_tokens_kernel<<<grid_for(items, threads), threads, 0, stream()>>>(
      geo, rd, n, pos0, dp, first, sp, d_k.as<float>(), d_v.as<float>(), d_tab.as<float>(), tab_stride);
  HWKV_CU_LAUNCH(write_tokens_kernel);
  return sync(fn);
}

}  // namespace

hwkv_status store_copy_rows(const char* fn, hwkv_store* s, const StoreBlock& dst, int32_t pos0, int32_t n,
                            const RopeHost* rope, const std::vector<float>& tab, const std::vector<float*>& src) {
  if (n <= 0) return HWKV_OK;
  return launch_write(fn, s, dst, pos0, n, rope, tab, 0, &src, nullptr, nullptr);
}

// A KV codec (uniform, HIGGS, AQUA) lives in codec.cu; the store itself is created as without one.
hwkv_status store_create_codec(const hwkv_store_params* p, const hwkv_store_codec* codec, hwkv_store_t** out) {
  const char* fn = "store_create_codec";
  if (!codec || codec->type == HWKV_KV_EXACT) return store_create(p, out);
  return guarded(fn, [&]() -> hwkv_status {
    if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    hwkv_store_t* s = nullptr;
    HWKV_TRY(store_create(p, &s));
    const hwkv_status st = codec_create(fn, s, *codec);
    if (st != HWKV_OK) {
      store_free(s);
      return st;
    }
    *out = s;
    return HWKV_OK;
  });
}

hwkv_status store_create(const hwkv_store_params* p, hwkv_store_t** out) {
  const char* fn = "store_create";
  return guarded(fn, [&]() -> hwkv_status {
    if (!p) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
    if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = nullptr;
    if (p->n_layer < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_layer must be >= 1, got %d", fn, p->n_layer);
    if (p->n_kv_head < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_kv_head must be >= 1, got %d", fn, p->n_kv_head);
    if (p->head_dim < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: head_dim must be >= 1, got %d", fn, p->head_dim);
    if (p->head_dim_v < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: head_dim_v must be >= 1, got %d", fn, p->head_dim_v);
    if (p->page_tokens < 1) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: page_tokens must be >= 1, got %d", fn, p->page_tokens);
    if (p->dtype != HWKV_F32 && p->dtype != HWKV_F16)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: dtype must be 0 (F32) or 1 (F16), got %d", fn, p->dtype);
    if (p->max_bytes < 0)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: max_bytes must be >= 0 (0 = unlimited), got %lld", fn,
                  (long long)p->max_bytes);
    const double es = p->dtype == HWKV_F16 ? 2.0 : 4.0;
    const double bytes = double(p->n_layer) * p->n_kv_head * p->page_tokens * (double(p->head_dim) + p->head_dim_v) * es;
    if (bytes > double(int64_t(1) << 40))
      return fail(HWKV_ERR_INVALID_ARGUMENT,
                  "%s: one page would take %.0f bytes (n_layer*n_kv_head*page_tokens*"
                  "(head_dim+head_dim_v)*elem_size); limit is 2^40",
                  fn, bytes);
    HWKV_TRY(use_device(fn));
    hwkv_store* s = new (std::nothrow) hwkv_store();
    if (!s) return fail(HWKV_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    s->p = *p;
    s->geo.n_layer = p->n_layer;
    s->geo.n_kv = p->n_kv_head;
    s->geo.T = p->page_tokens;
    s->geo.D = p->head_dim;
    s->geo.Dv = p->head_dim_v;
    s->geo.f16 = p->dtype == HWKV_F16 ? 1 : 0;
    s->geo.k_floats = static_cast<int64_t>(p->n_layer) * p->n_kv_head * p->page_tokens * p->head_dim;
    const int64_t v_floats = static_cast<int64_t>(p->n_layer) * p->n_kv_head * p->page_tokens * p->head_dim_v;
    s->page_bytes = (s->geo.k_floats + v_floats) * (p->dtype == HWKV_F16 ? 2 : 4);
    {
      std::lock_guard<std::mutex> lock(registry_mutex());
      registry().insert(s);
    }
    *out = s;
    return HWKV_OK;
  });
}

void store_free(hwkv_store_t* s) {
  if (!s) return;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    registry().erase(s);
  }
  if (use_device("store_free") == HWKV_OK) {
    (void)cudaStreamSynchronize(stream());
    for (float* p : s->page_ptr) (void)cudaFree(p);  // nothing to report: store_free returns void
  }
  delete s;
}

hwkv_status store_stats(hwkv_store_t* s, hwkv_store_stats* out) {
  const char* fn = "store_stats";
  if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
  if (!out) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  const int32_t total = static_cast<int32_t>(s->page_ptr.size());
  out->bytes_reserved = static_cast<int64_t>(total) * s->page_bytes;
  out->bytes_in_use = static_cast<int64_t>(s->pages_in_use) * s->page_bytes;
  out->pages_in_use = s->pages_in_use;
  out->pages_free = static_cast<int32_t>(s->free_pages.size());
  out->blocks_live = s->blocks_live;
  out->reserved = 0;
  return HWKV_OK;
}

hwkv_status block_create(hwkv_store_t* s, int32_t* out_block) {
  const char* fn = "block_create";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    if (!out_block) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out_block is NULL", fn);
    int32_t id = -1;
    for (size_t i = 0; i < s->blocks.size(); ++i)
      if (!s->blocks[i].live) {
        id = static_cast<int32_t>(i);
        break;
      }
    if (id < 0) {
      s->blocks.emplace_back();
      id = static_cast<int32_t>(s->blocks.size() - 1);
    }
    StoreBlock& b = s->blocks[id];
    b.live = true;
    b.no_compress = false;
    b.len = 0;
    b.pages.clear();
    b.comp.clear();
    ++s->blocks_live;
    *out_block = id;
    return HWKV_OK;
  });
}

hwkv_status block_free(hwkv_store_t* s, int32_t block) {
  const char* fn = "block_free";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    HWKV_TRY(check_block(fn, s, block));
    StoreBlock& b = s->blocks[block];
    s->free_pages.reserve(s->free_pages.size() + b.pages.size());
    release_pages(s, b.pages.data(), b.pages.size());
    b.pages.clear();
    b.pages.shrink_to_fit();
    std::vector<CompRef>().swap(b.comp);
    b.no_compress = false;
    b.len = 0;
    b.live = false;
    --s->blocks_live;
    return HWKV_OK;
  });
}

hwkv_status block_len(hwkv_store_t* s, int32_t block, int32_t* out_len) {
  const char* fn = "block_len";
  if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
  if (!out_len) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: out_len is NULL", fn);
  HWKV_TRY(check_block(fn, s, block));
  *out_len = s->blocks[block].len;
  return HWKV_OK;
}

hwkv_status block_append(hwkv_store_t* s, int32_t block, int32_t n_tok, const float* k, const float* v,
                         const hwkv_rope_params* rope) {
  const char* fn = "block_append";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    RopeHost r;
    if (rope) HWKV_TRY(store_rope(fn, s, rope, &r));
    HWKV_TRY(check_block(fn, s, block));
    if (n_tok < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_tok must be >= 0, got %d", fn, n_tok);
    if (n_tok == 0) return HWKV_OK;
    if (!k) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: k is NULL", fn);
    if (!v) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: v is NULL", fn);
    StoreBlock& b = s->blocks[block];
    if (static_cast<int64_t>(b.len) + n_tok > INT32_MAX)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would hold %lld tokens (limit %d)", fn, block,
                  (long long)b.len + n_tok, INT32_MAX);
    HWKV_TRY(use_device(fn));
    const int32_t len0 = b.len, len1 = len0 + n_tok;
    const int32_t need = static_cast<int32_t>(ceil_div(len1, s->p.page_tokens)) - static_cast<int32_t>(b.pages.size());
    std::vector<int32_t> got;
    HWKV_TRY(acquire_pages(fn, s, need, got));
    const size_t old_pages = b.pages.size();
    b.pages.insert(b.pages.end(), got.begin(), got.end());
    std::vector<float> tab;
    if (rope) {
      tab.reserve(static_cast<size_t>(n_tok) * 2 * r.half);
      for (int32_t t = 0; t < n_tok; ++t) rope_table_row(r, static_cast<double>(len0) + t, tab);
    }
    s->pages_in_use += static_cast<int32_t>(got.size());
    hwkv_status st = launch_write(fn, s, b, len0, n_tok, rope ? &r : nullptr, tab, rope ? 2 * r.half : 0, nullptr, k, v);
    if (st != HWKV_OK) {
      b.pages.resize(old_pages);
      release_pages(s, got.data(), got.size());
      return st;
    }
    b.len = len1;
    codec_compact(s, block);  // KV codec: chunks that left the exact window (no-op without a codec)
    return HWKV_OK;
  });
}

hwkv_status block_extend(const char* fn, hwkv_store* s, int32_t block, int32_t n) {
  HWKV_TRY(check_block(fn, s, block));
  if (n < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: cannot grow block %d by %d tokens", fn, block, n);
  StoreBlock& b = s->blocks[block];
  if (static_cast<int64_t>(b.len) + n > INT32_MAX)
    return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would hold %lld tokens (limit %d)", fn, block,
                (long long)b.len + n, INT32_MAX);
  if (n == 0) return HWKV_OK;
  const int32_t len1 = b.len + n;
  const int32_t need = static_cast<int32_t>(ceil_div(len1, s->p.page_tokens)) - static_cast<int32_t>(b.pages.size());
  std::vector<int32_t> got;
  HWKV_TRY(acquire_pages(fn, s, need, got));
  b.pages.insert(b.pages.end(), got.begin(), got.end());
  s->pages_in_use += static_cast<int32_t>(got.size());
  b.len = len1;
  return HWKV_OK;
}

hwkv_status block_truncate(hwkv_store_t* s, int32_t block, int32_t new_len) {
  const char* fn = "block_truncate";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    HWKV_TRY(check_block(fn, s, block));
    StoreBlock& b = s->blocks[block];
    if (new_len < 0 || new_len > b.len)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: new_len %d is out of range 0..%d (length of block %d)", fn, new_len,
                  b.len, block);
    const size_t keep = static_cast<size_t>(ceil_div(new_len, s->p.page_tokens));
    if (new_len % s->p.page_tokens != 0 && b.pages[keep - 1] < 0) {
      // A partially kept compressed page becomes an exact page again (its decoded values).
      HWKV_TRY(use_device(fn));
      HWKV_TRY(codec_truncate_page(fn, s, b, keep - 1));
    }
    if (keep < b.pages.size()) {
      s->free_pages.reserve(s->free_pages.size() + (b.pages.size() - keep));
      release_pages(s, b.pages.data() + keep, b.pages.size() - keep);
      b.pages.resize(keep);
      if (b.comp.size() > keep) b.comp.resize(keep);
    }
    b.len = new_len;
    return HWKV_OK;
  });
}

hwkv_status block_merge(hwkv_store_t* s, int32_t dst, int32_t src, const hwkv_rope_params* rope) {
  const char* fn = "block_merge";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    RopeHost r;
    if (rope) HWKV_TRY(store_rope(fn, s, rope, &r));
    HWKV_TRY(check_block(fn, s, dst));
    HWKV_TRY(check_block(fn, s, src));
    if (dst == src) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: src and dst are the same block (%d)", fn, dst);
    StoreBlock& d = s->blocks[dst];
    const StoreBlock& sb = s->blocks[src];
    const int32_t n = sb.len;
    if (n == 0) return HWKV_OK;
    if (static_cast<int64_t>(d.len) + n > INT32_MAX)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would hold %lld tokens (limit %d)", fn, dst,
                  (long long)d.len + n, INT32_MAX);
    HWKV_TRY(use_device(fn));
    {
      bool done = false;  // AQUA at a page boundary: src's chunks move as codes
      HWKV_TRY(codec_merge_aqua(fn, s, dst, src, rope ? &r : nullptr, &done));
      if (done) return HWKV_OK;
    }
    // Source rows: src's pages, compressed ones decoded (every layer) into temporaries.
    CodecTemp tmp;
    std::vector<float*> sp;
    HWKV_TRY(codec_page_ptrs(fn, s, sb, -1, tmp, sp));
    const int32_t len0 = d.len, len1 = len0 + n;
    const int32_t need = static_cast<int32_t>(ceil_div(len1, s->p.page_tokens)) - static_cast<int32_t>(d.pages.size());
    std::vector<int32_t> got;
    HWKV_TRY(acquire_pages(fn, s, need, got));
    // `d` and `sb` are elements of s->blocks, which acquire_pages does not resize.
    const size_t old_pages = d.pages.size();
    d.pages.insert(d.pages.end(), got.begin(), got.end());
    if (!d.comp.empty()) d.comp.resize(d.pages.size());
    s->pages_in_use += static_cast<int32_t>(got.size());
    std::vector<float> tab;
    if (rope) rope_table_row(r, static_cast<double>(len0), tab);
    hwkv_status st = launch_write(fn, s, d, len0, n, rope ? &r : nullptr, tab, 0, &sp, nullptr, nullptr);
    if (st != HWKV_OK) {
      d.pages.resize(old_pages);
      if (!d.comp.empty()) d.comp.resize(old_pages);
      release_pages(s, got.data(), got.size());
      return st;
    }
    d.len = len1;
    return HWKV_OK;
  });
}

namespace {

// Gathers segments of one layer into host k/v (either may be NULL).
struct Segment {
  int32_t block;
  int32_t src_start;
  int32_t n;
  int32_t tab_row;  // -1 = no rotation
};

hwkv_status gather(const char* fn, hwkv_store* s, int32_t layer, const std::vector<Segment>& segs, int64_t total,
                   const RopeHost* rope, const std::vector<float>& tab, float* k, float* v) {
  if (total == 0 || (!k && !v)) return HWKV_OK;
  HWKV_TRY(use_device(fn));
  const PageGeo& geo = s->geo;
  std::vector<int64_t> seg_out;
  std::vector<int32_t> seg_src, seg_page, seg_tab;
  std::vector<float*> ptrs, bp;
  CodecTemp tmp;  // decoded compressed pages (KV codec)
  int64_t o = 0;
  for (const Segment& sg : segs) {
    if (sg.n == 0) continue;
    const StoreBlock& b = s->blocks[sg.block];
    seg_out.push_back(o);
    seg_src.push_back(sg.src_start);
    seg_page.push_back(static_cast<int32_t>(ptrs.size()));
    seg_tab.push_back(sg.tab_row);
    if (b.comp.empty()) {
      page_list(s, b, 0, b.pages.size(), ptrs);
    } else {
      HWKV_TRY(codec_page_ptrs(fn, s, b, layer, tmp, bp));
      ptrs.insert(ptrs.end(), bp.begin(), bp.end());
    }
    o += sg.n;
  }
  const int32_t n_seg = static_cast<int32_t>(seg_out.size());
  Scratch d_out, d_src, d_page, d_tab_idx, d_ptrs, d_tab, d_k, d_v;
  HWKV_TRY(d_out.alloc(fn, seg_out.size() * sizeof(int64_t)));
  HWKV_TRY(d_src.alloc(fn, seg_src.size() * sizeof(int32_t)));
  HWKV_TRY(d_page.alloc(fn, seg_page.size() * sizeof(int32_t)));
  HWKV_TRY(d_tab_idx.alloc(fn, seg_tab.size() * sizeof(int32_t)));
  HWKV_TRY(d_ptrs.alloc(fn, ptrs.size() * sizeof(float*)));
  HWKV_TRY(d_tab.alloc(fn, tab.size() * sizeof(float)));
  const size_t k_bytes = static_cast<size_t>(total) * geo.n_kv * geo.D * sizeof(float);
  const size_t v_bytes = static_cast<size_t>(total) * geo.n_kv * geo.Dv * sizeof(float);
  if (k) HWKV_TRY(d_k.alloc(fn, k_bytes));
  if (v) HWKV_TRY(d_v.alloc(fn, v_bytes));
  HWKV_TRY(h2d(fn, d_out.ptr(), seg_out.data(), seg_out.size() * sizeof(int64_t)));
  HWKV_TRY(h2d(fn, d_src.ptr(), seg_src.data(), seg_src.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, d_page.ptr(), seg_page.data(), seg_page.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, d_tab_idx.ptr(), seg_tab.data(), seg_tab.size() * sizeof(int32_t)));
  HWKV_TRY(h2d(fn, d_ptrs.ptr(), ptrs.data(), ptrs.size() * sizeof(float*)));
  HWKV_TRY(h2d(fn, d_tab.ptr(), tab.data(), tab.size() * sizeof(float)));
  const RopeDev rd = rope_dev(rope, geo.D);
  const int threads = 256;
  if (k) {
    gather_kernel<<<grid_for(total * geo.n_kv * rope_units(rd), threads), threads, 0, stream()>>>(
        geo, rd, 0, layer, total, n_seg, d_out.as<int64_t>(), d_src.as<int32_t>(), d_page.as<int32_t>(),
        d_tab_idx.as<int32_t>(), d_ptrs.as<const float*>(), d_tab.as<float>(), d_k.as<float>());
    HWKV_CU_LAUNCH(gather_kernel);
  }
  if (v) {
    gather_kernel<<<grid_for(total * geo.n_kv * geo.Dv, threads), threads, 0, stream()>>>(
        geo, rd, 1, layer, total, n_seg, d_out.as<int64_t>(), d_src.as<int32_t>(), d_page.as<int32_t>(),
        d_tab_idx.as<int32_t>(), d_ptrs.as<const float*>(), d_tab.as<float>(), d_v.as<float>());
    HWKV_CU_LAUNCH(gather_kernel);
  }
  if (k) HWKV_TRY(d2h(fn, k, d_k.ptr(), k_bytes));
  if (v) HWKV_TRY(d2h(fn, v, d_v.ptr(), v_bytes));
  return sync(fn);
}

}  // namespace

hwkv_status block_read(hwkv_store_t* s, int32_t block, int32_t layer, int32_t start, int32_t n_tok, float* k,
                       float* v) {
  const char* fn = "block_read";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    HWKV_TRY(check_block(fn, s, block));
    HWKV_TRY(check_layer(fn, s, layer));
    const StoreBlock& b = s->blocks[block];
    if (start < 0 || n_tok < 0 || static_cast<int64_t>(start) + n_tok > b.len)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: tokens [%d, %lld) are out of range (block %d holds %d tokens)", fn,
                  start, (long long)start + n_tok, block, b.len);
    std::vector<Segment> segs{{block, start, n_tok, -1}};
    std::vector<float> tab;
    return gather(fn, s, layer, segs, n_tok, nullptr, tab, k, v);
  });
}

hwkv_status view_read(hwkv_store_t* s, const int32_t* blocks, int32_t n_blocks, int32_t layer,
                      const hwkv_rope_params* rope, float* k, float* v, int64_t total) {
  const char* fn = "view_read";
  return guarded(fn, [&]() -> hwkv_status {
    if (!s) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
    RopeHost r;
    if (rope) HWKV_TRY(store_rope(fn, s, rope, &r));
    if (n_blocks < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: n_blocks must be >= 0, got %d", fn, n_blocks);
    if (n_blocks > 0 && !blocks) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: blocks is NULL", fn);
    HWKV_TRY(check_layer(fn, s, layer));
    std::vector<Segment> segs;
    segs.reserve(n_blocks);
    std::vector<float> tab;
    int64_t o = 0;
    std::vector<int32_t> seen(s->blocks.size(), -1);
    for (int32_t j = 0; j < n_blocks; ++j) {
      const int32_t b = blocks[j];
      if (!is_live(s, b))
        return fail(HWKV_ERR_OUT_OF_RANGE, "%s: view entry %d: block %d is not a live block (store has %d live blocks)",
                    fn, j, b, s->blocks_live);
      if (seen[b] >= 0)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: block %d appears twice in the view (entries %d and %d)", fn, b,
                    seen[b], j);
      seen[b] = j;
    }
    for (int32_t j = 0; j < n_blocks; ++j) {
      const int32_t len = s->blocks[blocks[j]].len;
      int32_t row = -1;
      if (rope && len > 0 && o != 0) {  // offset 0: keys as stored (the CPU core does not rotate by 0 either)
        row = static_cast<int32_t>(tab.size() / (2 * static_cast<size_t>(r.half)));
        rope_table_row(r, static_cast<double>(o), tab);
      }
      segs.push_back({blocks[j], 0, len, row});
      o += len;
    }
    if (total != o)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: total is %lld but the view holds %lld tokens", fn, (long long)total,
                  (long long)o);
    return gather(fn, s, layer, segs, total, rope ? &r : nullptr, tab, k, v);
  });
}

}  // namespace hwkv_cuda
