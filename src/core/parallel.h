// Parallel loops over an index range, on OpenMP's thread team. The number of threads is the
// process's OpenMP setting (set_num_threads at the CLI boundary; default: all cores).
#pragma once

#include <cstdint>

namespace wkvq {

int num_threads();
void set_num_threads(int n);

// Calls body(begin, end) on disjoint chunks covering [0, n), each chunk a multiple of `grain`
// (except the last), chunks spread over the threads. Runs inline when n is small.
template <class Body>
void parallel_for(int64_t n, int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * grain;
    const int64_t e = b + grain < n ? b + grain : n;
    body(b, e);
  }
}

}  // namespace wkvq
