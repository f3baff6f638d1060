// llama2.c's byte-pair-encoding tokenizer, read from its tokenizer.bin format.
//
// File layout (little-endian, no header beyond the first field, no version):
//   int32 max_token_length
//   vocab_size times: float32 score, int32 len, len bytes (the piece, not NUL-terminated)
// vocab_size is not stored: it is the model's vocab size, or "until end of file".
//
// encode (run.c `encode`): BOS (id 1) if asked; if the text is non-empty, the dummy-prefix token
// (the piece " "); the text split into groups of one byte plus up to 3 following UTF-8
// continuation bytes (10xxxxxx), each group its piece id when it is a piece, else one byte-fallback
// id (byte + 3) per byte; then, while some adjacent pair concatenates to a piece, the pair whose
// piece has the highest score (strictly above -1e10; the leftmost on ties) is merged; EOS (id 2)
// if asked. Merging runs in O(n log n) on a linked list of symbols with a priority queue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer.h"

namespace wkvq {

class BpeTokenizer final : public Tokenizer {
 public:
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;
  // Byte b without a piece of its own becomes id b + kByteFallbackOffset.
  static constexpr int kByteFallbackOffset = 3;
  // A merge is taken only when its score is strictly above this (llama2.c's initial best score).
  static constexpr float kMinMergeScore = -1e10f;

  // Reads a tokenizer.bin; vocab_size 0 reads tokens until the end of the file, otherwise the
  // file must hold exactly vocab_size tokens. Throws wkvq::Error naming the file and token.
  static std::unique_ptr<BpeTokenizer> load(const std::string& path, int vocab_size);
  // The same from the bytes of a file; `name` is used in error messages.
  static std::unique_ptr<BpeTokenizer> parse(std::string_view bytes, int vocab_size,
                                             const std::string& name);

  // A vocabulary in memory (at least 3 tokens: <unk>, <s>, </s>). When a piece repeats, lookups
  // give its first id.
  BpeTokenizer(const std::vector<std::string>& pieces, const std::vector<float>& scores,
               int max_token_length, std::string name = "<memory>");
  BpeTokenizer(const BpeTokenizer&) = delete;  // the lookup table points into blob_
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  std::vector<int> encode(std::string_view text, bool bos, bool eos) const override;
  // The piece; its leading space dropped when prev is BOS; "<0xXX>" gives byte XX; BOS and EOS
  // give "" (they are not text). Throws wkvq::Error for an id outside [0, vocab_size).
  std::string decode_piece(int prev, int token) const override;
  int vocab_size() const override { return static_cast<int>(offsets_.size()) - 1; }
  int bos_id() const override { return kBos; }
  int eos_id() const override { return kEos; }

  std::string_view piece(int id) const;
  float score(int id) const { return scores_[static_cast<size_t>(id)]; }
  int max_token_length() const { return max_token_length_; }
  // Id of a piece, or -1 when it is not in the vocabulary.
  int lookup(std::string_view piece) const;

 private:
  // The symbols before merging: dummy prefix and code-point groups (or byte fallbacks).
  void initial_symbols(std::string_view text, std::vector<int>& out) const;
  // Appends the byte-fallback id of byte `b` at text offset `at` (throws when the vocab has none).
  void push_byte_fallback(unsigned char b, size_t at, std::vector<int>& out) const;
  // Merges `ids` in place, highest-scoring (then leftmost) pair first.
  void merge(std::vector<int>& ids) const;
  // Id of piece(a) + piece(b) when it is a piece, else -1.
  int lookup_pair(int a, int b) const;

  std::string name_;
  std::vector<char> blob_;         // all pieces back to back
  std::vector<uint32_t> offsets_;  // piece i is blob_[offsets_[i], offsets_[i + 1])
  std::vector<float> scores_;
  int max_token_length_ = 0;
  std::vector<int32_t> table_;  // open-addressing hash table of ids (-1 empty), size 2^k
  uint32_t table_mask_ = 0;
};

}  // namespace wkvq
