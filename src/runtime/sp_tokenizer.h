// SpTokenizer: a SentencePiece tokenizer.model (Hugging Face Llama models) via libsentencepiece.
//
// encode: SentencePiece's own encoding, with the model's BOS / EOS ids around it when asked.
// decode_piece: what the piece contributes to the text, so that printing pieces one by one gives
// the decoded sequence: U+2581 becomes a space, a byte piece <0xXX> its raw byte, control pieces
// (<s>, </s>) nothing, <unk> SentencePiece's " \u2047 "; after BOS the leading space that the
// model's dummy prefix added is dropped.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace wkvq {

class SpTokenizer final : public Tokenizer {
 public:
  // Throws wkvq::Error naming the path when the file cannot be loaded as a SentencePiece model.
  explicit SpTokenizer(const std::string& path);
  ~SpTokenizer() override;
  SpTokenizer(const SpTokenizer&) = delete;
  SpTokenizer& operator=(const SpTokenizer&) = delete;

  std::vector<int> encode(std::string_view text, bool bos, bool eos) const override;
  std::string decode_piece(int prev, int token) const override;
  int vocab_size() const override { return vocab_size_; }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }

  // Whether the model prepends a space (U+2581) to the text, so that decoding drops it again.
  bool adds_dummy_prefix() const { return dummy_prefix_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  int vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1;
  bool dummy_prefix_ = true;
};

}  // namespace wkvq
