// parity.cpp — CUDA backend vs CPU core, op by op, on fresh random inputs.
//
// Links the CPU core (hwkv_cpu_api) and dlopens prebuilds/cuda/libhwkv_cuda.so (hwkv_cuda_api). Every op of the
// table runs on both with the same inputs:
//   - bit-exact (vs the CPU's portable scalar kernels): rope_inv_freq, pack_bits/unpack_bits, fwht, rope_apply,
//     store contents (block_read / view_read after append / merge / truncate, with and without RoPE), stats;
//   - within 1e-5 relative (max |a-b| / max |ref|) vs the CPU's best kernels (AVX2+FMA here): rope_apply, fwht,
//     view_read, attention out and lse (lse: max |a-b| / max(1, max |ref|)); attention is also checked vs scalar.
//   - error paths: the same status (and, reported separately, the same message) on both.
// Prints one line per op (max relative error, checks, failures) and a summary; exits 1 on any failure.
//
//   cuda/test/run-parity.sh        (builds the CPU core + this program, then runs it)
//   parity [path/to/libhwkv_cuda.so] [--seed N] [--quick]
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "hwkv.h"

namespace {

const hwkv_api* C = nullptr;  // CPU core
const hwkv_api* G = nullptr;  // CUDA
std::mt19937_64 rng(12345);
bool g_quick = false;

// ------------------------------------------------------------------------------------------------
// bookkeeping
// ------------------------------------------------------------------------------------------------
struct OpStat {
  double max_err = 0;
  double tol = 0;
  long checks = 0;
  long fails = 0;
  bool exact = false;
};
std::map<std::string, OpStat> g_ops;
std::vector<std::string> g_order;
int g_failures = 0;
int g_msg_mismatch = 0;

void fail_msg(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stdout, "  FAIL: ");
  std::vfprintf(stdout, fmt, ap);
  std::fprintf(stdout, "\n");
  va_end(ap);
}

OpStat& op(const std::string& name, double tol, bool exact) {
  auto it = g_ops.find(name);
  if (it == g_ops.end()) {
    g_order.push_back(name);
    OpStat s;
    s.tol = tol;
    s.exact = exact;
    it = g_ops.emplace(name, s).first;
  }
  return it->second;
}

// Records one comparison; err is a max relative error (exact ops: also the number of differing elements in `bad`).
void record(const std::string& name, double err, double tol, bool exact, long bad, const std::string& what) {
  OpStat& s = op(name, tol, exact);
  s.checks++;
  if (std::isnan(err) || err > s.max_err) s.max_err = std::isnan(err) ? INFINITY : std::max(s.max_err, err);
  const bool ok = exact ? bad == 0 : (err <= tol);
  if (!ok) {
    s.fails++;
    g_failures++;
    if (s.fails <= 5) fail_msg("%s [%s]: max rel err %.3g, %ld elements differ", name.c_str(), what.c_str(), err, bad);
  }
}

void check(const std::string& name, bool ok, const char* fmt, ...) {
  OpStat& s = op(name, 0, true);
  s.checks++;
  if (!ok) {
    s.fails++;
    g_failures++;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (s.fails <= 8) fail_msg("%s: %s", name.c_str(), buf);
  }
}

// Normwise relative error max|a-b| / max|ref|; non-finite values must match exactly.
double rel_err(const float* a, const float* ref, size_t n, double floor_den = 1e-30) {
  double num = 0, den = floor_den;
  for (size_t i = 0; i < n; ++i) {
    const float x = a[i], y = ref[i];
    if (!std::isfinite(x) || !std::isfinite(y)) {
      if (!(x == y)) return INFINITY;  // NaN, or different infinities
      continue;
    }
    num = std::max(num, std::fabs(double(x) - double(y)));
    den = std::max(den, std::fabs(double(y)));
  }
  return num / den;
}

template <class T>
long count_diff(const T* a, const T* b, size_t n) {
  long d = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(T)) != 0) ++d;
  return d;
}

void rand_normal(std::vector<float>& v) {
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float& x : v) x = nd(rng);
}

int rand_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

const char* st_name(hwkv_status s) {
  switch (s) {
    case HWKV_OK: return "OK";
    case HWKV_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case HWKV_ERR_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case HWKV_ERR_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case HWKV_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case HWKV_ERR_DEVICE: return "DEVICE";
    case HWKV_ERR_INTERNAL: return "INTERNAL";
  }
  return "?";
}

// Both statuses must be OK (else a failure naming the messages).
bool both_ok(const std::string& name, hwkv_status a, hwkv_status b) {
  if (a == HWKV_OK && b == HWKV_OK) return true;
  check(name + " status", false, "cpu %s (%s) vs cuda %s (%s)", st_name(a), a ? C->last_error() : "", st_name(b),
        b ? G->last_error() : "");
  return false;
}

// Error path: statuses must be equal to `want` on both; messages compared (mismatch reported, not fatal).
void expect_err(const char* what, hwkv_status want, hwkv_status c, const std::string& cmsg, hwkv_status g,
                const std::string& gmsg) {
  check("error paths", c == want && g == want, "%s: want %s, cpu %s (%s), cuda %s (%s)", what, st_name(want), st_name(c),
        cmsg.c_str(), st_name(g), gmsg.c_str());
  if (c == g && cmsg != gmsg) {
    g_msg_mismatch++;
    std::printf("  note: message differs for %s:\n    cpu : %s\n    cuda: %s\n", what, cmsg.c_str(), gmsg.c_str());
  }
}

#define BOTH(call_c, call_g, what, want)                \
  do {                                                  \
    hwkv_status sc_ = (call_c);                         \
    std::string mc_ = sc_ ? C->last_error() : "";       \
    hwkv_status sg_ = (call_g);                         \
    std::string mg_ = sg_ ? G->last_error() : "";       \
    expect_err(what, want, sc_, mc_, sg_, mg_);         \
  } while (0)

// ------------------------------------------------------------------------------------------------
// RoPE configurations
// ------------------------------------------------------------------------------------------------
hwkv_rope_params make_rope(int hd, int rot, int style, int scaling, int variant = 0) {
  hwkv_rope_params p{};
  p.head_dim = hd;
  p.rotary_dim = rot;
  p.style = style;
  p.scaling = scaling;
  p.theta = variant ? 500000.0 : 10000.0;
  p.factor = 1;
  p.beta_fast = 32;
  p.beta_slow = 1;
  p.yarn_truncate = 1;
  switch (scaling) {
    case HWKV_ROPE_SCALING_LINEAR: p.factor = 2.5; break;
    case HWKV_ROPE_SCALING_LLAMA3:
      p.factor = 8;
      p.low_freq_factor = 1;
      p.high_freq_factor = 4;
      p.original_max_position = 8192;
      break;
    case HWKV_ROPE_SCALING_YARN:
      p.factor = 4;
      p.original_max_position = 4096;
      p.yarn_truncate = variant ? 0 : 1;
      break;
    default: break;
  }
  return p;
}

struct RopeCase {
  int hd, rot;
};
const RopeCase kRopeShapes[] = {{64, 64}, {128, 128}, {80, 80}, {80, 32}, {128, 64}, {6, 4}};

std::vector<hwkv_rope_params> all_ropes() {
  std::vector<hwkv_rope_params> v;
  for (const RopeCase& rc : kRopeShapes)
    for (int style = 0; style < 2; ++style)
      for (int sc = 0; sc < 4; ++sc)
        for (int var = 0; var < 2; ++var) v.push_back(make_rope(rc.hd, rc.rot, style, sc, var));
  return v;
}

std::string rope_desc(const hwkv_rope_params& p) {
  static const char* sc[] = {"none", "linear", "llama3", "yarn"};
  char b[128];
  std::snprintf(b, sizeof b, "hd%d rot%d %s %s%s", p.head_dim, p.rotary_dim, p.style ? "normal" : "neox",
                sc[p.scaling & 3], p.theta > 1e5 ? " theta5e5" : "");
  return b;
}

// ------------------------------------------------------------------------------------------------
// stateless ops
// ------------------------------------------------------------------------------------------------
void test_rope() {
  for (const hwkv_rope_params& p : all_ropes()) {
    const std::string d = rope_desc(p);
    std::vector<float> fc(p.rotary_dim / 2), fg(p.rotary_dim / 2, -1.f);
    float ac = 0, ag = -1;
    if (!both_ok("rope_inv_freq", C->rope_inv_freq(&p, fc.data(), &ac), G->rope_inv_freq(&p, fg.data(), &ag))) continue;
    record("rope_inv_freq", rel_err(fg.data(), fc.data(), fc.size()), 0, true,
           count_diff(fg.data(), fc.data(), fc.size()) + (ac != ag), d);

    const int n_tok = g_quick ? 9 : 37, n_head = 3;
    std::vector<float> x(size_t(n_tok) * n_head * p.head_dim);
    rand_normal(x);
    std::vector<int32_t> pos(n_tok);
    for (int t = 0; t < n_tok; ++t) {
      const int kind = rand_int(0, 4);
      pos[t] = kind == 0 ? rand_int(-5000, -1) : kind == 1 ? rand_int(0, 64) : kind == 2 ? rand_int(0, 200000)
                                                                                     : (t ? pos[t - 1] : 7);
    }
    std::vector<float> xs = x, xb = x, xg = x;
    hwkv_cpu_set_simd(1);
    hwkv_status s1 = C->rope_apply(&p, xs.data(), n_tok, n_head, pos.data());
    hwkv_cpu_set_simd(0);
    hwkv_status s2 = C->rope_apply(&p, xb.data(), n_tok, n_head, pos.data());
    hwkv_status s3 = G->rope_apply(&p, xg.data(), n_tok, n_head, pos.data());
    if (!both_ok("rope_apply", s1 == HWKV_OK ? s2 : s1, s3)) continue;
    record("rope_apply vs cpu scalar (bit-exact)", rel_err(xg.data(), xs.data(), xs.size()), 0, true,
           count_diff(xg.data(), xs.data(), xs.size()), d);
    record("rope_apply vs cpu best", rel_err(xg.data(), xb.data(), xb.size()), 1e-5, false, 0, d);
  }
}

void test_pack() {
  const int64_t sizes[] = {0, 1, 2, 31, 32, 33, 63, 64, 65, 1000, 4097, 100003};
  for (int bits = 1; bits <= 16; ++bits) {
    for (int64_t n : sizes) {
      if (g_quick && n > 5000) continue;
      std::vector<uint16_t> codes(size_t(n) + 1);
      std::uniform_int_distribution<uint32_t> ud(0, (1u << bits) - 1);
      for (auto& c : codes) c = static_cast<uint16_t>(ud(rng));
      const int64_t nw = (n * bits + 31) / 32;
      std::vector<uint32_t> wc(size_t(nw) + 2, 0xdeadbeefu), wg(size_t(nw) + 2, 0xdeadbeefu);
      char d[64];
      std::snprintf(d, sizeof d, "bits %d n %lld", bits, (long long)n);
      if (!both_ok("pack_bits", C->pack_bits(codes.data(), n, bits, wc.data(), nw + 2),
                   G->pack_bits(codes.data(), n, bits, wg.data(), nw + 2)))
        continue;
      record("pack_bits (bit-exact)", 0, 0, true, count_diff(wg.data(), wc.data(), wc.size()), d);
      std::vector<uint16_t> cc(size_t(n) + 1, 0xabcd), cg(size_t(n) + 1, 0xabcd);
      if (!both_ok("unpack_bits", C->unpack_bits(wc.data(), nw, bits, cc.data(), n),
                   G->unpack_bits(wc.data(), nw, bits, cg.data(), n)))
        continue;
      record("unpack_bits (bit-exact)", 0, 0, true,
             count_diff(cg.data(), cc.data(), cc.size()) + count_diff(cg.data(), codes.data(), size_t(n)), d);
    }
  }
}

void test_fwht() {
  struct F {
    int n;
    int rows;
  };
  const F cases[] = {{1, 3}, {2, 5}, {8, 7}, {64, 33}, {1024, 9}, {4096, 4}, {8192, 3}, {65536, 2}, {1 << 20, 2}};
  for (const F& f : cases) {
    if (g_quick && f.n > 65536) continue;
    for (int sc = 0; sc < 2; ++sc) {
      const float scale = sc ? 1.0f / std::sqrt(float(f.n)) : 1.0f;
      std::vector<float> x(size_t(f.n) * f.rows);
      rand_normal(x);
      std::vector<float> xs = x, xb = x, xg = x;
      hwkv_cpu_set_simd(1);
      hwkv_status s1 = C->fwht(xs.data(), f.rows, f.n, scale);
      hwkv_cpu_set_simd(0);
      hwkv_status s2 = C->fwht(xb.data(), f.rows, f.n, scale);
      hwkv_status s3 = G->fwht(xg.data(), f.rows, f.n, scale);
      if (!both_ok("fwht", s1 == HWKV_OK ? s2 : s1, s3)) continue;
      char d[64];
      std::snprintf(d, sizeof d, "n %d rows %d scale %g", f.n, f.rows, scale);
      record("fwht vs cpu scalar (bit-exact)", rel_err(xg.data(), xs.data(), xs.size()), 0, true,
             count_diff(xg.data(), xs.data(), xs.size()), d);
      record("fwht vs cpu best", rel_err(xg.data(), xb.data(), xb.size()), 1e-5, false, 0, d);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// store + attention
// ------------------------------------------------------------------------------------------------
struct Pair {
  hwkv_store_params p{};
  hwkv_store_t* c = nullptr;
  hwkv_store_t* g = nullptr;
  std::string desc;

  bool create(const hwkv_store_params& sp, const std::string& d) {
    p = sp;
    desc = d;
    return both_ok("store_create", C->store_create(&p, &c), G->store_create(&p, &g));
  }
  ~Pair() {
    C->store_free(c);
    G->store_free(g);
  }
  int32_t create_block() {
    int32_t a = -1, b = -2;
    if (!both_ok("block_create", C->block_create(c, &a), G->block_create(g, &b))) return -1;
    check("block ids", a == b, "%s: cpu id %d vs cuda id %d", desc.c_str(), a, b);
    return a;
  }
  int32_t len(int32_t blk) {
    int32_t a = -1, b = -2;
    both_ok("block_len", C->block_len(c, blk, &a), G->block_len(g, blk, &b));
    check("block_len", a == b, "%s: block %d cpu %d vs cuda %d", desc.c_str(), blk, a, b);
    return a;
  }
  void append(int32_t blk, int32_t n, const hwkv_rope_params* rope) {
    std::vector<float> k(size_t(p.n_layer) * n * p.n_kv_head * p.head_dim),
        v(size_t(p.n_layer) * n * p.n_kv_head * p.head_dim_v);
    rand_normal(k);
    rand_normal(v);
    both_ok("block_append", C->block_append(c, blk, n, k.data(), v.data(), rope),
            G->block_append(g, blk, n, k.data(), v.data(), rope));
  }
  void stats() {
    hwkv_store_stats a{}, b{};
    if (!both_ok("store_stats", C->store_stats(c, &a), G->store_stats(g, &b))) return;
    check("store_stats", std::memcmp(&a, &b, sizeof a) == 0,
          "%s: cpu {%lld %lld %d %d %d} vs cuda {%lld %lld %d %d %d}", desc.c_str(), (long long)a.bytes_reserved,
          (long long)a.bytes_in_use, a.pages_in_use, a.pages_free, a.blocks_live, (long long)b.bytes_reserved,
          (long long)b.bytes_in_use, b.pages_in_use, b.pages_free, b.blocks_live);
  }
  // Full and partial block reads of every layer, bit-exact.
  void read_all(const std::vector<int32_t>& blocks) {
    for (int32_t blk : blocks) {
      const int32_t n = len(blk);
      for (int32_t L = 0; L < p.n_layer; ++L) {
        for (int part = 0; part < 2; ++part) {
          int32_t start = 0, cnt = n;
          if (part) {
            if (n < 2) continue;
            start = rand_int(0, n - 1);
            cnt = rand_int(0, n - start);
          }
          std::vector<float> kc(size_t(cnt) * p.n_kv_head * p.head_dim + 1, 7.f), kg = kc;
          std::vector<float> vc(size_t(cnt) * p.n_kv_head * p.head_dim_v + 1, 7.f), vg = vc;
          const bool only_k = part && (rand_int(0, 2) == 0);
          if (!both_ok("block_read",
                       C->block_read(c, blk, L, start, cnt, kc.data(), only_k ? nullptr : vc.data()),
                       G->block_read(g, blk, L, start, cnt, kg.data(), only_k ? nullptr : vg.data())))
            continue;
          char d[160];
          std::snprintf(d, sizeof d, "%s block %d layer %d [%d,+%d)", desc.c_str(), blk, L, start, cnt);
          record("block_read (bit-exact)", 0, 0, true, count_diff(kg.data(), kc.data(), kc.size()) +
                                                         count_diff(vg.data(), vc.data(), vc.size()), d);
        }
      }
    }
  }
  void view(const std::vector<int32_t>& blocks, const hwkv_rope_params* rope, bool best_too) {
    int64_t total = 0;
    for (int32_t b : blocks) total += len(b);
    for (int32_t L = 0; L < p.n_layer; ++L) {
      std::vector<float> kc(size_t(total) * p.n_kv_head * p.head_dim + 1, 7.f), kg = kc;
      std::vector<float> vc(size_t(total) * p.n_kv_head * p.head_dim_v + 1, 7.f), vg = vc;
      hwkv_cpu_set_simd(1);
      hwkv_status s1 = C->view_read(c, blocks.data(), int32_t(blocks.size()), L, rope, kc.data(), vc.data(), total);
      hwkv_status s2 = G->view_read(g, blocks.data(), int32_t(blocks.size()), L, rope, kg.data(), vg.data(), total);
      if (!both_ok("view_read", s1, s2)) continue;
      char d[160];
      std::snprintf(d, sizeof d, "%s layer %d %zu blocks %lld tokens%s", desc.c_str(), L, blocks.size(),
                    (long long)total, rope ? " rope" : "");
      record("view_read vs cpu scalar (bit-exact)", rel_err(kg.data(), kc.data(), kc.size()), 0, true,
             count_diff(kg.data(), kc.data(), kc.size()) + count_diff(vg.data(), vc.data(), vc.size()), d);
      if (best_too && rope) {
        std::vector<float> kb(kc.size(), 7.f), vb(vc.size(), 7.f);
        hwkv_cpu_set_simd(0);
        if (C->view_read(c, blocks.data(), int32_t(blocks.size()), L, rope, kb.data(), vb.data(), total) == HWKV_OK)
          record("view_read vs cpu best", rel_err(kg.data(), kb.data(), kb.size()), 1e-5, false, 0, d);
      }
      hwkv_cpu_set_simd(1);
    }
  }
};

struct Batch {
  std::vector<std::vector<int32_t>> views;
  std::vector<std::vector<int32_t>> pos;
};

// Runs attention on both (CPU best and scalar) and compares.
void attn_compare(Pair& pr, const hwkv_rope_params& rope, const Batch& bt, int n_head, const std::string& what) {
  hwkv_attn_batch b{};
  std::vector<int32_t> vip{0}, vb, qip{0}, qpos;
  for (size_t s = 0; s < bt.views.size(); ++s) {
    vb.insert(vb.end(), bt.views[s].begin(), bt.views[s].end());
    vip.push_back(int32_t(vb.size()));
    qpos.insert(qpos.end(), bt.pos[s].begin(), bt.pos[s].end());
    qip.push_back(int32_t(qpos.size()));
  }
  b.n_seq = int32_t(bt.views.size());
  b.view_indptr = vip.data();
  b.view_blocks = vb.data();
  b.q_indptr = qip.data();
  b.q_pos = qpos.data();
  const size_t n_q = qpos.size();
  const hwkv_store_params& p = pr.p;
  std::vector<float> q(n_q * n_head * p.head_dim);
  rand_normal(q);
  const float scale = 1.0f / std::sqrt(float(p.head_dim));
  for (int32_t L = 0; L < p.n_layer; ++L) {
    const size_t no = n_q * n_head * p.head_dim_v, nl = n_q * n_head;
    std::vector<float> ob(no, 7.f), os(no, 7.f), og(no, 7.f), lb(nl, 7.f), ls(nl, 7.f), lg(nl, 7.f);
    hwkv_cpu_set_simd(0);
    hwkv_status s1 = C->attn_views(pr.c, L, &rope, &b, q.data(), n_head, scale, ob.data(), lb.data());
    hwkv_cpu_set_simd(1);
    hwkv_status s2 = C->attn_views(pr.c, L, &rope, &b, q.data(), n_head, scale, os.data(), ls.data());
    const bool no_lse = (L == 1);
    hwkv_status s3 = G->attn_views(pr.g, L, &rope, &b, q.data(), n_head, scale, og.data(), no_lse ? nullptr : lg.data());
    if (!both_ok("attn_views", s1 == HWKV_OK ? s2 : s1, s3)) continue;
    char d[200];
    std::snprintf(d, sizeof d, "%s %s layer %d n_q %zu n_head %d", pr.desc.c_str(), what.c_str(), L, n_q, n_head);
    record("attn_views out vs cpu best", rel_err(og.data(), ob.data(), no), 1e-5, false, 0, d);
    record("attn_views out vs cpu scalar", rel_err(og.data(), os.data(), no), 1e-5, false, 0, d);
    if (!no_lse) {
      record("attn_views lse vs cpu best", rel_err(lg.data(), lb.data(), nl, 1.0), 1e-5, false, 0, d);
      record("attn_views lse vs cpu scalar", rel_err(lg.data(), ls.data(), nl, 1.0), 1e-5, false, 0, d);
      long inf_mismatch = 0;
      for (size_t i = 0; i < nl; ++i) inf_mismatch += std::isinf(lg[i]) != std::isinf(ls[i]);
      record("attn_views empty rows (-inf lse, 0 out)", 0, 0, true, inf_mismatch, d);
    }
  }
}

struct StoreCase {
  int n_layer, n_kv, hd, hdv, rot, pt, gqa, style, scaling;
};

// The Hogwild! combined layout with three workers, shared blocks, an empty block, merge then attention.
void test_store_attn(const StoreCase& sc) {
  hwkv_store_params sp{};
  sp.n_layer = sc.n_layer;
  sp.n_kv_head = sc.n_kv;
  sp.head_dim = sc.hd;
  sp.head_dim_v = sc.hdv;
  sp.page_tokens = sc.pt;
  sp.dtype = HWKV_F32;
  char d[160];
  std::snprintf(d, sizeof d, "[L%d kv%d hd%d/%d rot%d pt%d gqa%d %s sc%d]", sc.n_layer, sc.n_kv, sc.hd, sc.hdv, sc.rot,
                sc.pt, sc.gqa, sc.style ? "normal" : "neox", sc.scaling);
  Pair pr;
  if (!pr.create(sp, d)) return;
  const hwkv_rope_params rope = make_rope(sc.hd, sc.rot, sc.style, sc.scaling);
  hwkv_cpu_set_simd(1);  // store contents must match the portable kernels bit for bit

  const int32_t common = pr.create_block(), hdr_o = pr.create_block(), hdr_own = pr.create_block();
  const int32_t wA = pr.create_block(), wB = pr.create_block(), wC = pr.create_block();
  const int32_t scratch = pr.create_block();
  pr.append(common, rand_int(90, 170), &rope);
  pr.append(common, rand_int(1, sc.pt * 2 + 3), &rope);  // crosses page boundaries
  pr.append(common, 0, &rope);
  pr.append(hdr_o, 5, &rope);
  pr.append(hdr_own, 7, nullptr);  // stored as given
  pr.append(wA, 20, &rope);
  pr.append(wC, 33, &rope);
  pr.append(scratch, 3 * sc.pt + 1, &rope);
  pr.stats();
  pr.read_all({common, hdr_o, hdr_own, wA, wB, wC, scratch});
  // truncate / free / id reuse
  both_ok("block_truncate", C->block_truncate(pr.c, scratch, sc.pt), G->block_truncate(pr.g, scratch, sc.pt));
  pr.stats();
  both_ok("block_truncate", C->block_truncate(pr.c, scratch, sc.pt - 1 > 0 ? sc.pt - 1 : 0),
          G->block_truncate(pr.g, scratch, sc.pt - 1 > 0 ? sc.pt - 1 : 0));
  pr.append(scratch, 2, &rope);
  pr.read_all({scratch});
  both_ok("block_free", C->block_free(pr.c, scratch), G->block_free(pr.g, scratch));
  pr.stats();
  const int32_t again = pr.create_block();
  check("block ids", again == scratch, "%s: freed id %d not reused (got %d)", d, scratch, again);
  pr.append(again, 4, &rope);
  pr.stats();

  std::vector<int32_t> v0{common, hdr_o, wB, wC, hdr_own, wA};
  std::vector<int32_t> v1{common, hdr_o, wA, wC, hdr_own, wB};
  std::vector<int32_t> v2{common, hdr_o, wA, wB, hdr_own, wC};
  pr.view(v0, &rope, true);
  pr.view(v1, nullptr, false);
  pr.view(v2, &rope, true);
  pr.view({}, &rope, false);

  auto total = [&](const std::vector<int32_t>& v) {
    int32_t t = 0;
    for (int32_t b : v) t += pr.len(b);
    return t;
  };
  const int n_head = sc.n_kv * sc.gqa;
  Batch bt;
  bt.views = {v0, v1, v2};
  const int32_t t0 = total(v0), t1 = total(v1), t2 = total(v2);
  bt.pos = {{t0 - 3, t0 - 2, t0 - 1}, {t1 - 1, -1, t1 + 5}, {t2 - 2, t2 - 1, 10, 0}};
  attn_compare(pr, rope, bt, n_head, "3 workers");

  // Step boundary: merge wA into common (+len(common) rotation), clear wA, continue.
  both_ok("block_merge", C->block_merge(pr.c, common, wA, &rope), G->block_merge(pr.g, common, wA, &rope));
  both_ok("block_merge", C->block_merge(pr.c, hdr_own, wB, nullptr), G->block_merge(pr.g, hdr_own, wB, nullptr));
  both_ok("block_merge", C->block_merge(pr.c, again, wC, nullptr), G->block_merge(pr.g, again, wC, nullptr));
  both_ok("block_truncate", C->block_truncate(pr.c, wA, 0), G->block_truncate(pr.g, wA, 0));
  pr.append(wA, 3, &rope);
  pr.stats();
  pr.read_all({common, wA, again, hdr_own});
  pr.view(v0, &rope, true);
  bt.pos = {{total(v0) - 1}, {total(v1) - 2, total(v1) - 1}, {total(v2) - 1}};
  attn_compare(pr, rope, bt, n_head, "after merge");

  // Prefill-like: many query rows in the own block (causal), one sequence.
  const int32_t own = pr.create_block();
  const int n_new = g_quick ? 9 : 40;
  pr.append(own, n_new, &rope);
  Batch pf;
  pf.views = {{common, hdr_o, own}};
  std::vector<int32_t> pp;
  const int32_t tt = total(pf.views[0]);
  for (int i = 0; i < n_new; ++i) pp.push_back(tt - n_new + i);
  pf.pos = {pp};
  attn_compare(pr, rope, pf, n_head, "prefill");
}

// A long shared prompt: exercises split-K chunks and the LSE merge across chunks, with 4 decode workers.
void test_long() {
  hwkv_store_params sp{};
  sp.n_layer = 1;
  sp.n_kv_head = 2;
  sp.head_dim = 128;
  sp.head_dim_v = 128;
  sp.page_tokens = 64;
  sp.dtype = HWKV_F32;
  Pair pr;
  if (!pr.create(sp, "[long L1 kv2 hd128 pt64 gqa4]")) return;
  const hwkv_rope_params rope = make_rope(128, 128, HWKV_ROPE_NEOX, HWKV_ROPE_SCALING_LLAMA3, 1);
  hwkv_cpu_set_simd(1);
  const int32_t prompt = pr.create_block();
  const int n_prompt = g_quick ? 700 : 5000;
  for (int done = 0; done < n_prompt;) {
    const int n = std::min(n_prompt - done, 1000);
    pr.append(prompt, n, &rope);
    done += n;
  }
  std::vector<int32_t> w(4);
  for (int i = 0; i < 4; ++i) {
    w[i] = pr.create_block();
    pr.append(w[i], rand_int(1, 50), &rope);
  }
  pr.read_all({prompt});
  Batch bt;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> v{prompt};
    for (int j = 0; j < 4; ++j)
      if (j != i) v.push_back(w[j]);
    v.push_back(w[i]);
    int32_t t = 0;
    for (int32_t b : v) t += pr.len(b);
    bt.views.push_back(v);
    bt.pos.push_back({t - 1});
  }
  attn_compare(pr, rope, bt, 8, "long prompt decode");
  pr.view(bt.views[0], &rope, true);
}

void test_max_bytes() {
  hwkv_store_params sp{};
  sp.n_layer = 2;
  sp.n_kv_head = 1;
  sp.head_dim = 8;
  sp.head_dim_v = 8;
  sp.page_tokens = 4;
  sp.dtype = HWKV_F32;
  const int64_t page_bytes = int64_t(2) * 1 * 4 * (8 + 8) * 4;
  sp.max_bytes = 3 * page_bytes;
  Pair pr;
  if (!pr.create(sp, "[max_bytes 3 pages]")) return;
  hwkv_cpu_set_simd(1);
  const int32_t a = pr.create_block(), b = pr.create_block();
  pr.append(a, 9, nullptr);  // 3 pages
  pr.stats();
  std::vector<float> k(2 * 2 * 8, 1.f), v(2 * 2 * 8, 2.f);
  BOTH(C->block_append(pr.c, b, 2, k.data(), v.data(), nullptr), G->block_append(pr.g, b, 2, k.data(), v.data(), nullptr),
       "block_append over max_bytes", HWKV_ERR_OUT_OF_MEMORY);
  BOTH(C->block_merge(pr.c, b, a, nullptr), G->block_merge(pr.g, b, a, nullptr), "block_merge over max_bytes",
       HWKV_ERR_OUT_OF_MEMORY);
  pr.stats();
  check("all-or-nothing", pr.len(b) == 0, "block b changed after a failed append");
  both_ok("block_truncate", C->block_truncate(pr.c, a, 4), G->block_truncate(pr.g, a, 4));
  pr.append(b, 8, nullptr);  // reuses the 2 free pages
  pr.stats();
  pr.read_all({a, b});
}

void test_errors() {
  uint16_t codes[4] = {1, 2, 3, 4};
  uint32_t wc[4], wg[4];
  BOTH(C->pack_bits(codes, 4, 17, wc, 4), G->pack_bits(codes, 4, 17, wg, 4), "pack_bits bits=17", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->pack_bits(codes, 4, 0, wc, 4), G->pack_bits(codes, 4, 0, wg, 4), "pack_bits bits=0", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->unpack_bits(wc, 4, 17, codes, 4), G->unpack_bits(wc, 4, 17, codes, 4), "unpack_bits bits=17",
       HWKV_ERR_OUT_OF_RANGE);
  {
    uint16_t big[3] = {1, 9, 2};
    uint32_t pc[1] = {0x12345678u}, pg[1] = {0x12345678u};
    BOTH(C->pack_bits(big, 3, 3, pc, 1), G->pack_bits(big, 3, 3, pg, 1), "pack_bits code >= 2^bits",
         HWKV_ERR_OUT_OF_RANGE);
    check("error paths", pg[0] == 0x12345678u, "pack_bits wrote words despite a bad code");
  }
  BOTH(C->pack_bits(codes, 4, 16, wc, 1), G->pack_bits(codes, 4, 16, wg, 1), "pack_bits n_words too small",
       HWKV_ERR_INVALID_ARGUMENT);
  float x[16] = {0};
  BOTH(C->fwht(x, 1, 3, 1.f), G->fwht(x, 1, 3, 1.f), "fwht n=3", HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->fwht(x, 1, 1 << 21, 1.f), G->fwht(x, 1, 1 << 21, 1.f), "fwht n=2^21", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->fwht(nullptr, 1, 4, 1.f), G->fwht(nullptr, 1, 4, 1.f), "fwht x=NULL", HWKV_ERR_INVALID_ARGUMENT);
  hwkv_rope_params bad = make_rope(8, 5, 0, 0);
  int32_t pos[2] = {0, 1};
  BOTH(C->rope_apply(&bad, x, 2, 1, pos), G->rope_apply(&bad, x, 2, 1, pos), "rope_apply odd rotary_dim",
       HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->rope_apply(nullptr, x, 2, 1, pos), G->rope_apply(nullptr, x, 2, 1, pos), "rope_apply NULL params",
       HWKV_ERR_INVALID_ARGUMENT);
  hwkv_rope_params y = make_rope(8, 8, 0, HWKV_ROPE_SCALING_YARN);
  y.beta_fast = 0;
  float f4[4];
  BOTH(C->rope_inv_freq(&y, f4, nullptr), G->rope_inv_freq(&y, f4, nullptr), "rope_inv_freq yarn beta_fast=0",
       HWKV_ERR_INVALID_ARGUMENT);

  hwkv_store_params sp{};
  sp.n_layer = 2;
  sp.n_kv_head = 2;
  sp.head_dim = 8;
  sp.head_dim_v = 8;
  sp.page_tokens = 4;
  sp.dtype = 7;
  hwkv_store_t *sc = nullptr, *sg = nullptr;
  BOTH(C->store_create(&sp, &sc), G->store_create(&sp, &sg), "store_create dtype=7", HWKV_ERR_INVALID_ARGUMENT);
  sp.dtype = HWKV_F32;
  sp.head_dim = 0;
  BOTH(C->store_create(&sp, &sc), G->store_create(&sp, &sg), "store_create head_dim=0", HWKV_ERR_INVALID_ARGUMENT);
  sp.head_dim = 8;
  {
    sp.dtype = HWKV_F16;
    hwkv_status a = C->store_create(&sp, &sc);
    hwkv_status b = G->store_create(&sp, &sg);
    std::printf("  note: F16 store: cpu %s, cuda %s%s%s\n", st_name(a), st_name(b), b ? " - " : "",
                b ? G->last_error() : "");
    check("F16 store (cuda: OK or UNSUPPORTED)", a == HWKV_OK && (b == HWKV_OK || b == HWKV_ERR_UNSUPPORTED),
          "cpu %s cuda %s", st_name(a), st_name(b));
    C->store_free(sc);
    G->store_free(sg);
    sc = sg = nullptr;
    sp.dtype = HWKV_F32;
  }
  Pair pr;
  if (!pr.create(sp, "[errors]")) return;
  const int32_t a = pr.create_block();
  pr.append(a, 6, nullptr);
  std::vector<float> k(2 * 3 * 2 * 8, 1.f), v = k, out(64);
  const hwkv_rope_params rope = make_rope(8, 8, 0, 0);
  const hwkv_rope_params rope16 = make_rope(16, 16, 0, 0);
  BOTH(C->block_free(pr.c, 99), G->block_free(pr.g, 99), "block_free bad id", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->block_free(pr.c, -1), G->block_free(pr.g, -1), "block_free -1", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->block_append(pr.c, 5, 3, k.data(), v.data(), nullptr), G->block_append(pr.g, 5, 3, k.data(), v.data(), nullptr),
       "block_append bad id", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->block_append(pr.c, a, 3, k.data(), v.data(), &rope16),
       G->block_append(pr.g, a, 3, k.data(), v.data(), &rope16), "block_append rope head_dim mismatch",
       HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->block_append(pr.c, a, -1, k.data(), v.data(), nullptr),
       G->block_append(pr.g, a, -1, k.data(), v.data(), nullptr), "block_append n_tok=-1", HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->block_append(pr.c, a, 3, nullptr, v.data(), nullptr), G->block_append(pr.g, a, 3, nullptr, v.data(), nullptr),
       "block_append k=NULL", HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->block_read(pr.c, a, 2, 0, 1, out.data(), nullptr), G->block_read(pr.g, a, 2, 0, 1, out.data(), nullptr),
       "block_read layer=2", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->block_read(pr.c, a, 0, 4, 3, out.data(), nullptr), G->block_read(pr.g, a, 0, 4, 3, out.data(), nullptr),
       "block_read past end", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->block_read(pr.c, 3, 0, 0, 1, out.data(), nullptr), G->block_read(pr.g, 3, 0, 0, 1, out.data(), nullptr),
       "block_read bad id", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->block_truncate(pr.c, a, 7), G->block_truncate(pr.g, a, 7), "block_truncate > len", HWKV_ERR_OUT_OF_RANGE);
  BOTH(C->block_merge(pr.c, a, a, nullptr), G->block_merge(pr.g, a, a, nullptr), "block_merge dst==src",
       HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->block_merge(pr.c, a, 42, nullptr), G->block_merge(pr.g, a, 42, nullptr), "block_merge bad src",
       HWKV_ERR_OUT_OF_RANGE);
  int32_t l0 = 0, l1 = 0;
  BOTH(C->block_len(pr.c, 9, &l0), G->block_len(pr.g, 9, &l1), "block_len bad id", HWKV_ERR_OUT_OF_RANGE);
  const int32_t vv[2] = {a, a};
  BOTH(C->view_read(pr.c, vv, 1, 0, nullptr, out.data(), nullptr, 5),
       G->view_read(pr.g, vv, 1, 0, nullptr, out.data(), nullptr, 5), "view_read total mismatch",
       HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->view_read(pr.c, vv, 2, 0, nullptr, nullptr, nullptr, 12),
       G->view_read(pr.g, vv, 2, 0, nullptr, nullptr, nullptr, 12), "view_read duplicate block",
       HWKV_ERR_INVALID_ARGUMENT);
  const int32_t vbad[1] = {77};
  BOTH(C->view_read(pr.c, vbad, 1, 0, nullptr, nullptr, nullptr, 0),
       G->view_read(pr.g, vbad, 1, 0, nullptr, nullptr, nullptr, 0), "view_read bad id", HWKV_ERR_OUT_OF_RANGE);
  // attention
  int32_t vip[2] = {0, 1}, vb[1] = {a}, qip[2] = {0, 1}, qp[1] = {5};
  hwkv_attn_batch b{1, vip, vb, qip, qp};
  std::vector<float> q(4 * 8, 0.5f), o(4 * 8), ls(4);
  BOTH(C->attn_views(pr.c, 0, &rope, &b, q.data(), 3, 1.f, o.data(), ls.data()),
       G->attn_views(pr.g, 0, &rope, &b, q.data(), 3, 1.f, o.data(), ls.data()), "attn_views n_head=3 with n_kv=2",
       HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->attn_views(pr.c, 0, nullptr, &b, q.data(), 2, 1.f, o.data(), ls.data()),
       G->attn_views(pr.g, 0, nullptr, &b, q.data(), 2, 1.f, o.data(), ls.data()), "attn_views rope=NULL",
       HWKV_ERR_INVALID_ARGUMENT);
  BOTH(C->attn_views(pr.c, 2, &rope, &b, q.data(), 2, 1.f, o.data(), ls.data()),
       G->attn_views(pr.g, 2, &rope, &b, q.data(), 2, 1.f, o.data(), ls.data()), "attn_views layer=2",
       HWKV_ERR_OUT_OF_RANGE);
  vb[0] = 13;
  BOTH(C->attn_views(pr.c, 0, &rope, &b, q.data(), 2, 1.f, o.data(), ls.data()),
       G->attn_views(pr.g, 0, &rope, &b, q.data(), 2, 1.f, o.data(), ls.data()), "attn_views bad block id",
       HWKV_ERR_OUT_OF_RANGE);
  vb[0] = a;
  int32_t vip2[2] = {0, 2}, vb2[2] = {a, a};
  hwkv_attn_batch b2{1, vip2, vb2, qip, qp};
  BOTH(C->attn_views(pr.c, 0, &rope, &b2, q.data(), 2, 1.f, o.data(), ls.data()),
       G->attn_views(pr.g, 0, &rope, &b2, q.data(), 2, 1.f, o.data(), ls.data()), "attn_views block twice in a view",
       HWKV_ERR_INVALID_ARGUMENT);
  hwkv_attn_batch b3{0, vip, vb, qip, qp};
  BOTH(C->attn_views(pr.c, 0, &rope, &b3, q.data(), 2, 1.f, o.data(), ls.data()),
       G->attn_views(pr.g, 0, &rope, &b3, q.data(), 2, 1.f, o.data(), ls.data()), "attn_views n_seq=0",
       HWKV_ERR_INVALID_ARGUMENT);
  // the store still works after all that
  both_ok("block_free", C->block_free(pr.c, a), G->block_free(pr.g, a));
  BOTH(C->block_free(pr.c, a), G->block_free(pr.g, a), "block_free twice", HWKV_ERR_OUT_OF_RANGE);
  pr.stats();
}

}  // namespace

int main(int argc, char** argv) {
  const char* lib = "prebuilds/cuda/libhwkv_cuda.so";
  bool self = false;
  uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--quick")) g_quick = true;
    else if (!std::strcmp(argv[i], "--self")) self = true;  // harness check without a GPU: CPU vs CPU
    else lib = argv[i];
  }
  rng.seed(seed);
  std::printf("parity: seed %" PRIu64 "%s\n", seed, g_quick ? " (quick)" : "");
  C = hwkv_cpu_api();
  if (self) {
    G = C;
  } else {
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::printf("parity: FAIL: dlopen(%s): %s\n", lib, dlerror());
    return 1;
  }
  auto fn = reinterpret_cast<hwkv_cuda_api_fn>(dlsym(h, "hwkv_cuda_api"));
  if (!fn) {
    std::printf("parity: FAIL: dlsym(hwkv_cuda_api): %s\n", dlerror());
    return 1;
  }
  const char* why = nullptr;
  G = fn(&why);
  if (!G) {
    std::printf("parity: FAIL: hwkv_cuda_api returned NULL: %s\n", why ? why : "(no reason)");
    return 1;
  }
  if (G->abi_version != HWKV_ABI_VERSION || G->size != sizeof(hwkv_api)) {
    std::printf("parity: FAIL: ABI mismatch (version %u size %u)\n", G->abi_version, G->size);
    return 1;
  }
  }
  hwkv_cpu_set_simd(0);
  std::printf("cpu : %s\ncuda: %s\n", C->build_info(), G->build_info());
  if (!self)
    check("build_info", std::strstr(G->build_info(), "\"backend\":\"cuda\"") != nullptr, "%s", G->build_info());

  const auto t0 = std::chrono::steady_clock::now();
  test_rope();
  test_pack();
  test_fwht();
  const StoreCase cases[] = {
      // n_layer n_kv hd hdv rot pt gqa style scaling
      {2, 2, 64, 64, 64, 16, 1, HWKV_ROPE_NEOX, HWKV_ROPE_SCALING_NONE},
      {2, 2, 128, 128, 128, 64, 4, HWKV_ROPE_NEOX, HWKV_ROPE_SCALING_LLAMA3},
      {2, 1, 80, 80, 32, 7, 8, HWKV_ROPE_NORMAL, HWKV_ROPE_SCALING_YARN},
      {2, 4, 128, 96, 64, 32, 8, HWKV_ROPE_NORMAL, HWKV_ROPE_SCALING_LINEAR},
      {2, 2, 64, 64, 64, 1, 4, HWKV_ROPE_NORMAL, HWKV_ROPE_SCALING_NONE},
      {2, 3, 256, 256, 256, 64, 2, HWKV_ROPE_NEOX, HWKV_ROPE_SCALING_YARN},
  };
  for (const StoreCase& sc : cases) test_store_attn(sc);
  test_long();
  test_max_bytes();
  test_errors();
  hwkv_cpu_set_simd(0);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf("\n%-44s %12s %10s %7s %6s\n", "op", "max rel err", "tolerance", "checks", "fails");
  for (const std::string& name : g_order) {
    const OpStat& s = g_ops[name];
    char tol[32];
    if (s.exact) std::snprintf(tol, sizeof tol, "exact");
    else std::snprintf(tol, sizeof tol, "%.0e", s.tol);
    std::printf("%-44s %12.3g %10s %7ld %6ld%s\n", name.c_str(), s.max_err, tol, s.checks, s.fails,
                s.fails ? "  <-- FAIL" : "");
  }
  std::printf("\nparity: %s — %d failures, %d message differences, %zu op groups, %.1f s, device: %s\n",
              g_failures ? "FAIL" : "PASS", g_failures, g_msg_mismatch, g_order.size(), secs, G->build_info());
  return g_failures ? 1 : 0;
}
