// HfNormalizer: the "normalizer" of a Hugging Face tokenizer.json, applied to each stretch of
// text between added tokens before pre-tokenization. Supported types: NFC, NFD, NFKC, NFKD
// (ICU's normalizers), Prepend (prepends "prepend" to non-empty text), Replace (every match of
// pattern {"String": s} or {"Regex": r} becomes "content"), Sequence ("normalizers" in order)
// and null (none). Any other type is an error naming the file and key.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/json_node.h"

namespace wkvq {

class UnicodeRegex;

class HfNormalizer {
 public:
  explicit HfNormalizer(const JsonNode& normalizer);
  ~HfNormalizer();
  HfNormalizer(HfNormalizer&&) noexcept;
  HfNormalizer& operator=(HfNormalizer&&) noexcept;

  bool is_identity() const { return steps_.empty(); }
  // The normalized text (valid UTF-8 in, valid UTF-8 out).
  std::string apply(std::string_view text) const;

 private:
  enum class Kind { kUnicode, kPrepend, kReplaceString, kReplaceRegex };
  struct Step {
    Kind kind;
    std::string text, content;             // Prepend: text; Replace: pattern, content
    std::shared_ptr<UnicodeRegex> regex;   // kReplaceRegex
    const void* icu_normalizer = nullptr;  // kUnicode: an icu::Normalizer2
  };
  void add(const JsonNode& node);
  static std::string run(const Step& s, std::string text);

  std::vector<Step> steps_;
};

}  // namespace wkvq
