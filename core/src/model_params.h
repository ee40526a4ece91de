// model_params.h — validation of hwkv_model_params (messages start with "model_create: "), shared by the CPU
// core (model_api.cpp) and the CUDA library, which compiles model_params.cpp for its host side.
#ifndef HWKV_CORE_MODEL_PARAMS_H
#define HWKV_CORE_MODEL_PARAMS_H

#include "../include/hwkv_model.h"
#include "common.h"

namespace hwkv {
namespace model {

hwkv_status check_params(const hwkv_model_params* p);

}  // namespace model
}  // namespace hwkv

#endif
