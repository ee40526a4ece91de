// core_host.cuh — the CPU core's host-side code that the CUDA library compiles and links instead of repeating
// it (scripts/build-cuda.sh adds the sources): RoPE validation and frequencies (core/src/rope_freq.cpp), model
// parameter, tensor-table, upload and forward-batch validation (core/src/model_params.cpp), the files of
// FILE-mode tensors (core/src/model_files.cpp), the quantizers' parameter checks, sizes and signs and the ridge
// solve (core/src/quant_params.cpp, quant_ridge.cpp, with the fp16 conversion of core/src/half.cpp), the KV
// codec's validation, layer parameters, predictor layout, compaction candidates and accounting
// (core/src/codec_params.cpp) and the thread-local error message (core/src/errors.cpp, the
// one buffer behind all tables' last_error()).
#ifndef HWKV_CUDA_CORE_HOST_CUH
#define HWKV_CUDA_CORE_HOST_CUH

#include "../core/src/codec_params.h"
#include "../core/src/model_files.h"
#include "../core/src/model_params.h"
#include "../core/src/rope.h"

#endif
