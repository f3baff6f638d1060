// HfPreTokenizer: the "pre_tokenizer" of a Hugging Face tokenizer.json, which cuts normalized
// text into the words that the BPE model encodes one by one. Supported types:
//   Split      {"pattern": {"Regex": r} | {"String": s}, "behavior", "invert"}: the matches of
//              the pattern (PCRE2, unicode_regex.h) and the text between them as separate
//              words (behavior Isolated), or only the text between them (Removed); "invert"
//              swaps the two roles;
//   ByteLevel  {"add_prefix_space", "use_regex"}: a space before each piece that does not start
//              with one (add_prefix_space), then GPT-2's split regex (use_regex, default true);
//              the model then sees the words in the byte-level alphabet (byte_level.h). It must
//              be the last pre-tokenizer;
//   Metaspace  {"replacement", "prepend_scheme", "split": false}: every space becomes the
//              replacement (U+2581); it is put in front of a piece that does not start with it
//              when prepend_scheme is "always", or "first" and the piece starts the input (not
//              after an added token); "never" puts none. A file without prepend_scheme uses
//              add_prefix_space (true: "always");
//   Sequence   {"pretokenizers": [...]} in order; null: the text is one word.
// Anything else (other types, behaviors, Metaspace split true) is an error naming the file and
// key.
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

  // Appends the words of `text` (raw bytes; the byte-level mapping is the model's job) to `out`;
  // `at_start`: the text begins the input (for Metaspace's "first").
  void split(std::string_view text, bool at_start, std::vector<std::string>& out) const;
  // Whether a ByteLevel pre-tokenizer is present: the model's vocabulary is byte-level.
  bool byte_level() const { return byte_level_; }

 private:
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind = Kind::kSplit;
    std::shared_ptr<UnicodeRegex> regex;   // Split, ByteLevel with use_regex
    std::string literal;                   // Split with a String pattern; Metaspace replacement
    bool removed = false, invert = false;  // Split
    bool prefix_space = false;             // ByteLevel add_prefix_space
    Prepend prepend = Prepend::kAlways;    // Metaspace
  };
  void add(const JsonNode& node);
  void add_split(const JsonNode& node);
  void add_metaspace(const JsonNode& node);
  static void apply(const Step& s, std::string_view piece, bool at_start,
                    std::vector<std::string>& out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace wkvq
