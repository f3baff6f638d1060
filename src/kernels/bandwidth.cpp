#include "kernels/bandwidth.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/clock.h"
#include "core/huge_pages.h"
#include "core/parallel.h"

namespace wkvq {

namespace {

// XOR of w[0, n): four streams a quarter of the block apart, read in step, so that a core keeps
// as many lines in flight as its prefetchers allow (one stream of 16-byte loads fills the
// reorder window before it fills the memory's pipeline: at 1 thread a single stream read 25-33
// GB/s where the decode GEMV streamed 30-33).
uint64_t xor_block(const uint64_t* w, int64_t n) {
  const int64_t q = n / 4;
  uint64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
  for (int64_t i = 0; i < q; ++i) {  // vectorises
    x0 ^= w[i];
    x1 ^= w[q + i];
    x2 ^= w[2 * q + i];
    x3 ^= w[3 * q + i];
  }
  for (int64_t i = 4 * q; i < n; ++i) x0 ^= w[i];
  return x0 ^ x1 ^ x2 ^ x3;
}

}  // namespace

double measure_read_bandwidth(size_t bytes, int repeats) {
  const auto n = static_cast<int64_t>(bytes / sizeof(uint64_t));
  if (n <= 0 || repeats <= 0) return 0.0;
  // Read as decode reads its weights: from huge pages where the OS gives them (advised before the
  // first touch, so no page is collapsed later), one contiguous block per thread (the int8 GEMV's
  // split).
  const auto buf = std::make_unique_for_overwrite<uint64_t[]>(static_cast<size_t>(n));
  advise_huge_pages(buf.get(), static_cast<size_t>(n) * sizeof(uint64_t));
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i) * 7;
  });
  const int64_t threads = num_threads();
  const int64_t block = (n + threads - 1) / threads;
  std::vector<uint64_t> part(static_cast<size_t>(threads));
  double best = 0.0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t begin = t * block;
        const int64_t end = (t + 1) * block < n ? (t + 1) * block : n;
        part[static_cast<size_t>(t)] = xor_block(buf.get() + begin, end > begin ? end - begin : 0);
      }
    });
    const double s = seconds_since(t0);
    for (const uint64_t x : part) sink = sink ^ x;
    if (static_cast<double>(bytes) / s > best) best = static_cast<double>(bytes) / s;
  }
  return best;
}

}  // namespace wkvq
