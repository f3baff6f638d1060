// safetensors (io/safetensors.h): the header JSON and the tensor table of one file, then every
// tensor's data read back as float32 (bounds of the offsets, dtype conversion).
#include <vector>

#include "fuzz_support.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  // Enough for the tensors of the seeds; larger ones are still validated, just not converted.
  constexpr int64_t kMaxConverted = int64_t{1} << 16;
  fuzz::result_or_error([&] {
    const auto f = SafetensorsFile::open(fuzz::scratch().write("model.safetensors", data, size));
    std::vector<float> buf;
    for (const auto& [name, t] : f.tensors()) {
      (void)t.shape_string();
      (void)t.f32_in_place();
      if (!dtype_supported(t.dtype) || t.numel > kMaxConverted) continue;
      buf.resize(static_cast<size_t>(t.numel));
      t.to_f32(buf.data());
    }
  });
  return 0;
}
