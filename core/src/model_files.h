// model_files.h — the files FILE-mode tensors live in (hwkv_model.h HWKV_MODEL_FILE), shared by the CPU core
// (model_weights.cpp: mapped, or read into memory where mapping is unavailable) and the CUDA library
// (cuda/model_api.cu: read in chunks and copied to the device), which compiles model_files.cpp for its host side.
// Messages start with "model_create: ".
#ifndef HWKV_CORE_MODEL_FILES_H
#define HWKV_CORE_MODEL_FILES_H

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "../include/hwkv_model.h"
#include "common.h"

namespace hwkv {
namespace model {

struct TensorFile {
  std::string path;
  int64_t size = 0;
  std::FILE* handle = nullptr;  // open until close_handle()
  const uint8_t* map = nullptr;  // whole-file read-only mapping after map_whole() succeeded (else nullptr)
  TensorFile() = default;
  TensorFile(const TensorFile&) = delete;
  TensorFile& operator=(const TensorFile&) = delete;
  ~TensorFile();
  bool map_whole();     // maps the file where the platform can (false otherwise: use read_at)
  void close_handle();  // the mapping (if any) stays valid
  // Bytes [offset, offset + n) of tensor `d` (offset relative to the tensor's first byte) into dst; a short
  // read fails with "model_create: short read of tensor '<name>' from '<file>'".
  hwkv_status read_tensor(const hwkv_tensor_desc& d, int64_t offset, uint8_t* dst, int64_t n);
};

// Opens every distinct file named by descs[0..n) once (read-only) and checks that each tensor's bytes
// [offset, offset + nbytes) lie inside its file. files receives the opened files, per[i] the file of descs[i].
hwkv_status open_tensor_files(const hwkv_tensor_desc* descs, int32_t n, std::vector<std::unique_ptr<TensorFile>>* files,
                              std::vector<TensorFile*>* per);

}  // namespace model
}  // namespace hwkv

#endif
