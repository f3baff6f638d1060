// llama2.c tokenizer.bin (runtime/bpe_tokenizer.h): the vocabulary parser, then the tokenizer
// it gives used as wkvq uses it: encoding text (fixed samples and the input's own bytes, for
// byte fallback and UTF-8 edge cases) and decoding every id.
#include <algorithm>

#include "fuzz_support.h"
#include "runtime/bpe_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  constexpr size_t kMaxText = 256;  // bytes of the input also encoded as text
  constexpr int kMaxDecoded = 4096;
  fuzz::result_or_error([&] {
    const auto tok = BpeTokenizer::parse(fuzz::as_text(data, size), 0, "tokenizer.bin");
    const std::string_view input = fuzz::as_text(data, std::min(size, kMaxText));
    for (const std::string_view text :
         {std::string_view("Once upon a time, \xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82"), input}) {
      const std::vector<int> ids = tok->encode(text, true, true);
      (void)tok->decode(ids);
    }
    for (int id = 0; id < std::min(tok->vocab_size(), kMaxDecoded); ++id) {
      (void)tok->decode_piece(BpeTokenizer::kBos, id);
    }
  });
  return 0;
}
