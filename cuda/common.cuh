// common.cuh — shared helpers of the CUDA backend: error reporting, CUDA call checking, scratch buffers.
//
// Errors follow the CPU core: every failing path calls fail(status, fmt, ...), which formats the message
// into a thread-local fixed buffer and returns the status. Messages start with the ABI function name
// without the hwkv_ prefix ("block_append: block 7 is not a live block (store has 3 live blocks)").
// A failing CUDA call becomes HWKV_ERR_DEVICE (HWKV_ERR_OUT_OF_MEMORY for cudaErrorMemoryAllocation) with
// the CUDA error name and string in the message.
//
// Every ABI entry runs on cudaStreamPerThread and synchronizes before returning (all buffers are host
// memory). Temporary device memory comes from the stream-ordered allocator (cudaMallocAsync).
#ifndef HWKV_CUDA_COMMON_CUH
#define HWKV_CUDA_COMMON_CUH

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>

#include "hwkv.h"
#include "../core/src/common.h"

namespace hwkv_cuda {

// The CPU core's error reporting, ABI guard and helpers (core/src/common.h; errors.cpp is compiled into this
// library): one thread-local message buffer behind every table's last_error().
using hwkv::ceil_div;
using hwkv::fail;
using hwkv::guarded;
using hwkv::last_error;

// Turns a failed CUDA call into a status + message ("<fn>: CUDA error in <what>: <name>: <text>").
// Clears the (non-sticky) last CUDA error so that later launch checks do not report it again.
hwkv_status cuda_fail(cudaError_t e, const char* fn, const char* what);

// The device all calls use (chosen by hwkv_cuda_api) and a per-call guard that makes it current.
int device_id();
hwkv_status use_device(const char* fn);

// Checks a CUDA runtime call inside a function that has `const char* fn` (the ABI name) in scope.
#define HWKV_CU(call)                                                       \
  do {                                                                      \
    cudaError_t hwkv_ce_ = (call);                                          \
    if (hwkv_ce_ != cudaSuccess) return ::hwkv_cuda::cuda_fail(hwkv_ce_, fn, #call); \
  } while (0)

// Checks a kernel launch (configuration errors and earlier asynchronous faults).
#define HWKV_CU_LAUNCH(name) HWKV_CU(cudaGetLastError())


// The stream every call works on: cudaStreamPerThread, or, while a StreamScope is alive on this thread, the
// stream it names (the model engine runs each forward on its own stream so that it can capture CUDA graphs).
extern thread_local cudaStream_t g_stream_override;
inline cudaStream_t stream() { return g_stream_override ? g_stream_override : cudaStreamPerThread; }
class StreamScope {
 public:
  explicit StreamScope(cudaStream_t s) : prev_(g_stream_override) { g_stream_override = s; }
  ~StreamScope() { g_stream_override = prev_; }
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  cudaStream_t prev_;
};

// Temporary device memory, stream-ordered; freed (asynchronously, in stream order) by the destructor.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }
  // Allocates `bytes` (0 allowed: then ptr() is null). Out of device memory -> HWKV_ERR_OUT_OF_MEMORY.
  hwkv_status alloc(const char* fn, size_t bytes);
  void release() {
    if (p_) (void)cudaFreeAsync(p_, stream());  // nothing to report from a destructor path
    p_ = nullptr;
  }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  void* ptr() const { return p_; }

 private:
  void* p_ = nullptr;
};

// Copies host -> device / device -> host on the call's stream (no-ops for 0 bytes).
hwkv_status h2d(const char* fn, void* dst, const void* src, size_t bytes);
hwkv_status d2h(const char* fn, void* dst, const void* src, size_t bytes);
// Waits for the call's stream and reports any asynchronous fault.
hwkv_status sync(const char* fn);

// Grid size for a grid-stride loop over n items with `threads` threads per block.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t g = ceil_div(n > 0 ? n : 1, threads);
  const int64_t cap = 65535LL * 32;
  return static_cast<unsigned>(g < cap ? g : cap);
}

}  // namespace hwkv_cuda

#endif
