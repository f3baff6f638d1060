// BpeTokenizer: llama2.c's tokenizer (tokenizer.bin) with its exact semantics.
//
// File: int32 max_token_length, then per token: float32 score, int32 length, `length` bytes.
// Encoding: BOS (1) if asked; for non-empty text the dummy-prefix token (the piece " "); every
// UTF-8 code point (a lead byte and up to 3 continuation bytes) as its piece, or its bytes as
// byte-fallback tokens (id = byte + 3) when the vocabulary lacks it; then, repeatedly, the
// adjacent pair whose concatenation is a piece with the highest score is merged (the leftmost
// one on ties) until no pair merges; EOS (2) if asked.
// The merge loop runs on a linked list with a priority queue ordered by (score, leftmost), so a
// 1.3 MB text encodes in a fraction of a second, with exactly the naive algorithm's result.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer.h"

namespace wkvq {

class BpeTokenizer final : public Tokenizer {
 public:
  // Reads `vocab_size` tokens from `path` (0: every token up to the end of the file).
  BpeTokenizer(const std::string& path, int vocab_size);

  std::vector<int> encode(std::string_view text, bool bos, bool eos) const override;
  std::string decode_piece(int prev, int token) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }

  const std::string& piece(int id) const { return pieces_[static_cast<size_t>(id)]; }
  float score(int id) const { return scores_[static_cast<size_t>(id)]; }
  // Id of an exact piece, or -1.
  int lookup(std::string_view s) const;

 private:
  std::vector<int> initial_symbols(std::string_view text) const;
  void merge(std::vector<int>& ids) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string_view, int> index_;  // views into pieces_
  int max_token_length_ = 0;
};

}  // namespace wkvq
