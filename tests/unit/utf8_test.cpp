// UTF-8 repair (runtime/utf8.h), the printing stream (runtime/utf8_stream.h) and the byte-level
// alphabet (runtime/byte_level.h).
#include "runtime/utf8.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "runtime/byte_level.h"
#include "runtime/utf8_stream.h"

namespace wkvq {
namespace {

const std::string R(utf8::kReplacement);

TEST(Utf8, ReplacesMaximalSubparts) {
  // The example of the Unicode Standard, section 3.9, table 3-8 ("U+FFFD for each maximal
  // subpart"): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(utf8::replace_invalid("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + R + R + R + "b" + R + "c" + R + R + "d");
  EXPECT_EQ(utf8::replace_invalid("\xE2\x82"), R);                      // truncated at the end
  EXPECT_EQ(utf8::replace_invalid("\xED\xA0\x80"), R + R + R);          // an encoded surrogate
  EXPECT_EQ(utf8::replace_invalid("\xC0\xAF"), R + R);                  // overlong
  EXPECT_EQ(utf8::replace_invalid("\xF4\x90\x80\x80"), R + R + R + R);  // beyond U+10FFFF
  EXPECT_EQ(utf8::replace_invalid("\xF0\x9F\x98x"), R + "x");
  const std::string ok = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
  EXPECT_TRUE(utf8::is_valid(ok));
  EXPECT_EQ(utf8::replace_invalid(ok), ok);
  EXPECT_FALSE(utf8::is_valid("\xFF"));
}

TEST(Utf8, EncodesAndDecodesCodePoints) {
  for (const char32_t cp : {U'a', U'\u00e9', U'\u20ac', U'\U0001F600', U'\U0010FFFF'}) {
    std::string s;
    utf8::append(s, cp);
    const size_t n = utf8::valid_length(s, 0);
    ASSERT_EQ(n, s.size());
    EXPECT_EQ(utf8::decode(s, 0, n), cp);
  }
}

// Printing pieces one by one through the stream gives the repaired concatenation, however the
// bytes are cut into pieces.
TEST(Utf8Stream, EqualsRepairOfTheWholeForAnyCut) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {
      "a",        " ",    "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
      "\xE2\x82", "\xFF", "\x80",     "\xF0\x9F",     "\xED\xA0\x80"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string whole;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) whole += alphabet[rng() % std::size(alphabet)];
    Utf8Stream stream;
    std::string printed;
    for (size_t at = 0; at < whole.size();) {
      const size_t len = 1 + rng() % 4;
      const std::string out = stream.push(whole.substr(at, len));
      EXPECT_TRUE(utf8::is_valid(out));
      printed += out;
      at += len;
    }
    printed += stream.flush();
    EXPECT_EQ(printed, utf8::replace_invalid(whole)) << "trial " << trial;
  }
}

TEST(Utf8Stream, HoldsBackASplitCharacter) {
  Utf8Stream s;
  EXPECT_EQ(s.push("a\xE2"), "a");
  EXPECT_EQ(s.push("\x82"), "");
  EXPECT_EQ(s.push("\xAC!"), "\xE2\x82\xAC!");
  EXPECT_EQ(s.flush(), "");
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.flush(), R);
}

TEST(ByteLevelAlphabet, IsGpt2sMapping) {
  const ByteLevelAlphabet a;
  EXPECT_EQ(a.symbol(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(a.symbol('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(a.symbol('A'), "A");
  EXPECT_EQ(a.symbol(0xE9), "\xC3\xA9");  // stands for itself: U+00E9
  EXPECT_EQ(a.symbol(0xAD), "\xC5\x83");  // the soft hyphen, the 68th moved byte: U+0143
  std::set<std::string> seen;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    seen.insert(a.symbol(static_cast<unsigned char>(b)));
    all += static_cast<char>(b);
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(a.decode(a.encode(all)), all);
  EXPECT_FALSE(a.decode("\xE4\xB8\xAD").has_value());  // U+4E2D is not in the alphabet
}

}  // namespace
}  // namespace wkvq
