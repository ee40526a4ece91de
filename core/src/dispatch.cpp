// dispatch.cpp — choose the kernel table once; hwkv_cpu_set_simd can switch it (and the matmul kernels) back to scalar.
#include "dispatch.h"

#include <atomic>

#include "kernels/matmul.h"

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <intrin.h>
#endif

namespace hwkv {

namespace {

Kernels make_scalar() {
  Kernels k{};
  k.name = "scalar";
  k.pack_bits = pack_bits_scalar;
  k.unpack_bits = unpack_bits_scalar;
  k.max_u16 = max_u16_scalar;
  k.fwht_row = fwht_row_scalar;
  k.rope_rotate = rope_rotate_scalar;
  k.attn_tile = attn_tile_scalar;
  k.f32_to_f16 = f32_to_f16_scalar;
  k.f16_to_f32 = f16_to_f32_scalar;
  return k;
}

#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2 && (defined(__x86_64__) || defined(_M_X64))
bool cpu_has_avx2_fma() {
#if defined(_MSC_VER) && !defined(__clang__)
  int r[4];
  __cpuid(r, 0);
  if (r[0] < 7) return false;
  __cpuid(r, 1);
  bool fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, f16c = (r[2] >> 29) & 1;
  if (!(fma && osxsave && f16c)) return false;
  if ((_xgetbv(0) & 6) != 6) return false;
  __cpuidex(r, 7, 0);
  return (r[1] >> 5) & 1;
#else
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#endif
}
#endif

Kernels make_best() {
  Kernels k = make_scalar();
#if defined(HWKV_HAVE_AVX2) && HWKV_HAVE_AVX2 && (defined(__x86_64__) || defined(_M_X64))
  if (cpu_has_avx2_fma()) {
    k.name = "avx2";
    install_avx2_pack(k);
    install_avx2_fwht(k);
    install_avx2_rope(k);
    install_avx2_attn(k);
    install_avx2_half(k);
  }
#elif defined(HWKV_HAVE_WASM_SIMD) && HWKV_HAVE_WASM_SIMD && defined(__EMSCRIPTEN__)
  k.name = "simd128";
  install_wasm_pack(k);
  install_wasm_fwht(k);
  install_wasm_rope(k);
  install_wasm_attn(k);
#endif
  return k;
}

// Function-local statics: initialised on first use, thread-safe, independent of static-init order.
const Kernels& best_kernels() {
  static const Kernels k = make_best();
  return k;
}

std::atomic<const Kernels*> g_current{nullptr};  // nullptr = best

}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k = make_scalar();
  return k;
}

const Kernels& kernels() {
  const Kernels* k = g_current.load(std::memory_order_acquire);
  return k ? *k : best_kernels();
}

const char* set_simd(int force_scalar) {
  const Kernels* k = force_scalar ? &scalar_kernels() : &best_kernels();
  g_current.store(k, std::memory_order_release);
  kern::set_force_scalar(force_scalar != 0);  // the model's matmul kernels follow the same switch
  return k->name;
}

}  // namespace hwkv
