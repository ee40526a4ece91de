// addon.cpp — the hogwild-kv Node-API addon (build/Release/hwkv.node).
//
// exports = {
//   cpu: RawApi,                       // the CPU core compiled into this addon (has setSimd; .model is
//                                      //   hwkv_cpu_model_api(), .quant hwkv_cpu_quant_api())
//   openCuda(libPath): RawApi,         // dlopen(libPath) + hwkv_cuda_api(&why); .model = hwkv_cuda_model_api(),
//                                      //   .quant = hwkv_cuda_quant_api() (each when the library exports it)
//                                      //   when the library exports it; throws Error with .code:
//                                      //   HWKV_BAD_ARGUMENT | HWKV_DLOPEN | HWKV_NO_SYMBOL | HWKV_NO_DEVICE | HWKV_ABI
//   cpuFeatures(): { avx2, fma, f16c, avx512f, sse42, model },
//   abiVersion: number,
// }
// Shared libraries are opened with RTLD_NOW | RTLD_LOCAL and never closed (handles are cached by path for
// the process lifetime: stores and tables point into them). The RawApi object of a library is cached per
// Node environment, so openCuda(path) twice gives the same object.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "binding.h"

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#endif

namespace hwkv_napi {
namespace {

// Per Node environment (main thread or worker).
struct AddonData {
  std::vector<std::unique_ptr<Binding>> bindings;       // alive as long as the env
  std::map<std::string, Napi::ObjectReference> cuda;    // libPath -> RawApi object
};

// ------------------------------------------------------------------------------------------------
// Dynamic loading (process-wide)
// ------------------------------------------------------------------------------------------------
struct LoadError {
  const char* code;
  std::string message;
};

std::mutex& DlMutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}
std::map<std::string, void*>& DlHandles() {
  static auto* h = new std::map<std::string, void*>;
  return *h;
}

#if defined(_WIN32)
std::string WinError() {
  DWORD e = GetLastError();
  char* buf = nullptr;
  FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, e,
                 0, reinterpret_cast<LPSTR>(&buf), 0, nullptr);
  std::string s = buf != nullptr ? buf : ("error " + std::to_string(e));
  if (buf != nullptr) LocalFree(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}
#endif

// Returns the library handle for `path`, opening it on first use.
void* OpenLibrary(const std::string& path, LoadError* err) {
  auto& handles = DlHandles();
  auto it = handles.find(path);
  if (it != handles.end()) return it->second;
#if defined(_WIN32)
  void* h = reinterpret_cast<void*>(LoadLibraryA(path.c_str()));
  if (h == nullptr) {
    *err = {"HWKV_DLOPEN", "cannot load " + path + ": " + WinError()};
    return nullptr;
  }
#else
  dlerror();
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    std::string msg = e != nullptr ? e : "unknown dlopen error";
    if (msg.find(path) == std::string::npos) msg = path + ": " + msg;
    *err = {"HWKV_DLOPEN", "cannot load " + msg};
    return nullptr;
  }
#endif
  handles[path] = h;
  return h;
}

void* FindSymbol(void* h, const char* name, std::string* why) {
#if defined(_WIN32)
  void* p = reinterpret_cast<void*>(GetProcAddress(reinterpret_cast<HMODULE>(h), name));
  if (p == nullptr) *why = WinError();
#else
  dlerror();
  void* p = dlsym(h, name);
  if (p == nullptr) {
    const char* e = dlerror();
    *why = e != nullptr ? e : "symbol is NULL";
  }
#endif
  return p;
}

// The CUDA library's model engine, when it exports one: `const hwkv_model_api* hwkv_cuda_model_api(void)`.
typedef const hwkv_model_api* (*hwkv_cuda_model_api_fn)(void);
// Its quantizer table, when it exports one: `const hwkv_quant_api* hwkv_cuda_quant_api(void)`.
typedef const hwkv_quant_api* (*hwkv_cuda_quant_api_fn)(void);

const hwkv_api* LoadCudaTable(const std::string& path, LoadError* err, const hwkv_model_api** model,
                              const hwkv_quant_api** quant) {
  *model = nullptr;
  *quant = nullptr;
  std::lock_guard<std::mutex> lock(DlMutex());
  void* h = OpenLibrary(path, err);
  if (h == nullptr) return nullptr;
  std::string why;
  void* sym = FindSymbol(h, "hwkv_cuda_api", &why);
  if (sym == nullptr) {
    *err = {"HWKV_NO_SYMBOL", path + " is not a hogwild-kv CUDA library: it does not export hwkv_cuda_api (" + why + ")"};
    return nullptr;
  }
  auto fn = reinterpret_cast<hwkv_cuda_api_fn>(sym);
  const char* reason = nullptr;
  const hwkv_api* api = fn(&reason);
  if (api == nullptr) {
    *err = {"HWKV_NO_DEVICE",
            std::string("no usable CUDA device: ") + (reason != nullptr && *reason != '\0' ? reason : "hwkv_cuda_api gave no reason")};
    return nullptr;
  }
  std::string bad = CheckTable(api);
  if (!bad.empty()) {
    *err = {"HWKV_ABI", path + ": " + bad + " (rebuild it with `npm run build:cuda`)"};
    return nullptr;
  }
  // Optional: a library without the symbol simply has no model engine (RawApi.model stays undefined).
  std::string no_model;
  void* msym = FindSymbol(h, "hwkv_cuda_model_api", &no_model);
  if (msym != nullptr) {
    const hwkv_model_api* m = reinterpret_cast<hwkv_cuda_model_api_fn>(msym)();
    if (m != nullptr) {
      bad = CheckModelTable(m);
      if (!bad.empty()) {
        *err = {"HWKV_ABI", path + ": " + bad + " (rebuild it with `npm run build:cuda`)"};
        return nullptr;
      }
      *model = m;
    }
  }
  // Optional as well: the quantizer table (RawApi.quant).
  std::string no_quant;
  void* qsym = FindSymbol(h, "hwkv_cuda_quant_api", &no_quant);
  if (qsym != nullptr) {
    const hwkv_quant_api* q = reinterpret_cast<hwkv_cuda_quant_api_fn>(qsym)();
    if (q != nullptr) {
      bad = CheckQuantTable(q);
      if (!bad.empty()) {
        *err = {"HWKV_ABI", path + ": " + bad + " (rebuild it with `npm run build:cuda`)"};
        return nullptr;
      }
      *quant = q;
    }
  }
  return api;
}

void ThrowWithCode(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  e.ThrowAsJavaScriptException();
}

Napi::Value OpenCudaImpl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty()) {
    ThrowWithCode(env, "HWKV_BAD_ARGUMENT", "openCuda(libPath): libPath must be a non-empty string");
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  AddonData* d = env.GetInstanceData<AddonData>();
  auto it = d->cuda.find(path);
  if (it != d->cuda.end()) return it->second.Value();
  LoadError err{"", ""};
  const hwkv_model_api* model = nullptr;
  const hwkv_quant_api* quant = nullptr;
  const hwkv_api* api = LoadCudaTable(path, &err, &model, &quant);
  if (api == nullptr) {
    ThrowWithCode(env, err.code, err.message);
    return env.Undefined();
  }
  d->bindings.push_back(std::make_unique<Binding>());
  Binding* b = d->bindings.back().get();
  b->api = api;
  b->model = model;
  b->quant = quant;
  b->is_cpu = false;
  Napi::Object raw = MakeRawApi(env, b);
  d->cuda[path] = Napi::Persistent(raw);
  return raw;
}

Napi::Value OpenCuda(const Napi::CallbackInfo& info) {
  try {
    return OpenCudaImpl(info);
  } catch (const std::exception& e) {
    ThrowWithCode(info.Env(), "HWKV_INTERNAL", std::string("openCuda: ") + e.what());
  } catch (...) {
    ThrowWithCode(info.Env(), "HWKV_INTERNAL", "openCuda: unknown error");
  }
  return info.Env().Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* d = new AddonData;
  env.SetInstanceData<AddonData>(d);

  const hwkv_api* cpu = hwkv_cpu_api();
  std::string bad = CheckTable(cpu);
  if (!bad.empty()) {
    ThrowWithCode(env, "HWKV_ABI", "hogwild-kv native addon: CPU core table unusable: " + bad);
    return exports;
  }
  d->bindings.push_back(std::make_unique<Binding>());
  Binding* b = d->bindings.back().get();
  b->api = cpu;
  b->is_cpu = true;
  const hwkv_model_api* cpu_model = hwkv_cpu_model_api();
  bad = CheckModelTable(cpu_model);
  if (!bad.empty()) {
    ThrowWithCode(env, "HWKV_ABI", "hogwild-kv native addon: CPU model table unusable: " + bad);
    return exports;
  }
  b->model = cpu_model;
  const hwkv_quant_api* cpu_quant = hwkv_cpu_quant_api();
  bad = CheckQuantTable(cpu_quant);
  if (!bad.empty()) {
    ThrowWithCode(env, "HWKV_ABI", "hogwild-kv native addon: CPU quantizer table unusable: " + bad);
    return exports;
  }
  b->quant = cpu_quant;

  exports.Set("cpu", MakeRawApi(env, b));
  exports.Set("openCuda", Napi::Function::New(env, OpenCuda, "openCuda"));
  exports.Set("cpuFeatures", Napi::Function::New(env, CpuFeatures, "cpuFeatures"));
  exports.Set("abiVersion", Napi::Number::New(env, HWKV_ABI_VERSION));
  return exports;
}

}  // namespace hwkv_napi

static Napi::Object InitHwkv(Napi::Env env, Napi::Object exports) { return hwkv_napi::Init(env, exports); }

NODE_API_MODULE(hwkv, InitHwkv)
