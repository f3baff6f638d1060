// Calibration block file (calibrate/block_file.h; wkvq_calibrate_data, no libtorch). The parser
// must be total, and the format exact: whatever it accepts serializes back to the same bytes.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "calibrate/block_file.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  fuzz::result_or_error([&] {
    const BlockFile f = parse_block_file(data, size, "block_0000.wkvqcal");
    const std::vector<uint8_t> again = serialize_block_file(f);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) {
      std::fprintf(stderr, "block file accepted (%zu bytes) but serializes to %zu other bytes\n",
                   size, again.size());
      std::abort();
    }
  });
  return 0;
}
