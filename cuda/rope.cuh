// rope.cuh — RoPE on the CUDA backend: host-side frequencies and cos/sin tables (double precision, as the
// CPU core), and the device rotation used by rope_apply, the store (append / merge / view_read) and
// attention (query rotation).
//
// A cos/sin table row holds half = rotary_dim/2 floats of cos followed by half floats of sin:
//   row[j] = (float)cos(pos * inv_freq[j]), row[half + j] = (float)sin(pos * inv_freq[j]),
// with pos * inv_freq formed in double. The rotation itself is float arithmetic without contraction
// (x0*c - x1*s and x0*s + x1*c, each product rounded), like the CPU core's portable path.
//
// A row of head_dim elements is processed as head_dim - half "units": unit j < half rotates the pair
// (j, j + half) for NEOX or (2j, 2j + 1) for NORMAL; unit u >= half is the untouched dimension u + half.
#ifndef HWKV_CUDA_ROPE_CUH
#define HWKV_CUDA_ROPE_CUH

#include <cstdint>
#include <vector>

#include "common.cuh"

namespace hwkv_cuda {

struct RopeHost {
  int32_t head_dim = 0;
  int32_t rotary_dim = 0;
  int32_t half = 0;
  int32_t style = 0;
  std::vector<double> inv_freq;  // [half], double (before rounding to float)
  double attention_factor = 1.0;
};

// Validates p (messages start with `fn`) and computes the frequencies.
hwkv_status rope_prepare(const char* fn, const hwkv_rope_params* p, RopeHost* out);
// Appends one cos/sin table row (2*half floats) for position `pos` to `tab`.
void rope_table_row(const RopeHost& r, double pos, std::vector<float>& tab);

struct RopeDev {
  int32_t head_dim;
  int32_t half;   // 0 = no rotation
  int32_t style;  // hwkv_rope_style
};

inline RopeDev rope_dev(const RopeHost* r, int32_t head_dim) {
  RopeDev d;
  d.head_dim = head_dim;
  d.half = r ? r->half : 0;
  d.style = r ? r->style : 0;
  return d;
}

__host__ __device__ inline int32_t rope_units(const RopeDev& r) { return r.head_dim - r.half; }

// Rotates/copies unit u of one row through accessors: ld(i) reads element i of the source row (float),
// st(i, x) writes element i of the destination row (which may be the source). tab = cos/sin row (ignored
// when r.half == 0); neg rotates by minus the row's angle (sin negated: the KV codec's un-rotation). The page
// accessors of the block store (kv_get / kv_set) plug in here.
template <class Ld, class St>
__device__ __forceinline__ void rope_unit_fn(const RopeDev& r, int32_t u, Ld ld, St st, const float* tab,
                                             bool neg = false) {
  if (u < r.half) {
    int32_t i0, i1;
    if (r.style == HWKV_ROPE_NEOX) {
      i0 = u;
      i1 = u + r.half;
    } else {
      i0 = 2 * u;
      i1 = 2 * u + 1;
    }
    const float c = tab[u], s = neg ? -tab[r.half + u] : tab[r.half + u];
    const float x0 = ld(i0), x1 = ld(i1);
    st(i0, __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s)));
    st(i1, __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c)));
  } else {
    const int32_t i = u + r.half;
    st(i, ld(i));
  }
}

// Copies unit u of one row unchanged (the same elements rope_unit_fn would write).
template <class Ld, class St>
__device__ __forceinline__ void rope_copy_unit_fn(const RopeDev& r, int32_t u, Ld ld, St st) {
  if (u < r.half) {
    const int32_t i0 = r.style == HWKV_ROPE_NEOX ? u : 2 * u;
    const int32_t i1 = r.style == HWKV_ROPE_NEOX ? u + r.half : 2 * u + 1;
    st(i0, ld(i0));
    st(i1, ld(i1));
  } else {
    st(u + r.half, ld(u + r.half));
  }
}

// Float rows: reads src (head_dim floats), writes dst (may alias src).
__device__ __forceinline__ void rope_unit(const RopeDev& r, int32_t u, const float* src, float* dst,
                                          const float* tab) {
  rope_unit_fn(
      r, u, [src](int32_t i) { return src[i]; }, [dst](int32_t i, float x) { dst[i] = x; }, tab);
}

}  // namespace hwkv_cuda

#endif
