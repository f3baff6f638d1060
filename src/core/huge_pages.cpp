#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace wkvq {

namespace {
constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
#ifndef MADV_COLLAPSE
constexpr int MADV_COLLAPSE = 25;  // Linux 6.1 (asm-generic/mman-common.h)
#endif
}  // namespace

size_t advise_huge_pages(const void* p, size_t n) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t begin = (a + kHugePage - 1) / kHugePage * kHugePage;
  const uintptr_t end = (a + n) / kHugePage * kHugePage;
  if (p == nullptr || end <= begin) return 0;
  void* start = reinterpret_cast<void*>(begin);
  const size_t len = end - begin;
  ::madvise(start, len, MADV_HUGEPAGE);
  ::madvise(start, len, MADV_COLLAPSE);
  return len;
}

}  // namespace wkvq
