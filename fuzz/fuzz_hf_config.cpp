// Hugging Face config.json (io/hf_config.h) and its conversion into a LlamaConfig
// (model/loader.h), with and without the architecture requirement.
#include "fuzz_support.h"
#include "io/hf_config.h"
#include "model/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  const std::string text(fuzz::as_text(data, size));
  for (const bool require_architecture : {true, false}) {
    fuzz::result_or_error([&] {
      const HfConfig hf = parse_hf_config(text, "config.json", require_architecture);
      config_from_hf(hf).validate("config.json");
    });
  }
  return 0;
}
