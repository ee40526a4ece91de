// model_api.cpp — RawModelApi (ts/backend/raw.ts, RawApi.model) over one hwkv_model_api table.
//
// The same rules as raw_api.cpp: arguments are type-checked, typed arrays are passed by pointer (zero copy)
// and their lengths checked wherever the call implies them, nothing throws for bad input (status
// HWKV_ERR_INVALID_ARGUMENT + the addon's message in lastError()).
//
// One code path for every table: the CPU core's hwkv_cpu_model_api() and a CUDA library's
// hwkv_cuda_model_api() (addon.cpp attaches .model only where the library has one). The Binding pairs the
// model table with the hwkv_api table of the same library; a store passed to a model must have been created
// by that hwkv_api table (a CPU store cannot reach a CUDA model or the other way round).
//
// Model handles: a Napi::External around a ModelBox, registered process-wide like StoreBox (a foreign
// External is recognised and rejected). modelFree frees now and marks the box; the finalizer frees a model
// that was never freed; freeing twice is a no-op.
//
// modelForwardAsync runs model_forward on the libuv thread pool. Until it completes, the model and the store
// are marked busy (every other call on them is rejected; modelFree / storeFree only mark them and the
// completion frees them), and references keep the handles and all typed arrays alive. The core's last
// error is thread-local, so the worker copies the message and the completion makes it the addon-side
// last error: after the promise resolves with a non-zero status, lastError() returns it.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "call.h"

namespace hwkv_napi {
namespace {

constexpr size_t kModelParamsLen = hwkv_flat::kModelLen + hwkv_flat::kRopeLen;
constexpr size_t kModelInfoLen = hwkv_flat::kModelInfoLen;

// ------------------------------------------------------------------------------------------------
// Model handles
// ------------------------------------------------------------------------------------------------
struct ModelBox {
  const hwkv_model_api* mapi;  // the table that made the model
  const hwkv_api* api;         // the store table of the same library
  hwkv_model_t* model;         // nullptr once freed
  int32_t n_vocab;
  int busy = 0;                // a modelForwardAsync is running (JS thread only)
  bool free_pending = false;   // modelFree while busy: freed when the forward completes
};

std::mutex& ModelRegistryMutex() {
  static std::mutex* m = new std::mutex;  // leaked on purpose (finalizers may run at teardown)
  return *m;
}
std::unordered_set<ModelBox*>& ModelRegistry() {
  static auto* s = new std::unordered_set<ModelBox*>;
  return *s;
}
bool IsModelBox(ModelBox* box) {
  std::lock_guard<std::mutex> lock(ModelRegistryMutex());
  return ModelRegistry().count(box) != 0;
}

void FinalizeModel(Napi::Env, ModelBox* box) {
  {
    std::lock_guard<std::mutex> lock(ModelRegistryMutex());
    ModelRegistry().erase(box);
  }
  if (box->model != nullptr) box->mapi->model_free(box->model);
  box->model = nullptr;
  delete box;
}

// A live, idle model of this binding's table (argument i), or nullptr after c.Fail.
ModelBox* GetModel(Call& c, size_t i) {
  if (!c.ok()) return nullptr;
  Napi::Value v = c.info()[i];
  if (!v.IsExternal()) {
    c.Fail(Format("m must be a model handle from modelCreate, got %s", Describe(v).c_str()));
    return nullptr;
  }
  ModelBox* box = v.As<Napi::External<ModelBox>>().Data();
  if (!IsModelBox(box)) {
    c.Fail("m is not a model handle of this addon");
    return nullptr;
  }
  if (box->mapi != c.binding()->model) {
    c.Fail("m belongs to another backend (a model is only usable with the RawApi that created it)");
    return nullptr;
  }
  if (box->model == nullptr || box->free_pending) {
    c.Fail("m was already freed with modelFree");
    return nullptr;
  }
  if (box->busy != 0) {
    c.Fail("m is in use by a modelForwardAsync that has not resolved yet (one forward at a time per model)");
    return nullptr;
  }
  return box;
}

bool IsSafeInt(double d) { return hwkv_flat::fits(d, hwkv_flat::I53); }

// Requires arr.len == want.
template <class T>
void Exactly(Call& c, const Span<T>& arr, int64_t want, const char* name, const char* what) {
  if (!c.ok() || !arr.present) return;
  if (arr.len != want) {
    c.Fail(Format("%s has %" PRId64 " elements, needs exactly %" PRId64 " (%s)", name, arr.len, want, what));
  }
}

#define HWKV_MODEL_OF(c) const hwkv_model_api* mapi = (c).binding()->model
#define HWKV_MREQUIRE(c, member) \
  if (mapi->member == nullptr) return (c).Unsupported()
#define HWKV_CHECKED(c) \
  if (!(c).ok()) return (c).Reject()

// ------------------------------------------------------------------------------------------------
// modelCreate(mp, names, types, nDims, ne, files, offsets, nbytes, mode, out)
// ------------------------------------------------------------------------------------------------
bool DecodeModelParams(Call& c, const Span<double>& a, hwkv_model_params* p) {
  if (!c.ok()) return false;
  if (a.len < static_cast<int64_t>(kModelParamsLen)) {
    c.Fail(Format("mp has %" PRId64 " elements, needs %zu (MODEL_PARAMS_LEN)", a.len, kModelParamsLen));
    return false;
  }
  if (!c.CheckFlat(a.data, hwkv_flat::kModel, hwkv_flat::kModelLen, "mp", 0, "") ||
      !c.CheckFlat(a.data + hwkv_flat::kModelLen, hwkv_flat::kRope, hwkv_flat::kRopeLen, "mp", hwkv_flat::kModelLen,
                   "rope "))
    return false;
  *p = hwkv_flat::model(a.data);
  return true;
}

Napi::Value ModelCreate(const Napi::CallbackInfo& info) {
  Call c(info, "modelCreate");
  HWKV_MODEL_OF(c);
  HWKV_MREQUIRE(c, model_create);
  Span<double> mp = c.Array<double>(0, "mp", napi_float64_array, false);
  hwkv_model_params params;
  DecodeModelParams(c, mp, &params);
  if (c.ok() && !info[1].IsArray()) c.Fail(Format("names must be an Array of strings, got %s", Describe(info[1]).c_str()));
  int64_t n = c.ok() ? static_cast<int64_t>(info[1].As<Napi::Array>().Length()) : 0;
  if (c.ok() && n > 2147483647) c.Fail("names has more than 2^31-1 entries");
  Span<int32_t> types = c.I32Array(2, "types");
  Span<int32_t> n_dims = c.I32Array(3, "nDims");
  Span<double> ne = c.Array<double>(4, "ne", napi_float64_array, false);
  Span<double> offsets = c.Array<double>(6, "offsets", napi_float64_array, false);
  Span<double> nbytes = c.Array<double>(7, "nbytes", napi_float64_array, false);
  int32_t mode = c.I32(8, "mode");
  if (c.ok() && !info[9].IsArray()) c.Fail("out must be an Array (out[0] receives the handle)");
  Exactly(c, types, n, "types", "one per name");
  Exactly(c, n_dims, n, "nDims", "one per name");
  Exactly(c, ne, 4 * n, "ne", "4 per name");
  Exactly(c, offsets, n, "offsets", "one per name");
  Exactly(c, nbytes, n, "nbytes", "one per name");
  // files: FILE mode needs one string per tensor; other modes ignore it (an Array, null or undefined).
  const bool file_mode = mode == HWKV_MODEL_FILE;
  Napi::Value files_v = info[5];
  if (c.ok()) {
    if (files_v.IsArray()) {
      if (file_mode && static_cast<int64_t>(files_v.As<Napi::Array>().Length()) != n) {
        c.Fail(Format("files has %u entries, needs exactly %" PRId64 " (one per name) in FILE mode",
                      files_v.As<Napi::Array>().Length(), n));
      }
    } else if (file_mode || !(files_v.IsNull() || files_v.IsUndefined())) {
      c.Fail(Format("files must be an Array of strings, got %s", Describe(files_v).c_str()));
    }
  }
  HWKV_CHECKED(c);
  if (mapi->model_free == nullptr) return c.Unsupported();

  std::vector<std::string> name_s(static_cast<size_t>(n)), file_s(file_mode ? static_cast<size_t>(n) : 0);
  std::vector<hwkv_tensor_desc> descs(static_cast<size_t>(n));
  Napi::Array names_a = info[1].As<Napi::Array>();
  for (int64_t i = 0; i < n && c.ok(); ++i) {
    Napi::Value nv = names_a.Get(static_cast<uint32_t>(i));
    if (!nv.IsString()) {
      c.Fail(Format("names[%" PRId64 "] must be a string, got %s", i, Describe(nv).c_str()));
      break;
    }
    name_s[i] = nv.As<Napi::String>().Utf8Value();
    if (name_s[i].find('\0') != std::string::npos) c.Fail(Format("names[%" PRId64 "] contains a NUL character", i));
    if (file_mode && c.ok()) {
      Napi::Value fv = files_v.As<Napi::Array>().Get(static_cast<uint32_t>(i));
      if (!fv.IsString()) {
        c.Fail(Format("files[%" PRId64 "] must be a string (FILE mode), got %s", i, Describe(fv).c_str()));
        break;
      }
      file_s[i] = fv.As<Napi::String>().Utf8Value();
      if (file_s[i].find('\0') != std::string::npos) c.Fail(Format("files[%" PRId64 "] contains a NUL character", i));
    }
    hwkv_tensor_desc& d = descs[i];
    d.type = types.data[i];
    d.n_dims = n_dims.data[i];
    for (int k = 0; k < 4 && c.ok(); ++k) {
      const double x = ne.data[4 * i + k];
      if (!IsSafeInt(x)) c.Fail(Format("ne[%" PRId64 "] (tensor %" PRId64 ", dim %d) must be a safe integer, got %.17g",
                                       4 * i + k, i, k, x));
      d.ne[k] = static_cast<int64_t>(x);
    }
    if (c.ok() && !IsSafeInt(offsets.data[i]))
      c.Fail(Format("offsets[%" PRId64 "] must be a safe integer, got %.17g", i, offsets.data[i]));
    if (c.ok() && !IsSafeInt(nbytes.data[i]))
      c.Fail(Format("nbytes[%" PRId64 "] must be a safe integer, got %.17g", i, nbytes.data[i]));
    d.offset = static_cast<int64_t>(offsets.data[i]);
    d.nbytes = static_cast<int64_t>(nbytes.data[i]);
  }
  HWKV_CHECKED(c);
  for (int64_t i = 0; i < n; ++i) {
    descs[i].name = name_s[i].c_str();
    descs[i].file = file_mode ? file_s[i].c_str() : nullptr;
  }

  auto* box = new ModelBox{mapi, c.binding()->api, nullptr, params.n_vocab};
  hwkv_model_t* m = nullptr;
  c.Enter();
  hwkv_status st = mapi->model_create(&params, descs.empty() ? nullptr : descs.data(), static_cast<int32_t>(n), mode, &m);
  return AdoptHandle(c, st, box, m, &ModelBox::model, mapi->model_free, ModelRegistryMutex(), ModelRegistry(), FinalizeModel,
                     info[9], "modelCreate", "model");
}

// modelFree(m): frees now (or, while a modelForwardAsync runs on it, when that completes); a second call (or
// GC later) does nothing. Bad handles are ignored (lastError says).
Napi::Value ModelFree(const Napi::CallbackInfo& info) {
  Call c(info, "modelFree");
  Napi::Value v = info[0];
  if (v.IsNull() || v.IsUndefined()) return c.env().Undefined();
  if (v.IsExternal()) {
    ModelBox* box = v.As<Napi::External<ModelBox>>().Data();
    if (IsModelBox(box) && box->mapi == c.binding()->model) {
      if (box->model == nullptr || box->free_pending) return c.env().Undefined();  // double free: no-op
      if (box->busy != 0) {
        box->free_pending = true;
        return c.env().Undefined();
      }
    }
  }
  ModelBox* box = GetModel(c, 0);
  if (box == nullptr) {
    c.Reject();
    return c.env().Undefined();
  }
  hwkv_model_t* m = box->model;
  box->model = nullptr;  // mark first: the finalizer and later calls see it freed
  c.Enter();
  box->mapi->model_free(m);
  return c.env().Undefined();
}

// modelUpload(m, index, data, offset)
Napi::Value ModelUpload(const Napi::CallbackInfo& info) {
  Call c(info, "modelUpload");
  HWKV_MODEL_OF(c);
  HWKV_MREQUIRE(c, model_upload);
  ModelBox* box = GetModel(c, 0);
  int32_t index = c.I32(1, "index");
  Span<uint8_t> data = c.Array<uint8_t>(2, "data", napi_uint8_array, false);
  int64_t offset = c.I64(3, "offset");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(mapi->model_upload(box->model, index, data.data, offset, data.len));
}

// modelInfo(m, out[MODEL_INFO_LEN]): [weight_bytes, scratch_bytes, n_tensors, uploads_pending, mapped, n_threads]
Napi::Value ModelInfo(const Napi::CallbackInfo& info) {
  Call c(info, "modelInfo");
  HWKV_MODEL_OF(c);
  HWKV_MREQUIRE(c, model_info);
  ModelBox* box = GetModel(c, 0);
  Span<double> out = c.Array<double>(1, "out", napi_float64_array, false);
  c.AtLeast(out, static_cast<int64_t>(kModelInfoLen), "out", "MODEL_INFO_LEN");
  HWKV_CHECKED(c);
  hwkv_model_info mi;
  std::memset(&mi, 0, sizeof mi);
  c.Enter();
  hwkv_status st = mapi->model_info(box->model, &mi);
  if (st == HWKV_OK) hwkv_flat::put(mi, out.data);
  return c.Status(st);
}

// modelSetThreads(m, nThreads)
Napi::Value ModelSetThreads(const Napi::CallbackInfo& info) {
  Call c(info, "modelSetThreads");
  HWKV_MODEL_OF(c);
  HWKV_MREQUIRE(c, model_set_threads);
  ModelBox* box = GetModel(c, 0);
  int32_t n = c.I32(1, "nThreads");
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(mapi->model_set_threads(box->model, n));
}

// modelCaptureKv(m, tokens Int32Array[n], kPre Float32Array[nLayer*n*kvd], v Float32Array[same]): the K/V tap.
// UNSUPPORTED where the library's table predates the member or leaves it NULL (CUDA).
Napi::Value ModelCaptureKv(const Napi::CallbackInfo& info) {
  Call c(info, "modelCaptureKv");
  HWKV_MODEL_OF(c);
  if (mapi->size < offsetof(hwkv_model_api, model_capture_kv) + sizeof(mapi->model_capture_kv) ||
      mapi->model_capture_kv == nullptr) {
    return c.Unsupported();
  }
  ModelBox* box = GetModel(c, 0);
  Span<int32_t> tokens = c.Array<int32_t>(1, "tokens", napi_int32_array, false);
  Span<float> k = c.Array<float>(2, "kPre", napi_float32_array, false);
  Span<float> v = c.Array<float>(3, "v", napi_float32_array, false);
  HWKV_CHECKED(c);
  if (k.len != v.len) {
    c.Fail("kPre and v must have the same length");
    return c.Reject();
  }
  hwkv_model_info mi;
  std::memset(&mi, 0, sizeof mi);
  c.Enter();
  hwkv_status st = mapi->model_info(box->model, &mi);
  if (st != HWKV_OK) return c.Status(st);
  const int64_t want = static_cast<int64_t>(mi.params.n_layer) * tokens.len * mi.params.n_kv_head * mi.params.head_dim;
  if (k.len != want) {
    c.Fail(Format("kPre and v need n_layer*n_tok*n_kv_head*head_dim = %" PRId64 " elements, got %" PRId64, want, k.len));
    return c.Reject();
  }
  return c.Status(mapi->model_capture_kv(box->model, tokens.data, static_cast<int32_t>(tokens.len), k.data, v.data));
}

// ------------------------------------------------------------------------------------------------
// modelForward / modelForwardAsync (m, s, logitsMode, viewIndptr, viewBlocks, tokIndptr, tokens, logits | null)
// ------------------------------------------------------------------------------------------------
struct ForwardArgs {
  ModelBox* model = nullptr;
  StoreBox* store = nullptr;
  hwkv_forward_batch batch{};
  float* logits = nullptr;
  int64_t n_logits = 0;
};

// Parses and checks the arguments; false after c.Fail.
bool ParseForward(Call& c, ForwardArgs* fa) {
  ModelBox* mb = GetModel(c, 0);
  StoreBox* sb = c.Store(1);
  int32_t logits_mode = c.I32(2, "logitsMode");
  Span<int32_t> view_indptr = c.I32Array(3, "viewIndptr");
  Span<int32_t> view_blocks = c.I32Array(4, "viewBlocks");
  Span<int32_t> tok_indptr = c.I32Array(5, "tokIndptr");
  Span<int32_t> tokens = c.I32Array(6, "tokens");
  Span<float> logits = c.F32Array(7, "logits", true);
  if (c.ok() && sb->api != mb->api) {
    c.Fail("s and m belong to different backends (the store must come from the same RawApi as the model)");
  }
  int32_t n_seq = 0;
  if (c.ok()) {
    if (view_indptr.len < 1) c.Fail("viewIndptr must have n_seq + 1 >= 1 elements");
    else if (view_indptr.len - 1 > 2147483647) c.Fail("viewIndptr is too long");
    else n_seq = static_cast<int32_t>(view_indptr.len - 1);
  }
  if (c.ok() && tok_indptr.len != static_cast<int64_t>(n_seq) + 1) {
    c.Fail(Format("tokIndptr has %" PRId64 " elements, needs n_seq + 1 = %d (n_seq = viewIndptr.length - 1)",
                  tok_indptr.len, n_seq + 1));
  }
  CheckIndptr(c, view_indptr, n_seq, view_blocks.len, "viewIndptr", "viewBlocks");
  CheckIndptr(c, tok_indptr, n_seq, tokens.len, "tokIndptr", "tokens");
  int64_t n_tok = 0;
  if (c.ok()) {
    n_tok = tok_indptr.data[n_seq];
    if (tokens.len != n_tok) {
      c.Fail(Format("tokens has %" PRId64 " elements, needs exactly tokIndptr[n_seq] = %" PRId64, tokens.len, n_tok));
    }
  }
  if (c.ok()) {
    int64_t rows = -1;
    const char* what = "";
    if (logits_mode == HWKV_LOGITS_LAST) {
      rows = n_seq;
      what = "n_seq*n_vocab (logitsMode LAST)";
    } else if (logits_mode == HWKV_LOGITS_ALL) {
      rows = n_tok;
      what = "n_tok*n_vocab (logitsMode ALL)";
    }
    if (rows >= 0) {
      if (!logits.present) c.Fail("logits must be a Float32Array unless logitsMode is NONE");
      int64_t need;
      if (Need({rows, mb->n_vocab}, &need)) c.AtLeast(logits, need, "logits", what);
    }
  }
  if (!c.ok()) return false;
  fa->model = mb;
  fa->store = sb;
  fa->batch.n_seq = n_seq;
  fa->batch.logits_mode = logits_mode;
  fa->batch.view_indptr = view_indptr.data;
  fa->batch.view_blocks = view_blocks.data;
  fa->batch.tok_indptr = tok_indptr.data;
  fa->batch.tokens = tokens.data;
  fa->logits = logits.present ? logits.data : nullptr;
  fa->n_logits = logits.present ? logits.len : 0;
  return true;
}

Napi::Value ModelForward(const Napi::CallbackInfo& info) {
  Call c(info, "modelForward");
  HWKV_MODEL_OF(c);
  HWKV_MREQUIRE(c, model_forward);
  ForwardArgs fa;
  ParseForward(c, &fa);
  HWKV_CHECKED(c);
  c.Enter();
  return c.Status(mapi->model_forward(fa.model->model, fa.store->store, &fa.batch, fa.logits, fa.n_logits));
}

class ForwardWorker : public Napi::AsyncWorker {
 public:
  ForwardWorker(Napi::Env env, Binding* b, const ForwardArgs& fa, const Napi::CallbackInfo& info)
      : Napi::AsyncWorker(env, "hwkvModelForward"), deferred_(Napi::Promise::Deferred::New(env)), b_(b), fa_(fa) {
    // Keep the handles and every typed array alive until completion.
    for (size_t i = 0; i < 8; ++i) {
      Napi::Value v = info[i];
      if (v.IsObject() || v.IsExternal()) refs_.push_back(Napi::Reference<Napi::Value>::New(v, 1));
    }
    fa_.model->busy++;
    fa_.store->busy++;
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    const hwkv_model_api* mapi = fa_.model->mapi;
    status_ = mapi->model_forward(fa_.model->model, fa_.store->store, &fa_.batch, fa_.logits, fa_.n_logits);
    if (status_ != HWKV_OK) {
      // The core's message is thread-local: copy it here, on the thread that failed.
      try {
        const char* e = mapi->last_error != nullptr ? mapi->last_error() : nullptr;
        message_ = e != nullptr ? e : "";
      } catch (...) {
        message_.clear();
      }
    }
  }

  void OnOK() override { Finish(); }
  void OnError(const Napi::Error&) override { Finish(); }  // Execute never sets an error

 private:
  void Finish() {
    Napi::Env env = Env();
    ModelBox* mb = fa_.model;
    StoreBox* sb = fa_.store;
    if (--mb->busy == 0 && mb->free_pending && mb->model != nullptr) {
      hwkv_model_t* m = mb->model;
      mb->model = nullptr;
      mb->free_pending = false;
      mb->mapi->model_free(m);
    }
    if (--sb->busy == 0 && sb->free_pending && sb->store != nullptr) {
      hwkv_store_t* s = sb->store;
      sb->store = nullptr;
      sb->free_pending = false;
      sb->api->store_free(s);
    }
    if (status_ != HWKV_OK) {
      b_->addon_error = message_.empty() ? std::string("modelForwardAsync: failed with status ") + std::to_string(status_)
                                         : message_;
      b_->addon_error_active = true;
    }
    deferred_.Resolve(Napi::Number::New(env, static_cast<double>(status_)));
  }

  Napi::Promise::Deferred deferred_;
  Binding* b_;
  ForwardArgs fa_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
  hwkv_status status_ = HWKV_ERR_INTERNAL;
  std::string message_;
};

Napi::Value ResolvedStatus(Napi::Env env, double st) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Resolve(Napi::Number::New(env, st));
  return d.Promise();
}

// Always returns a Promise of the status; argument errors resolve at once (lastError() says why).
Napi::Value ModelForwardAsync(const Napi::CallbackInfo& info) {
  Binding* b = static_cast<Binding*>(info.Data());
  try {
    Call c(info, "modelForwardAsync");
    HWKV_MODEL_OF(c);
    if (mapi->model_forward == nullptr) return ResolvedStatus(c.env(), c.Unsupported().As<Napi::Number>().DoubleValue());
    ForwardArgs fa;
    if (!ParseForward(c, &fa)) return ResolvedStatus(c.env(), c.Reject().As<Napi::Number>().DoubleValue());
    auto* w = new ForwardWorker(c.env(), b, fa, info);
    Napi::Promise p = w->Promise();
    c.Enter();
    w->Queue();  // the worker deletes itself after completion
    return p;
  } catch (const std::bad_alloc&) {
    b->addon_error = "out of host memory in the native addon";
    b->addon_error_active = true;
    return ResolvedStatus(info.Env(), HWKV_ERR_OUT_OF_MEMORY);
  } catch (const std::exception& e) {
    b->addon_error = std::string("internal error in the native addon: ") + e.what();
  } catch (...) {
    b->addon_error = "internal error in the native addon";
  }
  b->addon_error_active = true;
  return ResolvedStatus(info.Env(), HWKV_ERR_INTERNAL);
}

#undef HWKV_MODEL_OF
#undef HWKV_MREQUIRE
#undef HWKV_CHECKED

}  // namespace

std::string CheckModelTable(const hwkv_model_api* api) {
  if (api == nullptr) return "no model function table";
  if (api->abi_version != HWKV_MODEL_ABI_VERSION) {
    return Format("model ABI version mismatch: library has %u, addon expects %d", api->abi_version,
                  HWKV_MODEL_ABI_VERSION);
  }
  // model_capture_kv was appended after ABI 1 shipped: older tables end before it (checked per call).
  if (api->size < offsetof(hwkv_model_api, model_capture_kv)) {
    return Format("model function table too small: library has %u bytes, addon expects %zu", api->size,
                  offsetof(hwkv_model_api, model_capture_kv));
  }
  if (api->last_error == nullptr || api->model_create == nullptr || api->model_free == nullptr) {
    return "model function table lacks last_error/model_create/model_free";
  }
  return "";
}

Napi::Object MakeRawModelApi(Napi::Env env, Binding* b) {
  Napi::Object o = Napi::Object::New(env);
  auto add = [&](const char* name, Napi::Function::Callback cb) {
    o.Set(name, Napi::Function::New(env, cb, name, b));
  };
  add("modelCreate", Method<ModelCreate>);
  add("modelFree", Method<ModelFree>);
  add("modelUpload", Method<ModelUpload>);
  add("modelInfo", Method<ModelInfo>);
  add("modelForward", Method<ModelForward>);
  add("modelForwardAsync", ModelForwardAsync);
  add("modelSetThreads", Method<ModelSetThreads>);
  add("modelCaptureKv", Method<ModelCaptureKv>);
  return o;
}

}  // namespace hwkv_napi
