// model_weights.cpp — weight storage of a model: file mapping (FILE mode), uploads (UPLOAD mode), weight-type
// helpers. See model/model.h.
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>

#include "kernels/ops.h"
#include "model/model.h"

#if defined(_WIN32)
#include <malloc.h>
#endif
#if !defined(_WIN32) && !defined(__EMSCRIPTEN__)
#define HWKV_MODEL_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#define HWKV_MODEL_MMAP 0
#endif

namespace hwkv {
namespace model {

namespace {

// 64-byte aligned allocation of n bytes; nullptr when it fails or when n does not fit size_t (a tensor over
// 4 GiB on 32-bit WebAssembly must fail cleanly, not wrap around to a small allocation).
uint8_t* aligned_alloc64(int64_t n) {
  if (n <= 0) n = 1;
  if (static_cast<uint64_t>(n) > SIZE_MAX - 64) return nullptr;
  void* p = nullptr;
#if defined(_WIN32)
  p = _aligned_malloc(static_cast<size_t>(n), 64);
#else
  if (posix_memalign(&p, 64, static_cast<size_t>(n)) != 0) p = nullptr;
#endif
  return static_cast<uint8_t*>(p);
}

// HWKV_ERR_OUT_OF_MEMORY for a tensor whose buffer could not be allocated, saying why.
hwkv_status alloc_failed(const Tensor& t) {
  const bool too_big = static_cast<uint64_t>(t.nbytes) > SIZE_MAX - 64;
  return fail(HWKV_ERR_OUT_OF_MEMORY, "model_create: out of memory allocating %lld bytes for tensor '%s' (%s)",
              static_cast<long long>(t.nbytes), t.name.c_str(),
              too_big ? (sizeof(size_t) == 4 ? "larger than the 32-bit address space of this build (WebAssembly: 4 GiB)"
                                              : "larger than the address space")
                      : "host memory exhausted");
}

void aligned_free64(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

// Reads [offset, offset + n) of an open FILE* into dst; returns false on a short read.
bool read_at(std::FILE* f, int64_t offset, uint8_t* dst, int64_t n) {
#if defined(_WIN32)
  if (_fseeki64(f, offset, SEEK_SET) != 0) return false;
#else
  if (fseeko(f, static_cast<off_t>(offset), SEEK_SET) != 0) return false;
#endif
  while (n > 0) {
    size_t chunk = static_cast<size_t>(n > (1 << 30) ? (1 << 30) : n);
    size_t got = std::fread(dst, 1, chunk, f);
    if (got != chunk) return false;
    dst += got;
    n -= static_cast<int64_t>(got);
  }
  return true;
}

}  // namespace

MappedFile::~MappedFile() {
#if HWKV_MODEL_MMAP
  if (map) munmap(const_cast<uint8_t*>(map), static_cast<size_t>(size));
#endif
  if (handle) std::fclose(static_cast<std::FILE*>(handle));
}

Tensor::~Tensor() {
  if (owned) aligned_free64(owned);
}

Tensor::Tensor(Tensor&& o) noexcept
    : name(std::move(o.name)),
      type(o.type),
      n_dims(o.n_dims),
      ne0(o.ne0),
      ne1(o.ne1),
      nbytes(o.nbytes),
      data(o.data),
      owned(o.owned),
      uploaded(o.uploaded),
      f32(std::move(o.f32)) {
  o.owned = nullptr;
  o.data = nullptr;
}

int64_t Tensor::row_bytes() const { return wtype_row_bytes(type, ne1); }

int64_t wtype_row_bytes(int32_t type, int64_t n) {
  switch (type) {
    case HWKV_WTYPE_F32: return 4 * n;
    case HWKV_WTYPE_F16: return 2 * n;
    case HWKV_WTYPE_BF16: return 2 * n;
    case HWKV_WTYPE_Q8_0: return (n % 32 == 0) ? (n / 32) * 34 : -1;
    default: return -1;
  }
}

const char* wtype_name(int32_t type) {
  switch (type) {
    case HWKV_WTYPE_F32: return "F32";
    case HWKV_WTYPE_F16: return "F16";
    case HWKV_WTYPE_BF16: return "BF16";
    case HWKV_WTYPE_Q8_0: return "Q8_0";
    default: return "?";
  }
}

hwkv_status attach_files(Model& m, const hwkv_tensor_desc* descs, int32_t n) {
  std::map<std::string, MappedFile*> by_path;
  for (int32_t i = 0; i < n; ++i) {
    const hwkv_tensor_desc& d = descs[i];
    Tensor& t = m.tensors[i];
    if (!d.file || !d.file[0])
      return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: tensor '%s' has no file (FILE mode)", t.name.c_str());
    MappedFile* mf;
    auto it = by_path.find(d.file);
    if (it != by_path.end()) {
      mf = it->second;
    } else {
      std::unique_ptr<MappedFile> nf(new MappedFile());
      nf->path = d.file;
      std::FILE* f = std::fopen(d.file, "rb");
      if (!f)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: cannot open '%s' (tensor '%s'): %s", d.file,
                    t.name.c_str(), std::strerror(errno));
      nf->handle = f;
#if defined(_WIN32)
      _fseeki64(f, 0, SEEK_END);
      nf->size = _ftelli64(f);
#else
      fseeko(f, 0, SEEK_END);
      nf->size = static_cast<int64_t>(ftello(f));
#endif
      if (nf->size < 0)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: cannot get the size of '%s'", d.file);
#if HWKV_MODEL_MMAP
      if (nf->size > 0) {
        void* p = mmap(nullptr, static_cast<size_t>(nf->size), PROT_READ, MAP_SHARED, fileno(f), 0);
        if (p != MAP_FAILED) nf->map = static_cast<const uint8_t*>(p);
      }
#endif
      mf = nf.get();
      by_path[d.file] = mf;
      m.files.push_back(std::move(nf));
    }
    if (d.offset < 0 || d.offset > mf->size || t.nbytes > mf->size - d.offset)
      return fail(HWKV_ERR_OUT_OF_RANGE,
                  "model_create: tensor '%s' needs bytes [%lld, %lld) of '%s' but the file has %lld bytes "
                  "(truncated or wrong file?)",
                  t.name.c_str(), static_cast<long long>(d.offset), static_cast<long long>(d.offset + t.nbytes),
                  d.file, static_cast<long long>(mf->size));
    // Use the mapping in place when it is suitably aligned for the element type; otherwise copy.
    const size_t align = t.type == HWKV_WTYPE_F32 ? 4 : 2;
    if (mf->map && (reinterpret_cast<uintptr_t>(mf->map + d.offset) % align) == 0) {
      t.data = mf->map + d.offset;
    } else {
      t.owned = aligned_alloc64(t.nbytes);
      if (!t.owned) return alloc_failed(t);
      bool ok = mf->map ? (std::memcpy(t.owned, mf->map + d.offset, static_cast<size_t>(t.nbytes)), true)
                        : read_at(static_cast<std::FILE*>(mf->handle), d.offset, t.owned, t.nbytes);
      if (!ok)
        return fail(HWKV_ERR_INVALID_ARGUMENT, "model_create: short read of tensor '%s' from '%s'", t.name.c_str(),
                    d.file);
      t.data = t.owned;
    }
    t.uploaded = t.nbytes;
  }
#if HWKV_MODEL_MMAP
  // Mapped files do not need their FILE* any more.
  for (auto& f : m.files)
    if (f->map && f->handle) {
      std::fclose(static_cast<std::FILE*>(f->handle));
      f->handle = nullptr;
    }
#endif
  return HWKV_OK;
}

hwkv_status allocate_uploads(Model& m) {
  for (Tensor& t : m.tensors) {
    t.owned = aligned_alloc64(t.nbytes);
    if (!t.owned) return alloc_failed(t);
    t.data = t.owned;
    t.uploaded = 0;
  }
  return HWKV_OK;
}

hwkv_status upload(Model& m, int32_t index, const void* data, int64_t offset, int64_t nbytes) {
  if (m.mode != HWKV_MODEL_UPLOAD)
    return fail(HWKV_ERR_UNSUPPORTED, "model_upload: the model was created in FILE mode (weights come from files)");
  if (index < 0 || index >= static_cast<int32_t>(m.tensors.size()))
    return fail(HWKV_ERR_OUT_OF_RANGE, "model_upload: tensor index %d out of range [0, %d)", index,
                static_cast<int>(m.tensors.size()));
  Tensor& t = m.tensors[index];
  if (nbytes < 0 || offset < 0 || offset > t.nbytes || nbytes > t.nbytes - offset)
    return fail(HWKV_ERR_OUT_OF_RANGE, "model_upload: bytes [%lld, %lld) outside tensor '%s' (%lld bytes)",
                static_cast<long long>(offset), static_cast<long long>(offset + nbytes), t.name.c_str(),
                static_cast<long long>(t.nbytes));
  if (nbytes > 0 && !data) return fail(HWKV_ERR_INVALID_ARGUMENT, "model_upload: data is NULL");
  if (offset > t.uploaded)
    return fail(HWKV_ERR_INVALID_ARGUMENT,
                "model_upload: tensor '%s': chunk at offset %lld leaves a gap (only %lld bytes uploaded so far; "
                "upload chunks in order)",
                t.name.c_str(), static_cast<long long>(offset), static_cast<long long>(t.uploaded));
  if (nbytes > 0) std::memcpy(t.owned + offset, data, static_cast<size_t>(nbytes));
  if (offset + nbytes > t.uploaded) t.uploaded = offset + nbytes;
  if (m.prepared && !t.f32.empty()) m.prepared = false;  // a vector changed: widen again
  return HWKV_OK;
}

hwkv_status prepare(Model& m) {
  if (m.prepared) return HWKV_OK;
  for (const Tensor& t : m.tensors)
    if (!t.complete())
      return fail(HWKV_ERR_INVALID_ARGUMENT,
                  "model_forward: tensor '%s' is not completely uploaded (%lld of %lld bytes)", t.name.c_str(),
                  static_cast<long long>(t.uploaded), static_cast<long long>(t.nbytes));
  for (Tensor& t : m.tensors) {
    if (t.n_dims == 1 || t.ne0 == 1) {
      const int64_t n = t.ne0 * t.ne1;
      t.f32.resize(static_cast<size_t>(n));
      kern::dequantize_row(t.data, t.type, n, 0, t.f32.data());
    }
  }
  m.prepared = true;
  return HWKV_OK;
}

int64_t Model::weight_bytes() const {
  int64_t s = 0;
  for (const Tensor& t : tensors) s += t.nbytes;
  return s;
}

int64_t Model::scratch_bytes() const {
  int64_t s = 0;
  for (const Scratch* b : {&x, &h, &q, &k, &v, &att, &ff_g, &ff_u, &rows, &tmp}) s += static_cast<int64_t>(b->bytes());
  s += attn_scratch.bytes();
  return s;
}

int32_t Model::uploads_pending() const {
  int32_t n = 0;
  for (const Tensor& t : tensors) n += t.complete() ? 0 : 1;
  return n;
}

}  // namespace model
}  // namespace hwkv
