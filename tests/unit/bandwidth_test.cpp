// The read-bandwidth probe behind `wkvq bench`'s decode bound (kernels/bandwidth.h): a pass that
// read nothing (a block left out, a loop that never runs) would report an impossible speed, and a
// pass that hung would never return; the probe must give a plausible figure at any thread count,
// for buffers that do not split evenly, and 0 when there is nothing to read.
#include "kernels/bandwidth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>

#include "test_support.h"

namespace wkvq {
namespace {

// Bounds no machine leaves for 64 MiB read by at most 3 threads: 0.1 GB/s to 2 TB/s (a core reads
// DRAM or L3 at some 10-200 GB/s). A pass that reads nothing still costs the pool's wake-ups, a
// few to some 20 microseconds: 3 TB/s and more.
constexpr double kSlowest = 1e8;
constexpr double kFastest = 2e12;

TEST(ReadBandwidth, PlausibleAtEveryThreadCount) {
  for (const int threads : {1, 2, 3}) {
    test::ThreadCount tc(threads);
    // 64 MiB plus 8 bytes: not a multiple of the thread count's blocks.
    const double bw = measure_read_bandwidth((size_t{64} << 20) + 8, 2);
    EXPECT_TRUE(std::isfinite(bw)) << threads << " threads";
    EXPECT_GT(bw, kSlowest) << threads << " threads";
    EXPECT_LT(bw, kFastest) << threads << " threads";
  }
}

TEST(ReadBandwidth, NothingToReadIsZero) {
  EXPECT_EQ(measure_read_bandwidth(0, 3), 0.0);
  EXPECT_EQ(measure_read_bandwidth(4, 3), 0.0);  // less than one word
  EXPECT_EQ(measure_read_bandwidth(size_t{1} << 20, 0), 0.0);
}

}  // namespace
}  // namespace wkvq
