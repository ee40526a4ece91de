// common.h — shared helpers of the CPU core: error reporting, the ABI guard, small utilities.
//
// Errors: every failing path calls fail(status, fmt, ...), which formats the message into a thread-local
// fixed buffer (no allocation, so it works while out of memory) and returns the status. hwkv_last_error()
// returns that buffer. Messages start with the ABI function name without the hwkv_ prefix, e.g.
// "block_append: block 7 is not a live block (store has 3 live blocks)".
#ifndef HWKV_CORE_COMMON_H
#define HWKV_CORE_COMMON_H

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>

#include "../include/hwkv.h"

#if defined(__GNUC__) || defined(__clang__)
#define HWKV_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define HWKV_RESTRICT __restrict__
#else
#define HWKV_PRINTF(fmt_idx, arg_idx)
#define HWKV_RESTRICT
#endif

namespace hwkv {

// Sets the thread-local last error and returns `st`.
hwkv_status fail(hwkv_status st, const char* fmt, ...) HWKV_PRINTF(2, 3);
// The thread-local last error ("" if none).
const char* last_error();

// Runs f() (returning hwkv_status) so that no C++ exception escapes: std::bad_alloc becomes
// HWKV_ERR_OUT_OF_MEMORY, anything else HWKV_ERR_INTERNAL; `fn` names the ABI function in the message.
template <class F>
hwkv_status guarded(const char* fn, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(HWKV_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
  } catch (const std::exception& e) {
    return fail(HWKV_ERR_INTERNAL, "%s: internal error: %s", fn, e.what());
  } catch (...) {
    return fail(HWKV_ERR_INTERNAL, "%s: internal error: unknown exception", fn);
  }
}

// Propagate a non-OK status.
#define HWKV_TRY(expr)                    \
  do {                                    \
    hwkv_status hwkv_st_ = (expr);        \
    if (hwkv_st_ != HWKV_OK) return hwkv_st_; \
  } while (0)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace hwkv

#endif
