// SentencePiece tokenizer.model (runtime/sp_tokenizer.h) through load_tokenizer, as wkvq opens
// it: libsentencepiece parses the model (its own protobuf parser, not instrumented here); this
// fuzzes our handling of what it accepts: the probe, BOS/EOS ids, encode and decode_piece.
#include <algorithm>

#include "fuzz_support.h"
#include "runtime/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wkvq;
  constexpr int kMaxDecoded = 4096;
  fuzz::result_or_error([&] {
    const auto tok = load_tokenizer(fuzz::scratch().write("tokenizer.model", data, size));
    const std::vector<int> ids =
        tok->encode("Once upon a time, \xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82", true, true);
    (void)tok->decode(ids);
    for (int id = 0; id < std::min(tok->vocab_size(), kMaxDecoded); ++id) {
      (void)tok->decode_piece(tok->bos_id(), id);
    }
  });
  return 0;
}
