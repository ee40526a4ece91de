// model_files.cpp — see model_files.h.
#include "model_files.h"

#include <cerrno>
#include <cstring>
#include <map>

#if !defined(_WIN32) && !defined(__EMSCRIPTEN__)
#define HWKV_MODEL_MMAP 1
#include <sys/mman.h>
#else
#define HWKV_MODEL_MMAP 0
#endif

namespace hwkv {
namespace model {

TensorFile::~TensorFile() {
#if HWKV_MODEL_MMAP
  if (map) munmap(const_cast<uint8_t*>(map), static_cast<size_t>(size));
#endif
  close_handle();
}

void TensorFile::close_handle() {
  if (handle) std::fclose(handle);
  handle = nullptr;
}

bool TensorFile::map_whole() {
#if HWKV_MODEL_MMAP
  if (map) return true;
  if (!handle || size <= 0) return false;
  void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fileno(handle), 0);
  if (p == MAP_FAILED) return false;
  map = static_cast<const uint8_t*>(p);
  return true;
#else
  return false;
#endif
}

hwkv_status TensorFile::read_tensor(const hwkv_tensor_desc& d, int64_t offset, uint8_t* dst, int64_t n) {
  bool ok = handle != nullptr;
  if (ok) {
    const int64_t at = d.offset + offset;
#if defined(_WIN32)
    ok = _fseeki64(handle, at, SEEK_SET) == 0;
#else
    ok = fseeko(handle, static_cast<off_t>(at), SEEK_SET) == 0;
#endif
  }
  while (ok && n > 0) {
    const size_t chunk = static_cast<size_t>(n > (1 << 30) ? (1 << 30) : n);
    const size_t got = std::fread(dst, 1, chunk, handle);
    ok = got == chunk;
    dst += got;
    n -= static_cast<int64_t>(got);
  }
  if (!ok)
    return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: short read of tensor '%s' from '%s'", d.name, path.c_str());
  return HWKV_OK;
}

hwkv_status open_tensor_files(const hwkv_tensor_desc* descs, int32_t n, std::vector<std::unique_ptr<TensorFile>>* files,
                              std::vector<TensorFile*>* per) {
  std::map<std::string, TensorFile*> by_path;
  per->assign(static_cast<size_t>(n), nullptr);
  for (int32_t i = 0; i < n; ++i) {
    const hwkv_tensor_desc& d = descs[i];
    if (!d.file || !d.file[0])
      return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: tensor '%s' has no file (FILE mode)", d.name);
    TensorFile* tf;
    auto it = by_path.find(d.file);
    if (it != by_path.end()) {
      tf = it->second;
    } else {
      std::unique_ptr<TensorFile> nf(new TensorFile());
      nf->path = d.file;
      nf->handle = std::fopen(d.file, "rb");
      if (!nf->handle)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: cannot open '%s' (tensor '%s'): %s", d.file, d.name,
                    std::strerror(errno));
#if defined(_WIN32)
      const bool sought = _fseeki64(nf->handle, 0, SEEK_END) == 0;
      nf->size = sought ? _ftelli64(nf->handle) : -1;
#else
      const bool sought = fseeko(nf->handle, 0, SEEK_END) == 0;
      nf->size = sought ? static_cast<int64_t>(ftello(nf->handle)) : -1;
#endif
      if (nf->size < 0) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: cannot get the size of '%s'", d.file);
      tf = nf.get();
      by_path[d.file] = tf;
      files->push_back(std::move(nf));
    }
    if (d.offset < 0 || d.offset > tf->size || d.nbytes > tf->size - d.offset)
      return fail(HWKV_ERR_OUT_OF_RANGE,
                  "model_create: tensor '%s' needs bytes [%lld, %lld) of '%s' but the file has %lld bytes "
                  "(truncated or wrong file?)",
                  d.name, static_cast<long long>(d.offset), static_cast<long long>(d.offset + d.nbytes), d.file,
                  static_cast<long long>(tf->size));
    (*per)[static_cast<size_t>(i)] = tf;
  }
  return HWKV_OK;
}

}  // namespace model
}  // namespace hwkv
