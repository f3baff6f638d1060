// HfAddedTokens: the "added_tokens" of a Hugging Face tokenizer.json (special tokens such as
// <|begin_of_text|>, <|eot_id|>, <|im_start|>, and added words such as Qwen's <think>). They are
// found in the raw text before normalization and pre-tokenization, leftmost first and longest
// at a position (as Hugging Face's tokenizers do); the text between them goes to the model.
//
// Tokens with "special": true are looked for only when special tokens are parsed (an option of
// the caller); otherwise text such as "<|eot_id|>" in user input is ordinary text, as with
// Hugging Face's split_special_tokens=True. Added tokens that are not special are always
// looked for. "lstrip" / "rstrip" remove the ASCII whitespace before / after a found token.
// Not supported (an error naming the key): "single_word": true.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/json_node.h"

namespace wkvq {

class HfAddedTokens {
 public:
  struct Token {
    std::string content;
    int id = -1;
    bool special = false, lstrip = false, rstrip = false;
  };
  // One stretch of the text: either text for the model (id < 0) or an added token.
  struct Segment {
    std::string_view text;
    int id = -1;
  };

  // `added_tokens` is tokenizer.json's "added_tokens" array.
  explicit HfAddedTokens(const JsonNode& added_tokens);

  // Cuts `text` into segments (empty text segments left out).
  std::vector<Segment> split(std::string_view text, bool parse_special) const;

  // The added token with this id, or nullptr.
  const Token* find(int id) const;
  // The id of an added token with this content, or -1.
  int id_of(std::string_view content) const;
  const std::vector<Token>& tokens() const { return tokens_; }

 private:
  // The longest usable token that starts at text[at], or nullptr.
  const Token* match_at(std::string_view text, size_t at, bool parse_special) const;

  std::vector<Token> tokens_;
  std::unordered_map<int, size_t> by_id_;
  std::vector<size_t> by_first_byte_[256];  // token indices, longest first
};

}  // namespace wkvq
