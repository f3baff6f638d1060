// SpTokenizer: SentencePiece tokenizer.model (Hugging Face Llama models) through libsentencepiece.
#pragma once

#include <memory>
#include <string>

#include "runtime/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace wkvq {

class SpTokenizer final : public Tokenizer {
 public:
  explicit SpTokenizer(const std::string& path);
  ~SpTokenizer() override;

  std::vector<int> encode(std::string_view text, bool bos, bool eos) const override;
  // The piece with U+2581 as a space, byte pieces <0xXX> as their byte, control tokens empty;
  // the leading space of the first piece after BOS is dropped.
  std::string decode_piece(int prev, int token) const override;
  int vocab_size() const override;
  int bos_id() const override;
  int eos_id() const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace wkvq
