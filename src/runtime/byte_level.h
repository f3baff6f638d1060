// The byte-level alphabet of GPT-2 style BPE vocabularies (Hugging Face's ByteLevel
// pre-tokenizer and decoder): every byte is shown as one printable code point, so that a
// vocabulary of strings covers arbitrary bytes. Bytes '!'..'~', U+00A1..U+00AC and
// U+00AE..U+00FF stand for themselves; the other 68 bytes, in increasing order, take the code
// points 256, 257, ... (so the space 0x20 is U+0120 'Ġ' and the newline 0x0A is U+010A 'Ċ').
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace wkvq {

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet();

  // The UTF-8 text of the code point that stands for byte b.
  const std::string& symbol(unsigned char b) const { return symbols_[b]; }
  // `bytes` written in the alphabet.
  std::string encode(std::string_view bytes) const;
  // The bytes a string in the alphabet stands for; nullopt when it holds a code point outside
  // the alphabet (or is not valid UTF-8).
  std::optional<std::string> decode(std::string_view text) const;

 private:
  std::array<std::string, 256> symbols_;
  std::array<int, 324> byte_of_;  // code point (< 324) -> byte, -1 when none
};

}  // namespace wkvq
