// Measures the machine's sustained memory read bandwidth, for the decode speed bound
// (decode is memory-bound: tok/s <= bandwidth / bytes read per token).
#pragma once

#include <cstddef>

namespace wkvq {

// Best of `repeats` multithreaded passes reading a `bytes`-sized buffer; bytes per second.
double measure_read_bandwidth(size_t bytes = size_t{512} << 20, int repeats = 3);

}  // namespace wkvq
