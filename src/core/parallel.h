// Parallel loops over an index range, on OpenMP's thread team. The number of threads is the
// process's OpenMP setting (set_num_threads at the CLI boundary; default: all cores).
#pragma once

#include <cstdint>
#include <exception>

namespace wkvq {

int num_threads();
void set_num_threads(int n);

// Calls body(begin, end) on disjoint chunks covering [0, n), each chunk a multiple of `grain`
// (except the last), chunks spread over the threads. Runs inline when n is small. An exception
// thrown by `body` stops the remaining chunks and is rethrown to the caller (one of them, when
// several threads throw).
template <class Body>
void parallel_for(int64_t n, int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1) {
    body(int64_t{0}, n);
    return;
  }
  std::exception_ptr error;
  bool failed = false;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    bool stop;
#pragma omp atomic read
    stop = failed;
    if (stop) continue;
    const int64_t b = c * grain;
    const int64_t e = b + grain < n ? b + grain : n;
    try {
      body(b, e);
    } catch (...) {
#pragma omp critical(wkvq_parallel_for_error)
      {
        if (!error) error = std::current_exception();
      }
#pragma omp atomic write
      failed = true;
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace wkvq
