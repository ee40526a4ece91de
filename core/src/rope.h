// rope.h — rotary position embedding: frequencies (HF transformers rope_init semantics, in double) and
// rotation of head vectors.
//
// Internal API (used by the ABI, the block store and attention):
//   Rope r;  HWKV_TRY(rope_init(params, "fn", &r));      // validate + inv_freq in double
//   RopeTable t;  t.build(r, positions, n);                 // cos/sin per position, expanded, float
//   rope_rotate(r, x, n_vec, stride, t.cos(i), t.sin(i));   // rotate n_vec vectors by position i
//
// Expanded tables: for one position p, C[j] and S[j] (j < rotary_dim) are such that
//   x'[j] = x[j] * C[j] + x[partner(j)] * S[j]
// NEOX:   pair (i, i+h), h = rotary_dim/2: C[i] = C[i+h] = cos(p w_i), S[i] = -sin(p w_i), S[i+h] = +sin(p w_i)
// NORMAL: pair (2i, 2i+1):               C[2i] = C[2i+1] = cos(p w_i), S[2i] = -sin(p w_i), S[2i+1] = +sin(p w_i)
// The angle p*w_i is formed in double with the double inv_freq w_i, cos/sin in double, then rounded to float;
// the rotation itself runs in float (x1*c - x2*s, x2*c + x1*s, bit-identical to the textbook formulas).
#ifndef HWKV_CORE_ROPE_H
#define HWKV_CORE_ROPE_H

#include <cstdint>
#include <vector>

#include "common.h"

namespace hwkv {

struct Rope {
  int32_t head_dim = 0;
  int32_t rotary_dim = 0;
  int32_t style = 0;                // hwkv_rope_style
  std::vector<double> inv_freq;     // [rotary_dim / 2], radians per token, after scaling
  double attention_factor = 1.0;    // YaRN mscale (1 for the other schemes); never folded into the rotation
};

// Validates *p (fn names the ABI function in messages) and computes the frequencies.
hwkv_status rope_init(const hwkv_rope_params* p, const char* fn, Rope* out);

// Expanded cos/sin for one position, C and S of length r.rotary_dim.
void rope_table_one(const Rope& r, double pos, float* C, float* S);

class RopeTable {
 public:
  void build(const Rope& r, const int64_t* pos, int64_t n);
  void build_one(const Rope& r, double pos);  // a single position (index 0)
  const float* cos(int64_t i) const { return c_.data() + i * rd_; }
  const float* sin(int64_t i) const { return s_.data() + i * rd_; }

 private:
  int64_t rd_ = 0;
  std::vector<float> c_, s_;
};

// Rotates n_vec head vectors x + i*stride (each head_dim long, dims >= rotary_dim untouched) with one
// expanded table (C, S). Goes through the current kernel table.
void rope_rotate(const Rope& r, float* x, int64_t n_vec, int64_t stride, const float* C, const float* S);

}  // namespace hwkv

#endif
