// Sharded safetensors (io/safetensors.h, SafetensorsSet::open_dir): the input is
// model.safetensors.index.json, beside one real shard model.safetensors (from the quantized
// directory named by WKVQ_FUZZ_QUANTIZED_DIR). Shard names must stay inside the directory.
#include "fuzz_support.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  wkvq::fuzz::link_quantized_safetensors();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  const fuzz::ScratchDir& dir = fuzz::scratch();
  dir.write("model.safetensors.index.json", data, size);
  fuzz::result_or_error([&] {
    const SafetensorsSet set = SafetensorsSet::open_dir(dir.path());
    for (const std::string& name : set.names()) (void)set.get(name).shape_string();
  });
  return 0;
}
