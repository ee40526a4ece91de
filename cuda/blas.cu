// blas.cu — run-time loading of cuBLAS (see blas.cuh).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "blas.cuh"

namespace hwkv_cuda {

namespace {

std::once_flag g_once;
Blas g_blas;
bool g_ok = false;
std::string g_why;
std::string g_path;

void load() {
  const int major = CUDART_VERSION / 1000;
  const std::string so = "libcublas.so." + std::to_string(major);
  std::vector<std::string> cands;
  if (const char* e = std::getenv("HWKV_CUBLAS_LIB"))
    if (*e) cands.push_back(e);
  cands.push_back(so);
  if (const char* h = std::getenv("CUDA_HOME"))
    if (*h) cands.push_back(std::string(h) + "/lib64/" + so);
  cands.push_back("/usr/local/cuda/lib64/" + so);
  cands.push_back("/usr/local/cuda-" + std::to_string(major) + "." + std::to_string((CUDART_VERSION % 1000) / 10) +
                  "/lib64/" + so);
  cands.push_back("/usr/local/cuda/targets/x86_64-linux/lib/" + so);
  cands.push_back("libcublas.so");
  std::string tried;
  void* h = nullptr;
  for (const std::string& c : cands) {
    h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) {
      g_path = c;
      break;
    }
    const char* err = dlerror();
    if (!tried.empty()) tried += "; ";
    tried += err ? err : c;
  }
  if (!h) {
    g_why = "cuBLAS not found (set HWKV_CUBLAS_LIB=/path/to/" + so + " or add its folder to LD_LIBRARY_PATH); tried: " +
            tried;
    return;
  }
  auto sym = [&](const char* name) -> void* {
    dlerror();
    void* p = dlsym(h, name);
    return p;
  };
  g_blas.create = reinterpret_cast<decltype(g_blas.create)>(sym("cublasCreate_v2"));
  g_blas.destroy = reinterpret_cast<decltype(g_blas.destroy)>(sym("cublasDestroy_v2"));
  g_blas.set_stream = reinterpret_cast<decltype(g_blas.set_stream)>(sym("cublasSetStream_v2"));
  g_blas.gemm_ex = reinterpret_cast<decltype(g_blas.gemm_ex)>(sym("cublasGemmEx"));
  g_blas.status_string = reinterpret_cast<decltype(g_blas.status_string)>(sym("cublasGetStatusString"));
  if (!g_blas.create || !g_blas.destroy || !g_blas.set_stream || !g_blas.gemm_ex) {
    g_why = g_path + " lacks cublasCreate_v2 / cublasDestroy_v2 / cublasSetStream_v2 / cublasGemmEx";
    dlclose(h);
    return;
  }
  g_blas.path = g_path.c_str();
  g_ok = true;  // the handle stays open for the life of the process
}

}  // namespace

hwkv_status blas_load(const char* fn, const Blas** out) {
  std::call_once(g_once, load);
  if (!g_ok) return fail(HWKV_ERR_UNSUPPORTED, "%s: the CUDA model engine needs cuBLAS: %s", fn, g_why.c_str());
  *out = &g_blas;
  return HWKV_OK;
}

hwkv_status blas_fail(const Blas* b, cublasStatus_t st, const char* fn, const char* what) {
  const char* text = b && b->status_string ? b->status_string(st) : nullptr;
  (void)cudaGetLastError();
  return fail(st == 3 ? HWKV_ERR_OUT_OF_MEMORY : HWKV_ERR_DEVICE, "%s: cuBLAS error in %s: status %d (%s)", fn, what,
              st, text ? text : "no text");
}

}  // namespace hwkv_cuda
