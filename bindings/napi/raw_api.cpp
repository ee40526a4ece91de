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
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <unordered_set>

#include "binding.h"

namespace hwkv_napi {
namespace {

constexpr size_t kRopeParamsLen = 12;
constexpr size_t kStoreParamsLen = 7;
constexpr size_t kStoreStatsLen = 5;

// ------------------------------------------------------------------------------------------------
// Store handles
// ------------------------------------------------------------------------------------------------
struct StoreBox {
  const hwkv_api* api;
  hwkv_store_t* store;  // nullptr once freed
  hwkv_store_params params;
};

// Leaked on purpose: finalizers may run during environment teardown, after static destructors would.
std::mutex& RegistryMutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}
std::unordered_set<StoreBox*>& Registry() {
  static auto* s = new std::unordered_set<StoreBox*>;
  return *s;
}

void FinalizeStore(Napi::Env, StoreBox* box) {
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    Registry().erase(box);
  }
  if (box->store != nullptr && box->api->store_free != nullptr) box->api->store_free(box->store);
  box->store = nullptr;
  delete box;
}

// ------------------------------------------------------------------------------------------------
// Formatting
// ------------------------------------------------------------------------------------------------
#if defined(__GNUC__) || defined(__clang__)
#define HWKV_NAPI_PRINTF_ATTR __attribute__((format(printf, 1, 2)))
#else
#define HWKV_NAPI_PRINTF_ATTR
#endif
std::string Format(const char* fmt, ...) HWKV_NAPI_PRINTF_ATTR;

std::string Format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return fmt;
  return std::string(buf, static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1);
}

const char* TypeName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
  }
  return "TypedArray";
}

std::string Describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: {
      double d = v.As<Napi::Number>().DoubleValue();
      return Format("%.17g", d);
    }
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_external: return "an external";
    case napi_bigint: return "a bigint";
    case napi_object: {
      if (v.IsTypedArray()) return std::string("a ") + TypeName(v.As<Napi::TypedArray>().TypedArrayType());
      if (v.IsArray()) return "an Array";
      return "an object";
    }
  }
  return "a value";
}

// 16 zeroed, aligned bytes: the pointer handed to the library for an empty typed array whose data
// pointer is null (nothing is read or written through it when the implied count is 0).
alignas(64) unsigned char g_empty[64];

template <class T>
struct Span {
  T* data = nullptr;
  int64_t len = 0;   // elements
  bool present = false;
};

// Product of non-negative factors; false when a factor is negative (the library rejects those itself and
// no buffer size follows from them). Saturates at INT64_MAX, which no typed array reaches.
bool Need(std::initializer_list<int64_t> factors, int64_t* out) {
  int64_t acc = 1;
  for (int64_t f : factors) {
    if (f < 0) return false;
    if (f != 0 && acc > std::numeric_limits<int64_t>::max() / f) {
      acc = std::numeric_limits<int64_t>::max();
    } else {
      acc *= f;
    }
  }
  *out = acc;
  return true;
}

// ------------------------------------------------------------------------------------------------
// One call: argument access with first-error recording.
// ------------------------------------------------------------------------------------------------
class Call {
 public:
  Call(const Napi::CallbackInfo& info, const char* fn)
      : info_(info), env_(info.Env()), b_(static_cast<Binding*>(info.Data())), fn_(fn) {}

  Napi::Env env() const { return env_; }
  Binding* binding() const { return b_; }
  bool ok() const { return !failed_; }

  void Fail(const std::string& msg) {
    if (failed_) return;
    failed_ = true;
    msg_ = std::string(fn_) + ": " + msg;
  }
  void Fail(const char* msg) { Fail(std::string(msg)); }

  // Reports the first recorded error as HWKV_ERR_INVALID_ARGUMENT.
  Napi::Value Reject() { return RejectWith(HWKV_ERR_INVALID_ARGUMENT, msg_); }
  Napi::Value RejectWith(hwkv_status st, const std::string& msg) {
    b_->addon_error = msg;
    b_->addon_error_active = true;
    return Napi::Number::New(env_, static_cast<double>(st));
  }
  // Call this right before entering the library.
  void Enter() { b_->addon_error_active = false; }
  Napi::Value Status(hwkv_status st) { return Napi::Number::New(env_, static_cast<double>(st)); }

  // ---- scalars
  double Number(size_t i, const char* name) {
    Napi::Value v = info_[i];
    if (!v.IsNumber()) {
      Fail(Format("%s must be a number, got %s", name, Describe(v).c_str()));
      return 0;
    }
    return v.As<Napi::Number>().DoubleValue();
  }
  int32_t I32(size_t i, const char* name) {
    if (failed_) return 0;
    double d = Number(i, name);
    if (failed_) return 0;
    if (!(std::trunc(d) == d) || d < -2147483648.0 || d > 2147483647.0) {
      Fail(Format("%s must be an int32 integer, got %.17g", name, d));
      return 0;
    }
    return static_cast<int32_t>(d);
  }
  int64_t I64(size_t i, const char* name) {
    if (failed_) return 0;
    double d = Number(i, name);
    if (failed_) return 0;
    if (!(std::trunc(d) == d) || std::fabs(d) > 9007199254740991.0) {
      Fail(Format("%s must be a safe integer, got %.17g", name, d));
      return 0;
    }
    return static_cast<int64_t>(d);
  }
  float F32(size_t i, const char* name) {
    if (failed_) return 0;
    return static_cast<float>(Number(i, name));
  }

  // ---- typed arrays (zero copy)
  template <class T>
  Span<T> Array(size_t i, const char* name, napi_typedarray_type want, bool nullable) {
    Span<T> s;
    if (failed_) return s;
    Napi::Value v = info_[i];
    if (nullable && (v.IsNull() || v.IsUndefined())) return s;
    if (!v.IsTypedArray()) {
      Fail(Format("%s must be a %s%s, got %s", name, TypeName(want), nullable ? " or null" : "", Describe(v).c_str()));
      return s;
    }
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value ab;
    size_t offset = 0;
    if (napi_get_typedarray_info(env_, v, &type, &length, &data, &ab, &offset) != napi_ok) {
      Fail(Format("%s: cannot read typed array", name));
      return s;
    }
    if (type != want) {
      Fail(Format("%s must be a %s, got a %s", name, TypeName(want), TypeName(type)));
      return s;
    }
    if (data == nullptr) {
      if (length != 0) {
        Fail(Format("%s: typed array has no backing store (detached?)", name));
        return s;
      }
      data = g_empty;
    }
    s.data = static_cast<T*>(data);
    s.len = static_cast<int64_t>(length);
    s.present = true;
    return s;
  }
  Span<float> F32Array(size_t i, const char* name, bool nullable = false) {
    return Array<float>(i, name, napi_float32_array, nullable);
  }
  Span<int32_t> I32Array(size_t i, const char* name, bool nullable = false) {
    return Array<int32_t>(i, name, napi_int32_array, nullable);
  }

  // Requires arr.len >= need (when the array is present).
  template <class T>
  void AtLeast(const Span<T>& arr, int64_t need, const char* name, const char* what) {
    if (failed_ || !arr.present) return;
    if (arr.len < need) {
      Fail(Format("%s has %" PRId64 " elements, needs at least %" PRId64 " (%s)", name, arr.len, need, what));
    }
  }

  // ---- parameter structs
  // Reads a Float64Array(ROPE_PARAMS_LEN) into *out; returns false when null (nullable) or on error.
  bool Rope(size_t i, hwkv_rope_params* out, bool nullable) {
    Span<double> a = Array<double>(i, "rp", napi_float64_array, nullable);
    if (failed_ || !a.present) return false;
    if (a.len < static_cast<int64_t>(kRopeParamsLen)) {
      Fail(Format("rp has %" PRId64 " elements, needs %zu (ROPE_PARAMS_LEN)", a.len, kRopeParamsLen));
      return false;
    }
    static const char* const names[kRopeParamsLen] = {
        "head_dim", "rotary_dim", "style", "scaling", "theta", "factor", "low_freq_factor", "high_freq_factor",
        "original_max_position", "beta_fast", "beta_slow", "yarn_truncate"};
    std::memset(out, 0, sizeof *out);
    int32_t ints[5];
    const size_t int_idx[5] = {0, 1, 2, 3, 11};
    for (int k = 0; k < 5; ++k) {
      double d = a.data[int_idx[k]];
      if (!(std::trunc(d) == d) || d < -2147483648.0 || d > 2147483647.0) {
        Fail(Format("rp[%zu] (%s) must be an int32 integer, got %.17g", int_idx[k], names[int_idx[k]], d));
        return false;
      }
      ints[k] = static_cast<int32_t>(d);
    }
    out->head_dim = ints[0];
    out->rotary_dim = ints[1];
    out->style = ints[2];
    out->scaling = ints[3];
    out->theta = a.data[4];
    out->factor = a.data[5];
    out->low_freq_factor = a.data[6];
    out->high_freq_factor = a.data[7];
    out->original_max_position = a.data[8];
    out->beta_fast = a.data[9];
    out->beta_slow = a.data[10];
    out->yarn_truncate = ints[4];
    out->reserved = 0;
    return true;
  }

  bool StoreParams(size_t i, hwkv_store_params* out) {
    Span<double> a = Array<double>(i, "sp", napi_float64_array, false);
    if (failed_) return false;
    if (a.len < static_cast<int64_t>(kStoreParamsLen)) {
      Fail(Format("sp has %" PRId64 " elements, needs %zu (STORE_PARAMS_LEN)", a.len, kStoreParamsLen));
      return false;
    }
    static const char* const names[kStoreParamsLen] = {"n_layer", "n_kv_head", "head_dim", "head_dim_v",
                                                        "page_tokens", "dtype", "max_bytes"};
    int32_t ints[6];
    for (size_t k = 0; k < 6; ++k) {
      double d = a.data[k];
      if (!(std::trunc(d) == d) || d < -2147483648.0 || d > 2147483647.0) {
        Fail(Format("sp[%zu] (%s) must be an int32 integer, got %.17g", k, names[k], d));
        return false;
      }
      ints[k] = static_cast<int32_t>(d);
    }
    double mb = a.data[6];
    if (!(std::trunc(mb) == mb) || std::fabs(mb) > 9007199254740991.0) {
      Fail(Format("sp[6] (max_bytes) must be a safe integer, got %.17g", mb));
      return false;
    }
    std::memset(out, 0, sizeof *out);
    out->n_layer = ints[0];
    out->n_kv_head = ints[1];
    out->head_dim = ints[2];
    out->head_dim_v = ints[3];
    out->page_tokens = ints[4];
    out->dtype = ints[5];
    out->max_bytes = static_cast<int64_t>(mb);
    return true;
  }

  // A live store created by this binding's table.
  StoreBox* Store(size_t i) {
    if (failed_) return nullptr;
    Napi::Value v = info_[i];
    if (!v.IsExternal()) {
      Fail(Format("s must be a store handle from storeCreate, got %s", Describe(v).c_str()));
      return nullptr;
    }
    StoreBox* box = v.As<Napi::External<StoreBox>>().Data();
    {
      std::lock_guard<std::mutex> lock(RegistryMutex());
      if (Registry().count(box) == 0) {
        Fail("s is not a store handle of this addon");
        return nullptr;
      }
    }
    if (box->api != b_->api) {
      Fail("s belongs to another backend (a store is only usable with the RawApi that created it)");
      return nullptr;
    }
    if (box->store == nullptr) {
      Fail("s was already freed with storeFree");
      return nullptr;
    }
    return box;
  }

  // For a table member a backend left NULL.
  Napi::Value Unsupported() {
    return RejectWith(HWKV_ERR_UNSUPPORTED, std::string(fn_) + ": not implemented by this backend");
  }

  const Napi::CallbackInfo& info() const { return info_; }

 private:
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  Binding* b_;
  const char* fn_;
  bool failed_ = false;
  std::string msg_;
};

// Wraps a method body so that no C++ exception (std::bad_alloc from a string) escapes into V8.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Method(const Napi::CallbackInfo& info) {
  Binding* b = static_cast<Binding*>(info.Data());
  hwkv_status st = HWKV_ERR_INTERNAL;
  try {
    return F(info);
  } catch (const std::bad_alloc&) {
    st = HWKV_ERR_OUT_OF_MEMORY;
    b->addon_error = "out of host memory in the native addon";
  } catch (const std::exception& e) {
    b->addon_error = std::string("internal error in the native addon: ") + e.what();
  } catch (...) {
    b->addon_error = "internal error in the native addon";
  }
  b->addon_error_active = true;
  return Napi::Number::New(info.Env(), static_cast<double>(st));
}

// ------------------------------------------------------------------------------------------------
// Methods (one per hwkv_api member, in table order)
// ------------------------------------------------------------------------------------------------
#define HWKV_API_OF(c) const hwkv_api* api = (c).binding()->api
#define HWKV_REQUIRE(c, member) \
  if (api->member == nullptr) return (c).Unsupported()
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
  if (st != HWKV_OK) {
    if (s != nullptr) api->store_free(s);
    delete box;
    return c.Status(st);
  }
  if (s == nullptr) {
    delete box;
    return c.RejectWith(HWKV_ERR_INTERNAL, "storeCreate: the library returned OK but no store");
  }
  box->store = s;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    Registry().insert(box);
  }
  Napi::External<StoreBox> ext = Napi::External<StoreBox>::New(c.env(), box, FinalizeStore);
  info[1].As<Napi::Array>().Set(uint32_t{0}, ext);
  return c.Status(HWKV_OK);
}

// storeFree(s): frees now; a second call (or GC later) does nothing. Bad handles are ignored (lastError says).
Napi::Value StoreFree(const Napi::CallbackInfo& info) {
  Call c(info, "storeFree");
  Napi::Value v = info[0];
  if (v.IsNull() || v.IsUndefined()) return c.env().Undefined();
  if (v.IsExternal()) {
    StoreBox* box = v.As<Napi::External<StoreBox>>().Data();
    std::lock_guard<std::mutex> lock(RegistryMutex());
    if (Registry().count(box) != 0 && box->store == nullptr) return c.env().Undefined();  // double free: no-op
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
  if (rc == HWKV_OK) {
    out.data[0] = static_cast<double>(st.bytes_reserved);
    out.data[1] = static_cast<double>(st.bytes_in_use);
    out.data[2] = st.pages_in_use;
    out.data[3] = st.pages_free;
    out.data[4] = st.blocks_live;
  }
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

// Checks a CSR index array of n_seq + 1 entries: non-negative, non-decreasing, last <= limit.
void CheckIndptr(Call& c, const Span<int32_t>& ip, int32_t n_seq, int64_t limit, const char* name,
                 const char* target) {
  if (!c.ok()) return;
  for (int32_t s = 0; s <= n_seq; ++s) {
    int32_t v = ip.data[s];
    if (v < 0 || (s > 0 && v < ip.data[s - 1])) {
      c.Fail(Format("%s must be non-negative and non-decreasing (%s[%d] = %d)", name, name, s, v));
      return;
    }
  }
  if (ip.data[n_seq] > limit) {
    c.Fail(Format("%s[%d] = %d exceeds %s.length = %" PRId64, name, n_seq, ip.data[n_seq], target, limit));
  }
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
  return o;
}

}  // namespace hwkv_napi
