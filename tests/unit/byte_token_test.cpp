// The "<0xXX>" byte-fallback notation (runtime/byte_token.h) shared by the three tokenizers.
#include "runtime/byte_token.h"

#include <gtest/gtest.h>

namespace wkvq {
namespace {

TEST(ByteToken, EveryByteRoundTripsThroughItsText) {
  for (int b = 0; b < 256; ++b) {
    const std::string t = byte_token_text(static_cast<unsigned char>(b));
    ASSERT_EQ(t.size(), 6u) << b;
    EXPECT_EQ(byte_token_value(t, HexCase::kUpper), b) << t;
    EXPECT_EQ(byte_token_value(t, HexCase::kAny), b) << t;
  }
  EXPECT_EQ(byte_token_text(0x0a), "<0x0A>");
}

TEST(ByteToken, LowerCaseHexOnlyWhenAnyCaseIsAccepted) {
  EXPECT_EQ(byte_token_value("<0xab>", HexCase::kAny), 0xab);
  EXPECT_EQ(byte_token_value("<0xaB>", HexCase::kAny), 0xab);
  EXPECT_EQ(byte_token_value("<0xab>", HexCase::kUpper), -1);
  EXPECT_EQ(byte_token_value("<0xAb>", HexCase::kUpper), -1);
}

TEST(ByteToken, AnythingElseIsNotAByteToken) {
  for (const char* t : {"", "<0x4>", "<0x41", "<0x41>>", " <0x41>", "<0X41>", "<0x4G>", "<0x41]",
                        "(0x41>", "<1x41>", "<0xG1>"}) {
    EXPECT_EQ(byte_token_value(t, HexCase::kAny), -1) << t;
    EXPECT_EQ(byte_token_value(t, HexCase::kUpper), -1) << t;
  }
}

}  // namespace
}  // namespace wkvq
