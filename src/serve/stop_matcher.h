// Stop strings of an OpenAI request ("stop"): generation ends where the text first contains one
// of them, and the stop string itself is not returned. Text arrives piece by piece (one decoded
// token at a time), so a stop string can span tokens; the matcher holds back any tail of the text
// that could still become the start of a stop string, and releases it once it cannot (or when
// generation ends for another reason: flush).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wkvq::serve {

class StopMatcher {
 public:
  // Empty strings are ignored.
  explicit StopMatcher(std::vector<std::string> stops = {});

  // Adds generated text; returns the part of it (with held-back text before it) that can be
  // emitted now. After a match, returns the text before the match and matched() is true; later
  // calls return "".
  std::string push(std::string_view text);
  // The held-back text (generation ended without a match); "" after a match.
  std::string flush();
  bool matched() const { return matched_; }

 private:
  // Length of the longest suffix of held_ that is a proper prefix of some stop string.
  size_t partial_tail() const;

  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace wkvq::serve
