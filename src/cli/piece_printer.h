// Prints decoded token pieces on stdout as they come (generate, chat).
#pragma once

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
    const std::string out = printable_text(text);
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }
  Utf8Stream stream_;
};

}  // namespace wkvq::cli
