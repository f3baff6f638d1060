#include "runtime/byte_level.h"

#include "runtime/utf8.h"

namespace wkvq {

namespace {

bool stands_for_itself(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

}  // namespace

ByteLevelAlphabet::ByteLevelAlphabet() {
  byte_of_.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const int cp = stands_for_itself(b) ? b : next++;
    utf8::append(symbols_[static_cast<size_t>(b)], static_cast<char32_t>(cp));
    byte_of_[static_cast<size_t>(cp)] = b;
  }
}

std::string ByteLevelAlphabet::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += symbols_[static_cast<unsigned char>(c)];
  return out;
}

std::optional<std::string> ByteLevelAlphabet::decode(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8::valid_length(text, i);
    if (n == 0) return std::nullopt;
    const char32_t cp = utf8::decode(text, i, n);
    if (cp >= byte_of_.size() || byte_of_[cp] < 0) return std::nullopt;
    out += static_cast<char>(byte_of_[cp]);
    i += n;
  }
  return out;
}

}  // namespace wkvq
