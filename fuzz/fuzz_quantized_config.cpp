// The quantized model directory (model/quantized_model_io.h): the input is its config.json (the
// HF keys and quantization_config), loaded beside a fixed model.safetensors written by
// `wkvq quantize` (the directory named by WKVQ_FUZZ_QUANTIZED_DIR, made by fuzz/make_seeds.py).
// Every config change must be checked against the tensors, never trusted.
#include "fuzz_support.h"
#include "model/quantized_model_io.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  wkvq::fuzz::link_quantized_safetensors();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  const fuzz::ScratchDir& dir = fuzz::scratch();
  dir.write("config.json", data, size);
  (void)is_quantized_model_dir(dir.path());
  fuzz::result_or_error([&] {
    const Model m = load_quantized_model(dir.path());
    m.config.validate(dir.path());
  });
  return 0;
}
