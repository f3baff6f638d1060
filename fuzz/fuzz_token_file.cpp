// Calibration token file (calibrate/token_file.h): what `wkvq quantize` hands to the worker.
#include "calibrate/token_file.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  constexpr int kVocab = 512;  // stories260K's, the model of the seed run
  fuzz::result_or_error([&] {
    (void)read_token_file(fuzz::scratch().write("calib_tokens.bin", data, size), kVocab);
  });
  return 0;
}
