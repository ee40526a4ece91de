// blas.cuh — cuBLAS, loaded at run time (dlopen) by the model engine.
//
// libhwkv_cuda links the CUDA runtime statically and nothing else of the toolkit: the primitives table works on
// any machine with the NVIDIA driver, and the build needs no cuBLAS headers or libraries (the few declarations
// used are below; their values are cuBLAS's stable ABI). model_create loads cuBLAS on first use and fails
// with HWKV_ERR_UNSUPPORTED and the paths it tried when it is not found. Search order:
//   $HWKV_CUBLAS_LIB (a path), libcublas.so.<CUDA major of the build> (dynamic loader: LD_LIBRARY_PATH,
//   ld.so.cache), $CUDA_HOME/lib64, /usr/local/cuda/lib64, /usr/local/cuda/targets/x86_64-linux/lib, then an
//   unversioned libcublas.so.
#ifndef HWKV_CUDA_BLAS_CUH
#define HWKV_CUDA_BLAS_CUH

#include <library_types.h>

#include "common.cuh"

namespace hwkv_cuda {

typedef struct cublasContext* cublasHandle_t;
typedef int cublasStatus_t;  // CUBLAS_STATUS_SUCCESS = 0, ALLOC_FAILED = 3
enum : int { kCublasOpN = 0, kCublasOpT = 1 };
enum : int { kCublasCompute32F = 68, kCublasCompute32FPedantic = 69 };
enum : int { kCublasGemmDefault = -1 };

struct Blas {
  cublasStatus_t (*create)(cublasHandle_t*);
  cublasStatus_t (*destroy)(cublasHandle_t);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*gemm_ex)(cublasHandle_t, int transa, int transb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb,
                            const void* beta, void* C, cudaDataType Ctype, int ldc, int compute, int algo);
  const char* (*status_string)(cublasStatus_t);  // may be NULL (older cuBLAS)
  const char* path;                              // the library that was loaded
};

// Loads cuBLAS once per process; on failure returns HWKV_ERR_UNSUPPORTED (message starts with fn).
hwkv_status blas_load(const char* fn, const Blas** out);
// Turns a failed cuBLAS status into HWKV_ERR_OUT_OF_MEMORY (allocation) or HWKV_ERR_DEVICE with its text.
hwkv_status blas_fail(const Blas* b, cublasStatus_t st, const char* fn, const char* what);

}  // namespace hwkv_cuda

#endif
