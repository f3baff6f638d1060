// Hugging Face tokenizer.json (runtime/hf_tokenizer.h) through load_tokenizer, as wkvq opens it:
// the JSON, the model/normalizer/pre-tokenizer/decoder sections (PCRE2 compiles the file's Split
// regex), then encode with and without special tokens, decode and decode_piece.
#include <algorithm>

#include "fuzz_support.h"
#include "runtime/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  constexpr int kMaxDecoded = 4096;
  for (const bool special : {false, true}) {
    fuzz::result_or_error([&] {
      TokenizerOptions opt;
      opt.parse_special = special;
      const auto tok = load_tokenizer(fuzz::scratch().write("tokenizer.json", data, size), opt);
      const std::vector<int> ids = tok->encode(
          "Once upon a time,  \t\r\n\xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82 123456 <|eot_id|> \xFF",
          true, true);
      (void)tok->decode(ids);
      for (int id = 0; id < std::min(tok->vocab_size(), kMaxDecoded); ++id) {
        (void)tok->decode_piece(tok->bos_id(), id);
      }
    });
  }
  return 0;
}
