// Transparent huge pages for large weight buffers: fewer TLB misses when decode streams through
// hundreds of MB of weights per token. Advisory only: where the kernel has no THP (or it is
// disabled) nothing changes and nothing fails.
#pragma once

#include <cstddef>

namespace wkvq {

// The 2 MiB-aligned part of [p, p + n) is marked MADV_HUGEPAGE and, where the kernel supports it
// (Linux >= 6.1), collapsed into huge pages right away (MADV_COLLAPSE); errors are ignored.
// Returns the bytes advised (0 when the range holds no whole huge page).
size_t advise_huge_pages(const void* p, size_t n);

}  // namespace wkvq
