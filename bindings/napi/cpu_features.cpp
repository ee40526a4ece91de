// cpu_features.cpp — cpuFeatures(): what the host CPU offers, for diagnostics and backend reports.
// On x86 the AVX family is reported only when the OS also saves the wider registers (XGETBV).
#include <cstdint>
#include <cstring>
#include <string>

#include "binding.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define HWKV_NAPI_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace hwkv_napi {
namespace {

struct Features {
  bool avx2 = false, fma = false, f16c = false, avx512f = false, sse42 = false;
  std::string model;
};

#if defined(HWKV_NAPI_X86)
void Cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
#if defined(_MSC_VER)
  int regs[4];
  __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint32_t>(regs[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

uint64_t Xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
#endif
}

Features Detect() {
  Features f;
  uint32_t r[4] = {0, 0, 0, 0};
  Cpuid(0, 0, r);
  const uint32_t max_leaf = r[0];
  if (max_leaf >= 1) {
    Cpuid(1, 0, r);
    const uint32_t ecx = r[2];
    f.sse42 = (ecx >> 20) & 1;
    const bool osxsave = (ecx >> 27) & 1;
    const bool avx = (ecx >> 28) & 1;
    uint64_t xcr0 = osxsave ? Xgetbv0() : 0;
    const bool ymm_os = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
    const bool zmm_os = ymm_os && (xcr0 & 0xE0) == 0xE0;  // opmask + ZMM_Hi256 + Hi16_ZMM
    f.fma = ymm_os && avx && ((ecx >> 12) & 1);
    f.f16c = ymm_os && avx && ((ecx >> 29) & 1);
    if (max_leaf >= 7) {
      Cpuid(7, 0, r);
      f.avx2 = ymm_os && avx && ((r[1] >> 5) & 1);
      f.avx512f = zmm_os && ((r[1] >> 16) & 1);
    }
  }
  Cpuid(0x80000000u, 0, r);
  if (r[0] >= 0x80000004u) {
    char brand[49];
    for (uint32_t i = 0; i < 3; ++i) {
      Cpuid(0x80000002u + i, 0, r);
      std::memcpy(brand + 16 * i, r, 16);
    }
    brand[48] = '\0';
    std::string s(brand);
    size_t b = s.find_first_not_of(' ');
    size_t e = s.find_last_not_of(' ');
    f.model = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  }
  return f;
}
#else
Features Detect() {
  Features f;
#if defined(__aarch64__) || defined(_M_ARM64)
  f.model = "arm64";
#else
  f.model = "unknown";
#endif
  return f;
}
#endif

}  // namespace

Napi::Value CpuFeatures(const Napi::CallbackInfo& info) {
  static const Features f = Detect();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx2", Napi::Boolean::New(env, f.avx2));
  o.Set("fma", Napi::Boolean::New(env, f.fma));
  o.Set("f16c", Napi::Boolean::New(env, f.f16c));
  o.Set("avx512f", Napi::Boolean::New(env, f.avx512f));
  o.Set("sse42", Napi::Boolean::New(env, f.sse42));
  o.Set("model", Napi::String::New(env, f.model));
  return o;
}

}  // namespace hwkv_napi
