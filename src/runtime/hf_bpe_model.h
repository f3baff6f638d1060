// HfBpeModel: the "model" of a Hugging Face tokenizer.json of type BPE: a vocabulary of token
// strings, merges applied by rank, and what happens to characters outside the vocabulary.
//
// A word (one piece of the pre-tokenizer) is encoded as Hugging Face's BPE does:
//  - ignore_merges: a word that is itself a token is that token;
//  - otherwise its symbols: with a byte-level vocabulary (ByteLevel pre-tokenizer) each byte's
//    alphabet symbol (byte_level.h); else each UTF-8 character; a symbol outside the vocabulary
//    becomes its bytes' <0xXX> tokens (byte_fallback, when all exist), else unk_token (runs of
//    them fused into one with fuse_unk), else nothing;
//  - then, while some adjacent pair of symbols is a merge, the pair with the lowest rank (the
//    leftmost of equal ones) is merged into the token a+b. O(n log n) with a heap.
// Merges are "a b" strings or ["a", "b"] pairs; both halves and a+b must be tokens.
// Not supported (an error naming the key): dropout, continuing_subword_prefix and
// end_of_word_suffix other than empty.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/byte_level.h"
#include "runtime/json_node.h"

namespace wkvq {

class HfBpeModel {
  struct StringHash {  // lets string maps be searched with a string_view, without a copy
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

 public:
  // Encoded words already seen in one encode call (a word's bytes -> its ids).
  using WordCache = std::unordered_map<std::string, std::vector<int>, StringHash, std::equal_to<>>;

  // `model` is tokenizer.json's "model"; byte_level says whether the pre-tokenizer is ByteLevel.
  HfBpeModel(const JsonNode& model, bool byte_level);

  // Appends the ids of `word` (raw bytes, valid UTF-8) to `out`.
  void encode_word(std::string_view word, WordCache& cache, std::vector<int>& out) const;

  // Id of a token string, -1 when none.
  int id(std::string_view token) const;
  // The token string of an id ("" for an id without one); the caller checks the range.
  const std::string& token(int id) const { return tokens_[static_cast<size_t>(id)]; }
  // 1 + the largest id of the vocabulary.
  int size() const { return static_cast<int>(tokens_.size()); }
  bool byte_level() const { return byte_level_; }

 private:
  struct Merge {
    int rank, id;
  };
  static uint64_t pair_key(int a, int b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void load_vocab(const JsonNode& vocab);
  void load_merges(const JsonNode& merges);
  void initial_symbols(std::string_view word, std::vector<int>& syms) const;
  void merge(std::vector<int>& syms) const;

  std::unordered_map<std::string, int, StringHash, std::equal_to<>> ids_;
  std::vector<std::string> tokens_;
  std::unordered_map<uint64_t, Merge> merges_;
  ByteLevelAlphabet alphabet_;
  int byte_ids_[256];      // byte-level: id of each byte's symbol, or -1
  int fallback_ids_[256];  // byte_fallback: id of <0xXX>, or -1
  int unk_id_ = -1;
  bool byte_level_ = false, byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
};

}  // namespace wkvq
