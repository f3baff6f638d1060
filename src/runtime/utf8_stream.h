// Utf8Stream: turns decoded token pieces (raw bytes, where one character may be split over
// several tokens) into text that is valid UTF-8 at every step, for printing while generating.
// A sequence that may still be completed by the next piece is held back; a sequence that can no
// longer be completed becomes U+FFFD (utf8.h's rules, so the printed text equals
// utf8::replace_invalid of all pieces together).
#pragma once

#include <string>
#include <string_view>

namespace wkvq {

class Utf8Stream {
 public:
  // The text that `piece` completes: everything up to an unfinished sequence at its end.
  std::string push(std::string_view piece);
  // What is held back, as U+FFFD (the stream ended inside a sequence); "" when nothing is.
  std::string flush();

 private:
  std::string pending_;  // an unfinished sequence (at most 3 bytes)
};

// `text` without ASCII control characters other than whitespace (what raw byte tokens such as
// <0x01> decode to): the text generate, chat and serve show.
std::string printable_text(std::string_view text);

}  // namespace wkvq
