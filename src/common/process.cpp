#include "tensair/common/process.hpp"

#include <malloc.h>

#include <cstdlib>

namespace tensair {
namespace {
const char* g_description = "glibc malloc, defaults";
}

const char* tune_allocator() {
  if (std::getenv("GLIBC_TUNABLES") || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_")) {
    g_description = "glibc malloc, settings from the environment";
    return g_description;
  }
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(0x7fffffff));
  g_description = "glibc malloc, mmap_threshold=4MiB trim_threshold=2GiB (mallopt)";
  return g_description;
}

const char* allocator_description() { return g_description; }

}  // namespace tensair
