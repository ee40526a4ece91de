// binding.h — internal declarations shared by the Node-API addon's translation units.
//
//   raw_api.cpp      MakeRawApi(): a JS object implementing ts/backend/raw.ts RawApi over one hwkv_api table
//   model_api.cpp    MakeRawModelApi(): RawModelApi (RawApi.model) over one hwkv_model_api table
//   quant_api.cpp    MakeRawQuantApi(): RawQuantApi (RawApi.quant) over one hwkv_quant_api table
//   call.h           internals shared by raw_api.cpp and model_api.cpp (store handles, argument access)
//   cpu_features.cpp CpuFeatures(): cpuid-based feature report
//   addon.cpp        module init, openCuda() (dlopen + dlsym("hwkv_cuda_api", "hwkv_cuda_model_api")), per-env
//                    instance data
#ifndef HWKV_NAPI_BINDING_H
#define HWKV_NAPI_BINDING_H

#include <napi.h>

#include <memory>
#include <string>

#include "hwkv.h"
#include "hwkv_model.h"
#include "hwkv_quant.h"

namespace hwkv_napi {

// State behind one RawApi object: the table it calls, and the addon-side last error (set when the addon
// itself rejected a call, cleared whenever a call reaches the library). Owned by the per-env AddonData, so
// it outlives every JS function that points at it.
struct Binding {
  const hwkv_api* api = nullptr;
  // The model engine of the same library (stores passed to it must come from `api`); nullptr if none.
  const hwkv_model_api* model = nullptr;
  // The quantizer table of the same library (hwkv_quant.h); nullptr if none.
  const hwkv_quant_api* quant = nullptr;
  bool is_cpu = false;
  std::string addon_error;
  bool addon_error_active = false;
};

// Builds the RawApi object (with .model when b->model is set). `b` must stay alive as long as the env.
Napi::Object MakeRawApi(Napi::Env env, Binding* b);

// Builds the RawModelApi object over b->model (non-null, checked with CheckModelTable).
Napi::Object MakeRawModelApi(Napi::Env env, Binding* b);

// Builds the RawQuantApi object (RawApi.quant) over b->quant (non-null, checked with CheckQuantTable).
Napi::Object MakeRawQuantApi(Napi::Env env, Binding* b);
std::string CheckQuantTable(const hwkv_quant_api* api);

// "" if the table is usable by this addon, else why not (ABI version / size mismatch, missing members).
std::string CheckTable(const hwkv_api* api);
std::string CheckModelTable(const hwkv_model_api* api);

// { avx2, fma, f16c, avx512f, sse42, model }
Napi::Value CpuFeatures(const Napi::CallbackInfo& info);

}  // namespace hwkv_napi

#endif
