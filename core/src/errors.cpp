// errors.cpp — thread-local last-error message.
#include <cstdarg>
#include <cstdio>

#include "common.h"

namespace hwkv {

namespace {
thread_local char g_last_error[1024] = {0};
}

hwkv_status fail(hwkv_status st, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
  va_end(ap);
  return st;
}

const char* last_error() { return g_last_error; }

}  // namespace hwkv
