// api.cu — the CUDA backend's function table, its entry point hwkv_cuda_api(), error state and build info.
//
// hwkv_cuda_api() picks the device (HWKV_CUDA_DEVICE, default 0), checks that the driver can run this
// library's code (compute capability >= 8.0 and a probe kernel), and returns the table; on failure it
// returns NULL with a static reason in *why.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "codec.cuh"
#include "common.cuh"
#include "core_host.cuh"
#include "ops.cuh"

namespace hwkv_cuda {

thread_local cudaStream_t g_stream_override = nullptr;

namespace {

int g_device = 0;
std::string g_build_info = "{\"backend\":\"cuda\"}";
const char* g_why = nullptr;
char g_why_buf[512];
const hwkv_api* g_table = nullptr;
std::once_flag g_once;

__global__ void probe_kernel(int* out) { *out = 0x6877; }

std::string json_escape(const char* s) {
  std::string o;
  for (; *s; ++s) {
    const unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o;
}

const char* api_last_error() { return hwkv::last_error(); }
const char* api_build_info() { return g_build_info.c_str(); }

const hwkv_api kTable = {
    HWKV_ABI_VERSION,
    static_cast<uint32_t>(sizeof(hwkv_api)),
    api_last_error,
    api_build_info,
    rope_inv_freq,
    rope_apply,
    pack_bits,
    unpack_bits,
    fwht,
    store_create,
    store_free,
    store_stats,
    block_create,
    block_free,
    block_len,
    block_append,
    block_truncate,
    block_merge,
    block_read,
    view_read,
    attn_views,
    store_create_codec,
    store_codec_stats,
    store_codec_chunk,
};

const char* why_fmt(const char* fmt, ...) HWKV_PRINTF(1, 2);
const char* why_fmt(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_why_buf, sizeof g_why_buf, fmt, ap);
  va_end(ap);
  return g_why_buf;
}

void init() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
    g_why = "no CUDA device found";
    return;
  }
  if (e == cudaErrorInsufficientDriver) {
    void* drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!drv) {
      g_why = "no NVIDIA driver found (libcuda.so.1 cannot be loaded)";
    } else if (access("/dev/nvidiactl", F_OK) != 0) {
      dlclose(drv);
      g_why = "no NVIDIA GPU found (no /dev/nvidiactl; libcuda.so.1 here is not a working driver)";
    } else {
      dlclose(drv);
      g_why = "the installed NVIDIA driver is older than the CUDA runtime of libhwkv_cuda (update the driver)";
    }
    return;
  }
  if (e != cudaSuccess) {
    g_why = why_fmt("no usable CUDA driver: cudaGetDeviceCount failed: %s: %s", cudaGetErrorName(e),
                    cudaGetErrorString(e));
    return;
  }
  int dev = 0;
  if (const char* env = std::getenv("HWKV_CUDA_DEVICE")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (!*env || *end || v < 0 || v >= n) {
      g_why = why_fmt("HWKV_CUDA_DEVICE=%s is not a device index in 0..%d", env, n - 1);
      return;
    }
    dev = static_cast<int>(v);
  }
  cudaDeviceProp prop;
  e = cudaGetDeviceProperties(&prop, dev);
  if (e != cudaSuccess) {
    g_why = why_fmt("cudaGetDeviceProperties(%d) failed: %s: %s", dev, cudaGetErrorName(e), cudaGetErrorString(e));
    return;
  }
  if (prop.major < 8) {
    g_why = why_fmt("device %d (%s) has compute capability %d.%d; libhwkv_cuda needs 8.0 or newer", dev, prop.name,
                    prop.major, prop.minor);
    return;
  }
  e = cudaSetDevice(dev);
  if (e == cudaSuccess) {
    // Probe: the driver must be able to load this library's kernels (SASS for sm_90a or PTX for 8.0+).
    int* d = nullptr;
    int h = 0;
    e = cudaMalloc(&d, sizeof(int));
    if (e == cudaSuccess) {
      probe_kernel<<<1, 1>>>(d);
      e = cudaGetLastError();
      if (e == cudaSuccess) e = cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost);
      cudaError_t e2 = cudaFree(d);
      if (e == cudaSuccess) e = e2;
      if (e == cudaSuccess && h != 0x6877) e = cudaErrorUnknown;
    }
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    g_why = why_fmt("device %d (%s) cannot run libhwkv_cuda's kernels: %s: %s", dev, prop.name, cudaGetErrorName(e),
                    cudaGetErrorString(e));
    return;
  }
  // Keep freed scratch memory in the stream-ordered pool (up to 256 MiB) instead of returning it at each sync.
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
    uint64_t keep = 256ull << 20;
    (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  (void)cudaGetLastError();
  int drv = 0, rt = 0;
  (void)cudaDriverGetVersion(&drv);
  (void)cudaRuntimeGetVersion(&rt);
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"backend\":\"cuda\",\"device\":\"%s\",\"device_index\":%d,\"cc\":\"%d.%d\",\"sm_count\":%d,"
                "\"memory_bytes\":%llu,\"driver\":%d,\"runtime\":%d,\"store_dtypes\":[\"f32\",\"f16\"],"
                "\"abi\":%d}",
                json_escape(prop.name).c_str(), dev, prop.major, prop.minor, prop.multiProcessorCount,
                static_cast<unsigned long long>(prop.totalGlobalMem), drv, rt, HWKV_ABI_VERSION);
  g_build_info = buf;
  g_device = dev;
  g_table = &kTable;
}

}  // namespace

hwkv_status cuda_fail(cudaError_t e, const char* fn, const char* what) {
  (void)cudaGetLastError();  // clear a non-sticky error so later checks do not see it again
  const hwkv_status st = e == cudaErrorMemoryAllocation ? HWKV_ERR_OUT_OF_MEMORY : HWKV_ERR_DEVICE;
  return fail(st, "%s: CUDA error in %s: %s: %s", fn, what, cudaGetErrorName(e), cudaGetErrorString(e));
}

int device_id() { return g_device; }

hwkv_status use_device(const char* fn) {
  int cur = -1;
  HWKV_CU(cudaGetDevice(&cur));
  if (cur != g_device) HWKV_CU(cudaSetDevice(g_device));
  return HWKV_OK;
}

hwkv_status Scratch::alloc(const char* fn, size_t bytes) {
  release();
  if (bytes == 0) return HWKV_OK;
  HWKV_CU(cudaMallocAsync(&p_, bytes, stream()));
  return HWKV_OK;
}

hwkv_status h2d(const char* fn, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return HWKV_OK;
  HWKV_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
  return HWKV_OK;
}

hwkv_status d2h(const char* fn, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return HWKV_OK;
  HWKV_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  return HWKV_OK;
}

hwkv_status sync(const char* fn) {
  HWKV_CU(cudaStreamSynchronize(stream()));
  HWKV_CU(cudaGetLastError());
  return HWKV_OK;
}

}  // namespace hwkv_cuda

extern "C" HWKV_API const hwkv_api* hwkv_cuda_api(const char** why) {
  try {
    std::call_once(hwkv_cuda::g_once, hwkv_cuda::init);
  } catch (...) {
    if (why) *why = "libhwkv_cuda initialisation failed (exception)";
    return nullptr;
  }
  if (!hwkv_cuda::g_table) {
    if (why) *why = hwkv_cuda::g_why ? hwkv_cuda::g_why : "libhwkv_cuda initialisation failed";
    return nullptr;
  }
  if (why) *why = nullptr;
  return hwkv_cuda::g_table;
}
