// The GPTQ-convention directory and GPTQ checkpoints of other tools (model/quantized_model_io.h):
// the input is config.json (HF keys, quantization_config with quant_method "gptq", and wkvq's
// section or none), loaded beside the fixed model.safetensors and wkvq_kv.safetensors of
// `wkvq quantize --format gptq` (the directory named by WKVQ_FUZZ_GPTQ_DIR, made by
// fuzz/make_seeds.py). Every key must be checked against the tensors, never trusted.
#include "fuzz_support.h"
#include "model/quantized_model_io.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  wkvq::fuzz::link_quantized_safetensors("WKVQ_FUZZ_GPTQ_DIR");
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
