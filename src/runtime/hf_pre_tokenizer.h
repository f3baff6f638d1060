// HfPreTokenizer: the "pre_tokenizer" of a Hugging Face tokenizer.json, which cuts normalized
// text into the words that the BPE model encodes one by one. Supported types:
//   Split      {"pattern": {"Regex": r} | {"String": s}, "behavior", "invert"}: the matches of
//              the pattern (PCRE2, unicode_regex.h) and the text between them, combined as
//              "behavior" says: Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous;
//   ByteLevel  {"add_prefix_space", "use_regex"}: a space before each piece that does not start
//              with one (add_prefix_space), then GPT-2's split regex (use_regex, default true);
//              the model then sees the words in the byte-level alphabet (byte_level.h). It must
//              be the last pre-tokenizer;
//   Sequence   {"pretokenizers": [...]} in order; null: the text is one word.
// Anything else is an error naming the file and key.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/json_node.h"

namespace wkvq {

class UnicodeRegex;

class HfPreTokenizer {
 public:
  explicit HfPreTokenizer(const JsonNode& pre_tokenizer);
  ~HfPreTokenizer();
  HfPreTokenizer(HfPreTokenizer&&) noexcept;
  HfPreTokenizer& operator=(HfPreTokenizer&&) noexcept;

  // Appends the words of `text` (raw bytes; the byte-level mapping is the model's job) to `out`.
  void split(std::string_view text, std::vector<std::string>& out) const;
  // Whether a ByteLevel pre-tokenizer is present: the model's vocabulary is byte-level.
  bool byte_level() const { return byte_level_; }

 private:
  enum class Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    std::shared_ptr<UnicodeRegex> regex;  // null: a ByteLevel step without use_regex
    std::string literal;                  // a String pattern (when regex is null and !prefix)
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool prefix_space = false;  // ByteLevel add_prefix_space
  };
  void add(const JsonNode& node);
  static void apply(const Step& s, std::string_view piece, std::vector<std::string>& out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace wkvq
