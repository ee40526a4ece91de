// quant_api.cpp — RawQuantApi (ts/backend/raw.ts, RawApi.quant) over one hwkv_quant_api table
// (core/include/hwkv_quant.h).
//
// Thin like raw_api.cpp: typed arrays by pointer (zero copy), element counts checked against what the call
// implies so the library never reads or writes past a JS buffer; everything else is the library's to check.
// Sizes implied by parameters are asked from the library itself (higgs_size / uniform_size), so a malformed
// parameter set is reported by the library's own message.
#include "call.h"

namespace hwkv_napi {
namespace {

#define HWKV_Q_OF(c) const hwkv_quant_api* api = (c).binding()->quant
#define HWKV_Q_REQUIRE(c, member) \
  if (api == nullptr || api->member == nullptr) return (c).Unsupported()
#define HWKV_CHECKED(c) \
  if (!(c).ok()) return (c).Reject()

bool HiggsParams(Call& c, size_t i, hwkv_higgs_params* out) {
  const double* a =
      c.Flat(i, "hp", hwkv_flat::kHiggs, hwkv_flat::kHiggsLen, hwkv_flat::kHiggsLen, "HIGGS_PARAMS_LEN", false);
  if (a == nullptr) return false;
  *out = hwkv_flat::higgs(a);
  return true;
}

bool UniformParams(Call& c, size_t i, hwkv_uniform_params* out) {
  const double* a =
      c.Flat(i, "up", hwkv_flat::kUniform, hwkv_flat::kUniformLen, hwkv_flat::kUniformLen, "UNIFORM_PARAMS_LEN", false);
  if (a == nullptr) return false;
  *out = hwkv_flat::uniform(a);
  return true;
}

bool Flag(const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue() != 0;
  return v.ToBoolean().Value();
}

// out = [words, scales] when the library accepted the call; returns its status.
Napi::Value SizePair(Call& c, hwkv_status st, int64_t words, int64_t scales, const Span<double>& out) {
  if (st == HWKV_OK) {
    out.data[0] = static_cast<double>(words);
    out.data[1] = static_cast<double>(scales);
  }
  return c.Status(st);
}

// higgsSize(hp, nTok, out[2]): out = [n_words, n_scales]
Napi::Value HiggsSize(const Napi::CallbackInfo& info) {
  Call c(info, "higgsSize");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, higgs_size);
  hwkv_higgs_params hp;
  HiggsParams(c, 0, &hp);
  int64_t n_tok = c.I64(1, "nTok");
  Span<double> out = c.Array<double>(2, "out", napi_float64_array, false);
  c.AtLeast(out, 2, "out", "two values");
  HWKV_CHECKED(c);
  int64_t w = 0, s = 0;
  c.Enter();
  const hwkv_status st = api->higgs_size(&hp, n_tok, &w, &s);  // before SizePair reads w and s
  return SizePair(c, st, w, s, out);
}

// What higgsEncode and higgsDecode check alike, once the arguments are read: the library's sizes for (hp, nTok)
// (a rejection returns false with its status in *st), then grid, the float buffer `xy` (x or y: nTok*channels)
// and scales against them (a short one returns false with c failed).
bool HiggsBuffers(Call& c, const hwkv_quant_api* api, const hwkv_higgs_params& hp, int64_t n_tok, const Span<float>& grid,
                  const Span<float>& xy, const char* xy_name, const Span<uint16_t>& scales, hwkv_status* st) {
  int64_t words = 0, ns = 0;
  c.Enter();
  *st = api->higgs_size(&hp, n_tok, &words, &ns);
  if (*st != HWKV_OK) return false;
  int64_t need;
  if (Need({hp.n_points, hp.dim}, &need)) c.AtLeast(grid, need, "grid", "n_points*dim");
  if (Need({n_tok, hp.channels}, &need)) c.AtLeast(xy, need, xy_name, "nTok*channels");
  c.AtLeast(scales, ns, "scales", "nTok*channels/group");
  *st = HWKV_ERR_INVALID_ARGUMENT;
  return c.ok();
}

// The uniform quantizer's counterpart of HiggsBuffers (xy, scales and zeros).
bool UniformBuffers(Call& c, const hwkv_quant_api* api, const hwkv_uniform_params& up, int64_t n_tok,
                    const Span<float>& xy, const char* xy_name, const Span<uint16_t>& scales,
                    const Span<uint16_t>& zeros, hwkv_status* st) {
  int64_t words = 0, ns = 0;
  c.Enter();
  *st = api->uniform_size(&up, n_tok, &words, &ns);
  if (*st != HWKV_OK) return false;
  int64_t need;
  if (Need({n_tok, up.channels}, &need)) c.AtLeast(xy, need, xy_name, "nTok*channels");
  c.AtLeast(scales, ns, "scales", "number of groups");
  c.AtLeast(zeros, ns, "zeros", "number of groups");
  *st = HWKV_ERR_INVALID_ARGUMENT;
  return c.ok();
}

// A failed *Buffers check: the library's status, or the addon's message.
Napi::Value BuffersFailed(Call& c, hwkv_status st) { return c.ok() ? c.Status(st) : c.Reject(); }

// higgsEncode(hp, grid, x, nTok, codes, scales)
Napi::Value HiggsEncode(const Napi::CallbackInfo& info) {
  Call c(info, "higgsEncode");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, higgs_encode);
  hwkv_higgs_params hp;
  HiggsParams(c, 0, &hp);
  Span<float> grid = c.F32Array(1, "grid");
  Span<float> x = c.F32Array(2, "x");
  int64_t n_tok = c.I64(3, "nTok");
  Span<uint32_t> codes = c.Array<uint32_t>(4, "codes", napi_uint32_array, false);
  Span<uint16_t> scales = c.Array<uint16_t>(5, "scales", napi_uint16_array, false);
  HWKV_CHECKED(c);
  hwkv_status st;
  if (!HiggsBuffers(c, api, hp, n_tok, grid, x, "x", scales, &st)) return BuffersFailed(c, st);
  c.Enter();
  return c.Status(api->higgs_encode(&hp, grid.data, x.data, n_tok, codes.data, codes.len, scales.data));
}

// higgsDecode(hp, grid, codes, scales, nTok, y, accumulate)
Napi::Value HiggsDecode(const Napi::CallbackInfo& info) {
  Call c(info, "higgsDecode");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, higgs_decode);
  hwkv_higgs_params hp;
  HiggsParams(c, 0, &hp);
  Span<float> grid = c.F32Array(1, "grid");
  Span<uint32_t> codes = c.Array<uint32_t>(2, "codes", napi_uint32_array, false);
  Span<uint16_t> scales = c.Array<uint16_t>(3, "scales", napi_uint16_array, false);
  int64_t n_tok = c.I64(4, "nTok");
  Span<float> y = c.F32Array(5, "y");
  const bool acc = Flag(info[6]);
  HWKV_CHECKED(c);
  hwkv_status st;
  if (!HiggsBuffers(c, api, hp, n_tok, grid, y, "y", scales, &st)) return BuffersFailed(c, st);
  c.Enter();
  return c.Status(api->higgs_decode(&hp, grid.data, codes.data, codes.len, scales.data, n_tok, y.data, acc ? 1 : 0));
}

// gridNearest(grid, nPoints, dim, z, idx): m = idx.length pieces
Napi::Value GridNearest(const Napi::CallbackInfo& info) {
  Call c(info, "gridNearest");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, grid_nearest);
  Span<float> grid = c.F32Array(0, "grid");
  int32_t n = c.I32(1, "nPoints");
  int32_t d = c.I32(2, "dim");
  Span<float> z = c.F32Array(3, "z");
  Span<uint16_t> idx = c.Array<uint16_t>(4, "idx", napi_uint16_array, false);
  int64_t need;
  if (c.ok() && Need({n, d}, &need)) c.AtLeast(grid, need, "grid", "nPoints*dim");
  if (c.ok() && Need({idx.len, d}, &need)) c.AtLeast(z, need, "z", "idx.length*dim");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->grid_nearest(grid.data, n, d, z.data, idx.len, idx.data));
}

// higgsSigns(seed, signs): channels = signs.length
Napi::Value HiggsSigns(const Napi::CallbackInfo& info) {
  Call c(info, "higgsSigns");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, higgs_signs);
  int64_t seed = c.I64(0, "seed");
  Span<float> s = c.F32Array(1, "signs");
  if (c.ok() && (seed < 0 || seed > 4294967295LL)) c.Fail("seed must be in 0..2^32-1");
  if (c.ok() && s.len > 2147483647) c.Fail("signs is too long");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->higgs_signs(static_cast<uint32_t>(seed), static_cast<int32_t>(s.len), s.data));
}

// uniformSize(up, nTok, out[2]): out = [n_words, n_scales]
Napi::Value UniformSize(const Napi::CallbackInfo& info) {
  Call c(info, "uniformSize");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, uniform_size);
  hwkv_uniform_params up;
  UniformParams(c, 0, &up);
  int64_t n_tok = c.I64(1, "nTok");
  Span<double> out = c.Array<double>(2, "out", napi_float64_array, false);
  c.AtLeast(out, 2, "out", "two values");
  HWKV_CHECKED(c);
  int64_t w = 0, s = 0;
  c.Enter();
  const hwkv_status st = api->uniform_size(&up, n_tok, &w, &s);  // before SizePair reads w and s
  return SizePair(c, st, w, s, out);
}

// uniformEncode(up, x, nTok, codes, scales, zeros)
Napi::Value UniformEncode(const Napi::CallbackInfo& info) {
  Call c(info, "uniformEncode");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, uniform_encode);
  hwkv_uniform_params up;
  UniformParams(c, 0, &up);
  Span<float> x = c.F32Array(1, "x");
  int64_t n_tok = c.I64(2, "nTok");
  Span<uint32_t> codes = c.Array<uint32_t>(3, "codes", napi_uint32_array, false);
  Span<uint16_t> scales = c.Array<uint16_t>(4, "scales", napi_uint16_array, false);
  Span<uint16_t> zeros = c.Array<uint16_t>(5, "zeros", napi_uint16_array, false);
  HWKV_CHECKED(c);
  hwkv_status st;
  if (!UniformBuffers(c, api, up, n_tok, x, "x", scales, zeros, &st)) return BuffersFailed(c, st);
  c.Enter();
  return c.Status(api->uniform_encode(&up, x.data, n_tok, codes.data, codes.len, scales.data, zeros.data));
}

// uniformDecode(up, codes, scales, zeros, nTok, y, accumulate)
Napi::Value UniformDecode(const Napi::CallbackInfo& info) {
  Call c(info, "uniformDecode");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, uniform_decode);
  hwkv_uniform_params up;
  UniformParams(c, 0, &up);
  Span<uint32_t> codes = c.Array<uint32_t>(1, "codes", napi_uint32_array, false);
  Span<uint16_t> scales = c.Array<uint16_t>(2, "scales", napi_uint16_array, false);
  Span<uint16_t> zeros = c.Array<uint16_t>(3, "zeros", napi_uint16_array, false);
  int64_t n_tok = c.I64(4, "nTok");
  Span<float> y = c.F32Array(5, "y");
  const bool acc = Flag(info[6]);
  HWKV_CHECKED(c);
  hwkv_status st;
  if (!UniformBuffers(c, api, up, n_tok, y, "y", scales, zeros, &st)) return BuffersFailed(c, st);
  c.Enter();
  return c.Status(
      api->uniform_decode(&up, codes.data, codes.len, scales.data, zeros.data, n_tok, y.data, acc ? 1 : 0));
}

// ridgeAccumulate(x, y, n, p, q, xtx, xty, yy | null)
Napi::Value RidgeAccumulate(const Napi::CallbackInfo& info) {
  Call c(info, "ridgeAccumulate");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, ridge_accumulate);
  Span<float> x = c.F32Array(0, "x");
  Span<float> y = c.F32Array(1, "y");
  int64_t n = c.I64(2, "n");
  int32_t p = c.I32(3, "p");
  int32_t q = c.I32(4, "q");
  Span<double> xtx = c.Array<double>(5, "xtx", napi_float64_array, false);
  Span<double> xty = c.Array<double>(6, "xty", napi_float64_array, false);
  Span<double> yy = c.Array<double>(7, "yy", napi_float64_array, true);
  int64_t need;
  if (c.ok() && Need({n, p}, &need)) c.AtLeast(x, need, "x", "n*p");
  if (c.ok() && Need({n, q}, &need)) c.AtLeast(y, need, "y", "n*q");
  if (c.ok() && p >= 0 && Need({int64_t(p) + 1, int64_t(p) + 1}, &need)) c.AtLeast(xtx, need, "xtx", "(p+1)^2");
  if (c.ok() && p >= 0 && Need({int64_t(p) + 1, q}, &need)) c.AtLeast(xty, need, "xty", "(p+1)*q");
  if (c.ok() && q >= 0) c.AtLeast(yy, q, "yy", "q");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(
      api->ridge_accumulate(x.data, y.data, n, p, q, xtx.data, xty.data, yy.present ? yy.data : nullptr));
}

// ridgeSolve(xtx, xty, p, q, lambdaRel, w)
Napi::Value RidgeSolve(const Napi::CallbackInfo& info) {
  Call c(info, "ridgeSolve");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, ridge_solve);
  Span<double> xtx = c.Array<double>(0, "xtx", napi_float64_array, false);
  Span<double> xty = c.Array<double>(1, "xty", napi_float64_array, false);
  int32_t p = c.I32(2, "p");
  int32_t q = c.I32(3, "q");
  double lambda = c.ok() ? c.Number(4, "lambdaRel") : 0;
  Span<float> w = c.F32Array(5, "w");
  int64_t need;
  if (c.ok() && p >= 0 && Need({int64_t(p) + 1, int64_t(p) + 1}, &need)) c.AtLeast(xtx, need, "xtx", "(p+1)^2");
  if (c.ok() && p >= 0 && q >= 0 && Need({int64_t(p) + 1, q}, &need)) {
    c.AtLeast(xty, need, "xty", "(p+1)*q");
    c.AtLeast(w, need, "w", "(p+1)*q");
  }
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->ridge_solve(xtx.data, xty.data, p, q, lambda, w.data));
}

// linearApply(x, n, p, q, w, y)
Napi::Value LinearApply(const Napi::CallbackInfo& info) {
  Call c(info, "linearApply");
  HWKV_Q_OF(c);
  HWKV_Q_REQUIRE(c, linear_apply);
  Span<float> x = c.F32Array(0, "x");
  int64_t n = c.I64(1, "n");
  int32_t p = c.I32(2, "p");
  int32_t q = c.I32(3, "q");
  Span<float> w = c.F32Array(4, "w");
  Span<float> y = c.F32Array(5, "y");
  int64_t need;
  if (c.ok() && Need({n, p}, &need)) c.AtLeast(x, need, "x", "n*p");
  if (c.ok() && p >= 0 && Need({int64_t(p) + 1, q}, &need)) c.AtLeast(w, need, "w", "(p+1)*q");
  if (c.ok() && Need({n, q}, &need)) c.AtLeast(y, need, "y", "n*q");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(api->linear_apply(x.data, n, p, q, w.data, y.data));
}

#undef HWKV_Q_OF
#undef HWKV_Q_REQUIRE
#undef HWKV_CHECKED

}  // namespace

std::string CheckQuantTable(const hwkv_quant_api* api) {
  if (api == nullptr) return "no quantizer table";
  if (api->abi_version != HWKV_QUANT_ABI_VERSION) {
    return Format("quantizer ABI version mismatch: library has %u, addon expects %d", api->abi_version,
                  HWKV_QUANT_ABI_VERSION);
  }
  if (api->size < sizeof(hwkv_quant_api)) {
    return Format("quantizer table too small: library has %u bytes, addon expects %zu", api->size,
                  sizeof(hwkv_quant_api));
  }
  return "";
}

Napi::Object MakeRawQuantApi(Napi::Env env, Binding* b) {
  Napi::Object o = Napi::Object::New(env);
  auto add = [&](const char* name, Napi::Function::Callback cb) {
    o.Set(name, Napi::Function::New(env, cb, name, b));
  };
  add("higgsSize", Method<HiggsSize>);
  add("higgsEncode", Method<HiggsEncode>);
  add("higgsDecode", Method<HiggsDecode>);
  add("gridNearest", Method<GridNearest>);
  add("higgsSigns", Method<HiggsSigns>);
  add("uniformSize", Method<UniformSize>);
  add("uniformEncode", Method<UniformEncode>);
  add("uniformDecode", Method<UniformDecode>);
  add("ridgeAccumulate", Method<RidgeAccumulate>);
  add("ridgeSolve", Method<RidgeSolve>);
  add("linearApply", Method<LinearApply>);
  return o;
}

}  // namespace hwkv_napi
