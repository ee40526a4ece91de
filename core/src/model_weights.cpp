// model_weights.cpp — weight storage of a model: tensors in place in mapped files or copied from them (FILE
// mode; the files themselves: model_files.cpp), uploads (UPLOAD mode). See model/model.h.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/ops.h"
#include "model/model.h"

#if defined(_WIN32)
#include <malloc.h>
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

}  // namespace

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

hwkv_status attach_files(Model& m, const hwkv_tensor_desc* descs, int32_t n) {
  std::vector<TensorFile*> per;
  HWKV_TRY(open_tensor_files(descs, n, &m.files, &per));
  for (auto& f : m.files) (void)f->map_whole();
  for (int32_t i = 0; i < n; ++i) {
    const hwkv_tensor_desc& d = descs[i];
    Tensor& t = m.tensors[i];
    TensorFile* tf = per[static_cast<size_t>(i)];
    // Use the mapping in place when it is suitably aligned for the element type; otherwise copy.
    const size_t align = t.type == HWKV_WTYPE_F32 ? 4 : 2;
    if (tf->map && (reinterpret_cast<uintptr_t>(tf->map + d.offset) % align) == 0) {
      t.data = tf->map + d.offset;
    } else {
      t.owned = aligned_alloc64(t.nbytes);
      if (!t.owned) return alloc_failed(t);
      if (tf->map)
        std::memcpy(t.owned, tf->map + d.offset, static_cast<size_t>(t.nbytes));
      else
        HWKV_TRY(tf->read_tensor(d, 0, t.owned, t.nbytes));
      t.data = t.owned;
    }
    t.uploaded = t.nbytes;
  }
  // Mapped files do not need their FILE* any more.
  for (auto& f : m.files)
    if (f->map) f->close_handle();
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
  HWKV_TRY(check_upload_index(m.mode, index, static_cast<int32_t>(m.tensors.size())));
  Tensor& t = m.tensors[index];
  HWKV_TRY(check_upload_chunk(t.name, t.nbytes, t.uploaded, data, offset, nbytes));
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
