// Measures the machine's sustained memory read bandwidth, for the decode speed bound
// (decode is memory-bound: tok/s <= bandwidth / bytes read per token).
#pragma once

#include <cstddef>

namespace wkvq {

// Best of `repeats` passes reading a `bytes`-sized buffer on the pool's threads (num_threads()),
// one contiguous block each, from huge pages where the OS gives them (as decode reads its
// weights); bytes per second (0 for an empty buffer or no pass).
double measure_read_bandwidth(size_t bytes = size_t{512} << 20, int repeats = 3);

}  // namespace wkvq
