#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace wkvq {

void invariant_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "wkvq: internal invariant violated: %s at %s:%d (this is a bug)\n", expr,
               file, line);
  std::abort();
}

}  // namespace wkvq
