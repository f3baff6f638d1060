// Prints decoded token pieces on stdout as they come (generate, chat).
#pragma once

#include <cctype>
#include <cstdio>
#include <string>

#include "runtime/utf8_stream.h"

namespace wkvq::cli {

// Prints decoded pieces as they come: bytes of a character split over tokens are joined
// (Utf8Stream; what cannot form UTF-8 becomes U+FFFD) and ASCII control characters other than
// whitespace (raw byte tokens such as <0x01>) are not printed.
class PiecePrinter {
 public:
  void print(const std::string& piece) { write(stream_.push(piece)); }
  void finish() { write(stream_.flush()); }

 private:
  static void write(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x20 || std::isspace(c)) out += ch;
    }
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }
  Utf8Stream stream_;
};

}  // namespace wkvq::cli
