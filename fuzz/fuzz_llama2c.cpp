// llama2.c checkpoint (io/llama2c_file.h, model/loader.h): the header parser on the input bytes;
// when the header and the size agree, the whole loader on them as a file (config validation,
// the finiteness scan of the weights).
#include "fuzz_support.h"
#include "io/llama2c_file.h"
#include "model/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  fuzz::result_or_error([&] {
    parse_llama2c_header(data, size, "fuzz.bin");
    const std::string path = fuzz::scratch().write("model.bin", data, size);
    const Model m = load_llama2c_model(path);
    m.config.validate(path);
  });
  return 0;
}
