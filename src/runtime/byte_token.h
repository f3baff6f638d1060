// The byte-fallback token "<0xXX>": a token standing for one raw byte, written with two hex
// digits. llama2.c's tokenizer.bin, SentencePiece's tokenizer.model and tokenizer.json (BPE with
// byte_fallback) all use it.
#pragma once

#include <string>
#include <string_view>

namespace wkvq {

// Which hex digits a reader accepts: any case, or only upper case (as tokenizer.json writes them).
enum class HexCase { kAny, kUpper };

// The byte of a token spelled exactly "<0xXX>" (XX: two hex digits of `hex`), or -1.
int byte_token_value(std::string_view token, HexCase hex);

// "<0xXX>" for byte b, upper-case hex.
std::string byte_token_text(unsigned char b);

}  // namespace wkvq
