// UnicodeRegex: a PCRE2 pattern compiled for UTF-8 text with Unicode properties (\p{L}, \s and
// \d by Unicode, PCRE2_UTF | PCRE2_UCP) and JIT-compiled, as tokenizer.json's Split patterns
// need. Matching assumes valid UTF-8 (the tokenizer replaces invalid bytes first).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wkvq {

class UnicodeRegex {
 public:
  // Throws wkvq::Error with PCRE2's message and offset; `where` names the pattern's origin.
  UnicodeRegex(const std::string& pattern, const std::string& where);
  ~UnicodeRegex();
  UnicodeRegex(const UnicodeRegex&) = delete;
  UnicodeRegex& operator=(const UnicodeRegex&) = delete;

  // The non-empty, non-overlapping matches of the pattern in `text`, left to right, as byte
  // ranges [first, second); appended to `out`.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  struct Code;
  std::string pattern_, where_;
  std::unique_ptr<Code> code_;
};

}  // namespace wkvq
