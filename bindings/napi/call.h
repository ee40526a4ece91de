// call.h — internals shared by the addon's RawApi translation units (raw_api.cpp: hwkv_api, model_api.cpp:
// hwkv_model_api): store handles and their registry, message formatting, typed-array access with
// first-error recording (Call), and the exception guard for methods (Method).
#ifndef HWKV_NAPI_CALL_H
#define HWKV_NAPI_CALL_H

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>

#include "../flat_params.h"
#include "binding.h"

namespace hwkv_napi {

constexpr size_t kRopeParamsLen = hwkv_flat::kRopeLen;
constexpr size_t kStoreParamsLen = hwkv_flat::kStoreLen;

// ------------------------------------------------------------------------------------------------
// Store handles
// ------------------------------------------------------------------------------------------------
struct StoreBox {
  const hwkv_api* api;
  hwkv_store_t* store;  // nullptr once freed
  hwkv_store_params params;
  // Set while a modelForwardAsync runs on the store (JS thread only): every other use is rejected, and a
  // storeFree in the meantime only sets free_pending (the forward's completion frees the store).
  int busy = 0;
  bool free_pending = false;
};

// Leaked on purpose: finalizers may run during environment teardown, after static destructors would.
inline std::mutex& RegistryMutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}
inline std::unordered_set<StoreBox*>& Registry() {
  static auto* s = new std::unordered_set<StoreBox*>;
  return *s;
}

inline void FinalizeStore(Napi::Env, StoreBox* box) {
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
inline std::string Format(const char* fmt, ...) HWKV_NAPI_PRINTF_ATTR;

inline std::string Format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return fmt;
  return std::string(buf, static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1);
}

inline const char* TypeName(napi_typedarray_type t) {
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

inline std::string Describe(const Napi::Value& v) {
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
alignas(64) inline unsigned char g_empty[64];

template <class T>
struct Span {
  T* data = nullptr;
  int64_t len = 0;   // elements
  bool present = false;
};

// Product of non-negative factors; false when a factor is negative (the library rejects those itself and
// no buffer size follows from them). Saturates at INT64_MAX, which no typed array reaches.
inline bool Need(std::initializer_list<int64_t> factors, int64_t* out) {
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

  // ---- parameter structs (layouts: bindings/flat_params.h)
  // The Float64Array argument i holding a flat struct of n >= need fields (`what` names the TS constant, e.g.
  // "STORE_PARAMS_LEN"); every integer field checked. Returns the doubles, or nullptr (null when nullable, or
  // an error recorded). *n_out (optional) receives the length.
  const double* Flat(size_t i, const char* arr, const hwkv_flat::Field* fields, size_t n, size_t need, const char* what,
                     bool nullable, size_t* n_out = nullptr) {
    Span<double> a = Array<double>(i, arr, napi_float64_array, nullable);
    if (failed_ || !a.present) return nullptr;
    if (a.len < static_cast<int64_t>(need)) {
      Fail(Format("%s has %" PRId64 " elements, needs %zu (%s)", arr, a.len, need, what));
      return nullptr;
    }
    const size_t have = std::min(n, static_cast<size_t>(a.len));
    if (!CheckFlat(a.data, fields, have, arr, 0, "")) return nullptr;
    if (n_out) *n_out = have;
    return a.data;
  }

  // Checks the integer fields of a[0..n) (field k named arr[base + k] in messages, "(prefix name)").
  bool CheckFlat(const double* a, const hwkv_flat::Field* fields, size_t n, const char* arr, size_t base,
                 const char* prefix) {
    const int k = hwkv_flat::bad_field(a, fields, n);
    if (k < 0) return true;
    Fail(Format("%s[%zu] (%s%s) must be %s, got %.17g", arr, base + k, prefix, fields[k].name,
                hwkv_flat::kind_text(fields[k].kind), a[k]));
    return false;
  }

  // Reads a Float64Array(ROPE_PARAMS_LEN) into *out; returns false when null (nullable) or on error.
  bool Rope(size_t i, hwkv_rope_params* out, bool nullable) {
    const double* r = Flat(i, "rp", hwkv_flat::kRope, hwkv_flat::kRopeLen, hwkv_flat::kRopeLen, "ROPE_PARAMS_LEN", nullable);
    if (r == nullptr) return false;
    *out = hwkv_flat::rope(r);
    return true;
  }

  bool StoreParams(size_t i, hwkv_store_params* out) {
    const double* a =
        Flat(i, "sp", hwkv_flat::kStore, hwkv_flat::kStoreLen, hwkv_flat::kStoreLen, "STORE_PARAMS_LEN", false);
    if (a == nullptr) return false;
    *out = hwkv_flat::store(a);
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
    if (box->store == nullptr || box->free_pending) {
      Fail("s was already freed with storeFree");
      return nullptr;
    }
    if (box->busy != 0) {
      Fail("s is in use by a modelForwardAsync that has not resolved yet");
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

// Hands a handle the library just created (status st, handle h) to JS. On failure frees whatever the library
// returned and deletes the box; on success stores h in box->*slot, registers the box (so a foreign External is
// recognised later) and puts an External with `finalize` into out[0]. One path for stores and models.
template <class Box, class Handle, class FreeFn>
Napi::Value AdoptHandle(Call& c, hwkv_status st, Box* box, Handle* h, Handle* Box::*slot, FreeFn free_fn, std::mutex& mu,
                        std::unordered_set<Box*>& registry, void (*finalize)(Napi::Env, Box*), Napi::Value out,
                        const char* fn, const char* what) {
  if (st != HWKV_OK) {
    if (h != nullptr) free_fn(h);
    delete box;
    return c.Status(st);
  }
  if (h == nullptr) {
    delete box;
    return c.RejectWith(HWKV_ERR_INTERNAL, std::string(fn) + ": the library returned OK but no " + what);
  }
  box->*slot = h;
  {
    std::lock_guard<std::mutex> lock(mu);
    registry.insert(box);
  }
  out.As<Napi::Array>().Set(uint32_t{0}, Napi::External<Box>::New(c.env(), box, finalize));
  return c.Status(HWKV_OK);
}

// Checks a CSR index array of n_seq + 1 entries: non-negative, non-decreasing, last <= limit.
inline void CheckIndptr(Call& c, const Span<int32_t>& ip, int32_t n_seq, int64_t limit, const char* name,
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

}  // namespace hwkv_napi

#endif
