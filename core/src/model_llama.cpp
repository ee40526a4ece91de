// model_llama.cpp — the forward pass of Llama-family decoders over the block store (see hwkv_model.h).
//
// One call = one batched step for every sequence: all token rows of all sequences go through each weight
// matrix together (weights read once per step). Per layer: write the new K/V of every sequence first, then
// attention for every sequence, so tokens written in this call by one sequence are visible to the others
// whose views contain its write block.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "attn.h"
#include "model/kv.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "model_params.h"

namespace hwkv {
namespace model {

namespace {

inline void rms_norm_rows(const float* x, const float* w, float* out, int64_t rows, int64_t n, float eps) {
  kern::rmsnorm(x, w, rows, n, eps, out);
}

// Thread pool policy during a forward: workers keep spinning for this long between dispatches, so the many small
// per-layer jobs of one step (matmuls, attention, its merge) never wait for a sleeping worker to wake up; after the
// step the pool goes back to its previous setting (default 200 us) so idle workers fall asleep soon.
constexpr int kForwardSpinUs = 1000;

struct SpinDuringForward {
  ThreadPool* pool;
  int prev;
  explicit SpinDuringForward(ThreadPool* p) : pool(p), prev(p->spin_us()) {
    pool->set_spin_us(std::max(prev, kForwardSpinUs));
  }
  ~SpinDuringForward() { pool->set_spin_us(prev); }
};

// One attention plan for the whole step (every sequence, every query row): a block shared by several sequences
// is streamed once per layer for all of them.
hwkv_status build_attn_plan(Model& m, const BlockStore& st, const hwkv_forward_batch* b) {
  hwkv_attn_batch ab;
  ab.n_seq = b->n_seq;
  ab.view_indptr = b->view_indptr;
  ab.view_blocks = b->view_blocks;
  ab.q_indptr = b->tok_indptr;
  ab.q_pos = m.i_qpos.data();
  return m.attn_plan.build(st, m.rope, ab);
}

hwkv_status run_attn(Model& m, const BlockStore& st, int32_t layer, const float* q, float* att) {
  return attn_run(st, m.attn_plan, layer, q, m.p.n_head, m.attn_scale, att, nullptr, m.pool.get(), &m.attn_scratch);
}

struct Rollback {
  BlockStore* s = nullptr;
  const int32_t* blocks = nullptr;
  const int32_t* lens = nullptr;
  int32_t n = 0;  // write blocks grown so far
  bool armed = true;
  ~Rollback() {
    if (!armed) return;
    for (int32_t i = 0; i < n; ++i) kv_truncate(*s, blocks[i], lens[i]);
  }
};

}  // namespace

hwkv_status forward(Model& m, hwkv_store_t* handle, const hwkv_forward_batch* b, float* logits, int64_t n_logits) {
  const char* fn = "model_forward";
  const hwkv_model_params& P = m.p;
  if (!handle) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: store is NULL", fn);
  if (!b) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: batch is NULL", fn);
  BlockStore& st = *store_from_handle(handle);
  const hwkv_store_params& sp = st.params();
  bool argmax = false;
  int32_t lmode = 0;
  HWKV_TRY(model::check_forward_batch(fn, P, sp, b, &argmax, &lmode));
  const int32_t n_seq = b->n_seq;
  const int64_t n_tok = b->tok_indptr[n_seq];
  // Blocks: live, at most once per view, write blocks distinct (m.i_rows reused as the stamp array).
  HWKV_TRY(model::check_forward_views(fn, b, static_cast<size_t>(st.block_id_limit()), m.i_rows,
                                      [&](int32_t blk) { return st.check_block(fn, blk); }));
  const int64_t n_rows_out = lmode == HWKV_LOGITS_ALL ? n_tok : (lmode == HWKV_LOGITS_LAST ? n_seq : 0);
  const int64_t row_floats = argmax ? 2 : P.n_vocab;  // what comes back per row
  if (n_rows_out > 0) {
    if (!logits) return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: logits is NULL but logits_mode asks for %lld rows", fn,
                             static_cast<long long>(n_rows_out));
    if (n_logits < n_rows_out * row_floats)
      return fail(HWKV_ERR_INVALID_ARGUMENT, "%s: logits holds %lld floats, need %lld (%lld rows x %lld%s)", fn,
                  static_cast<long long>(n_logits), static_cast<long long>(n_rows_out * row_floats),
                  static_cast<long long>(n_rows_out), static_cast<long long>(row_floats),
                  argmax ? ": id and logit per row, ARGMAX" : " = n_vocab");
  }
  HWKV_TRY(prepare(m));
  SpinDuringForward spin(m.pool.get());

  const int64_t D = P.n_embd, hd = P.head_dim, qd = static_cast<int64_t>(P.n_head) * hd,
                kvd = static_cast<int64_t>(P.n_kv_head) * hd, F = P.n_ff;
  const int32_t rd = m.rope.rotary_dim;

  // Grow the write blocks (all layers), remembering the old lengths for the rollback.
  m.i_old_len.resize(n_seq);
  m.i_write.resize(n_seq);
  for (int32_t s = 0; s < n_seq; ++s) {
    m.i_write[s] = b->view_blocks[b->view_indptr[s + 1] - 1];
    m.i_old_len[s] = st.len(m.i_write[s]);
    const int64_t n_new = b->tok_indptr[s + 1] - b->tok_indptr[s];
    if (static_cast<int64_t>(m.i_old_len[s]) + n_new > INT32_MAX)
      return fail(HWKV_ERR_OUT_OF_RANGE, "%s: block %d would exceed 2^31-1 tokens", fn, m.i_write[s]);
  }
  Rollback rb;
  rb.s = &st;
  rb.blocks = m.i_write.data();
  rb.lens = m.i_old_len.data();
  for (int32_t s = 0; s < n_seq; ++s) {
    HWKV_TRY(kv_reserve(st, m.i_write[s], b->tok_indptr[s + 1] - b->tok_indptr[s]));
    rb.n = s + 1;
  }
  // Positions: keys at block-local old_len + i; queries at (view length after the appends) - n + i.
  m.i_kpos.resize(static_cast<size_t>(n_tok));
  m.i_qpos.resize(static_cast<size_t>(n_tok));
  for (int32_t s = 0; s < n_seq; ++s) {
    int64_t total = 0;
    for (int32_t j = b->view_indptr[s]; j < b->view_indptr[s + 1]; ++j) total += st.len(b->view_blocks[j]);
    const int32_t t0 = b->tok_indptr[s], n_new = b->tok_indptr[s + 1] - t0;
    if (total > INT32_MAX) return fail(HWKV_ERR_OUT_OF_RANGE, "%s: view of sequence %d exceeds 2^31-1 tokens", fn, s);
    for (int32_t i = 0; i < n_new; ++i) {
      m.i_kpos[t0 + i] = static_cast<int64_t>(m.i_old_len[s]) + i;
      m.i_qpos[t0 + i] = static_cast<int32_t>(total - n_new + i);
    }
  }
  m.rope_tab.build(m.rope, m.i_kpos.data(), n_tok);

  // Rows that need the final norm / LM head.
  m.i_rows.resize(static_cast<size_t>(n_rows_out));
  for (int64_t r = 0; r < n_rows_out; ++r)
    m.i_rows[r] = lmode == HWKV_LOGITS_ALL ? static_cast<int32_t>(r) : b->tok_indptr[r + 1] - 1;

  float* x = m.x.get(static_cast<size_t>(n_tok * D));
  float* h = m.h.get(static_cast<size_t>(n_tok * std::max(D, qd)));
  float* q = m.q.get(static_cast<size_t>(n_tok * qd));
  float* k = m.k.get(static_cast<size_t>(n_tok * kvd));
  float* v = m.v.get(static_cast<size_t>(n_tok * kvd));
  float* att = m.att.get(static_cast<size_t>(n_tok * qd));
  float* fg = m.ff_g.get(static_cast<size_t>(n_tok * F));
  float* fu = m.ff_u.get(static_cast<size_t>(n_tok * F));

  // Embedding lookup.
  {
    const Tensor& E = *m.tok_embd;
    for (int64_t t = 0; t < n_tok; ++t) kern::dequantize_row(E.data, E.type, D, b->tokens[t], x + t * D);
  }

  // Attention plans (block lengths are final now: the write blocks were grown above).
  HWKV_TRY(build_attn_plan(m, st, b));

  const float af = m.attn_factor;
  int64_t n_act = n_tok;  // rows still carried through the residual stream
  for (int32_t l = 0; l < P.n_layer; ++l) {
    const Layer& L = m.layers[l];
    rms_norm_rows(x, L.attn_norm->f32.data(), h, n_tok, D, P.rms_norm_eps);
    {
      kern::MatmulOut outs[3] = {
          {L.wq->data, L.wq->type, 0, qd, q, 0},
          {L.wk->data, L.wk->type, 0, kvd, k, 0},
          {L.wv->data, L.wv->type, 0, kvd, v, 0},
      };
      HWKV_TRY(matmul_multi(m, outs, 3, D, h, n_tok));
    }
    if (L.bq) {
      const float *bq = L.bq->f32.data(), *bk = L.bk->f32.data(), *bv = L.bv->f32.data();
      for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t i = 0; i < qd; ++i) q[t * qd + i] += bq[i];
        for (int64_t i = 0; i < kvd; ++i) k[t * kvd + i] += bk[i];
        for (int64_t i = 0; i < kvd; ++i) v[t * kvd + i] += bv[i];
      }
    }
    if (L.q_norm) {
      rms_norm_rows(q, L.q_norm->f32.data(), q, n_tok * P.n_head, hd, P.rms_norm_eps);
      rms_norm_rows(k, L.k_norm->f32.data(), k, n_tok * P.n_kv_head, hd, P.rms_norm_eps);
    }
    if (af != 1.0f) {
      for (int64_t r = 0; r < n_tok * P.n_head; ++r)
        for (int32_t i = 0; i < rd; ++i) q[r * hd + i] *= af;
      for (int64_t r = 0; r < n_tok * P.n_kv_head; ++r)
        for (int32_t i = 0; i < rd; ++i) k[r * hd + i] *= af;
    }
    if (m.cap_k) {  // K/V tap: pre-RoPE keys (after bias, q/k norm, attention factor) and values
      const size_t bytes = static_cast<size_t>(n_tok * kvd) * sizeof(float);
      std::memcpy(m.cap_k + (l * m.cap_n_tok + m.cap_off) * kvd, k, bytes);
      std::memcpy(m.cap_v + (l * m.cap_n_tok + m.cap_off) * kvd, v, bytes);
    }
    // Keys to block-local positions, then into the write blocks (every sequence before any attention).
    for (int64_t t = 0; t < n_tok; ++t)
      rope_rotate(m.rope, k + t * kvd, P.n_kv_head, hd, m.rope_tab.cos(t), m.rope_tab.sin(t));
    for (int32_t s = 0; s < n_seq; ++s) {
      const int32_t t0 = b->tok_indptr[s], n_new = b->tok_indptr[s + 1] - t0;
      HWKV_TRY(kv_write(st, m.i_write[s], l, m.i_old_len[s], n_new, k + t0 * kvd, v + t0 * kvd));
    }
    // compressed chunks of the blocks in the views: decoded once per layer for every sequence that sees them
    HWKV_TRY(st.prepare_layer(l, m.pool.get(), b->view_blocks, b->view_indptr[n_seq]));
    HWKV_TRY(run_attn(m, st, l, q, att));

    if (l == P.n_layer - 1 && n_rows_out < n_tok) {
      // Only the rows that produce logits matter after the last attention: compact them.
      for (int64_t r = 0; r < n_rows_out; ++r) {
        const int64_t src = m.i_rows[r];
        if (src != r) {
          std::memcpy(x + r * D, x + src * D, static_cast<size_t>(D) * sizeof(float));
          std::memcpy(att + r * qd, att + src * qd, static_cast<size_t>(qd) * sizeof(float));
        }
      }
      n_act = n_rows_out;
      if (n_act == 0) break;
    }
    {
      kern::MatmulOut o = {L.wo->data, L.wo->type, 1, D, x, 0};
      HWKV_TRY(matmul_multi(m, &o, 1, qd, att, n_act));
    }
    rms_norm_rows(x, L.ffn_norm->f32.data(), h, n_act, D, P.rms_norm_eps);
    {
      kern::MatmulOut outs[2] = {
          {L.gate->data, L.gate->type, 0, F, fg, 0},
          {L.up->data, L.up->type, 0, F, fu, 0},
      };
      HWKV_TRY(matmul_multi(m, outs, 2, D, h, n_act));
    }
    kern::swiglu(fg, fu, n_act * F, fg);
    {
      kern::MatmulOut o = {L.down->data, L.down->type, 1, D, x, 0};
      HWKV_TRY(matmul_multi(m, &o, 1, F, fg, n_act));
    }
  }

  if (n_rows_out > 0) {
    // x rows [0, n_rows_out) are the requested rows (compacted in the last layer).
    rms_norm_rows(x, m.output_norm->f32.data(), h, n_rows_out, D, P.rms_norm_eps);
    float* lg = argmax ? m.tmp.get(static_cast<size_t>(n_rows_out * P.n_vocab)) : logits;
    kern::MatmulOut o = {m.output->data, m.output->type, 0, P.n_vocab, lg, 0};
    HWKV_TRY(matmul_multi(m, &o, 1, D, h, n_rows_out));
    if (argmax) {
      // greedy pick per row: lowest index among equal maxima, NaN never picked, id 0 / -inf if nothing > -inf
      for (int64_t r = 0; r < n_rows_out; ++r) {
        const float* row = lg + r * P.n_vocab;
        int32_t best = 0;
        float bv = -std::numeric_limits<float>::infinity();
        for (int32_t i = 0; i < P.n_vocab; ++i)
          if (row[i] > bv) {
            bv = row[i];
            best = i;
          }
        logits[2 * r] = static_cast<float>(best);
        logits[2 * r + 1] = bv;
      }
    }
  }
  rb.armed = false;
  st.compact_all(m.pool.get());  // KV codec: encode the chunks that left the exact window (no-op without a codec)
  return HWKV_OK;
}

}  // namespace model
}  // namespace hwkv
