// UTF-8 helpers for the tokenizers: validity, replacement of invalid sequences, code points.
//
// Invalid input follows the WHATWG Encoding Standard's UTF-8 decoder (the Unicode "maximal
// subpart" practice, also Python's errors="replace" and Node's Buffer.toString("utf8")): each
// maximal prefix of a valid sequence that cannot be completed, and each byte that cannot start
// one, becomes one U+FFFD.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wkvq::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid sequence that starts at s[at] (1..4), or 0 when the bytes there do not
// start a complete valid sequence; `*subpart` (when given) receives the length of the maximal
// subpart then (at least 1: the bytes that one U+FFFD replaces).
size_t valid_length(std::string_view s, size_t at, size_t* subpart = nullptr);

// Whether all of `s` is valid UTF-8.
bool is_valid(std::string_view s);

// `s` with invalid sequences replaced by U+FFFD as above (a copy of `s` when it is valid).
std::string replace_invalid(std::string_view s);

// Appends the UTF-8 encoding of code point `cp` (< 0x110000, not a surrogate).
void append(std::string& out, char32_t cp);

// The code point of the valid sequence at s[at] of length `len` (from valid_length).
char32_t decode(std::string_view s, size_t at, size_t len);

}  // namespace wkvq::utf8
