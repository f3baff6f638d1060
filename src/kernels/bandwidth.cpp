#include "kernels/bandwidth.h"

#include <chrono>
#include <cstdint>
#include <vector>

#include "core/clock.h"
#include "core/parallel.h"

namespace wkvq {

double measure_read_bandwidth(size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  parallel_for(static_cast<int64_t>(n), 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i) * 7;
  });
  double best = 0.0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t acc = 0;
    const int64_t chunk = static_cast<int64_t>(n) / (num_threads() * 4) + 1;
#pragma omp parallel for schedule(static) reduction(^ : acc)
    for (int64_t c = 0; c < static_cast<int64_t>(n); c += chunk) {
      const int64_t e = c + chunk < static_cast<int64_t>(n) ? c + chunk : static_cast<int64_t>(n);
      uint64_t x = 0;
      for (int64_t i = c; i < e; ++i) x ^= buf[static_cast<size_t>(i)];  // vectorises
      acc ^= x;
    }
    const double s = seconds_since(t0);
    sink = sink ^ acc;
    if (static_cast<double>(bytes) / s > best) best = static_cast<double>(bytes) / s;
  }
  return best;
}

}  // namespace wkvq
