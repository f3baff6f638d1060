#include "core/fp16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace wkvq {
namespace {

// Every finite half converts to float and back to the same bits (exhaustive, 63488 values).
TEST(Fp16, EveryFiniteHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    if ((bits & 0x7c00u) == 0x7c00u) continue;  // inf / nan handled below
    const float f = fp16_to_f32(bits);
    ASSERT_EQ(f32_to_fp16(f), bits) << "half 0x" << std::hex << h << " -> " << f;
  }
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isinf(fp16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7e00)));
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);               // rounds up to inf
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -26)), 0x0000);  // below half the smallest subnormal
}

// Rounding to nearest even: a float exactly between two halves goes to the even one.
TEST(Fp16, RoundsHalfToEven) {
  const float one = 1.0f, ulp = std::ldexp(1.0f, -10);
  EXPECT_EQ(f32_to_fp16(one + ulp / 2), 0x3c00);             // tie -> even (1.0)
  EXPECT_EQ(f32_to_fp16(one + 3 * ulp / 2), 0x3c02);         // tie -> even (1 + 2ulp)
  EXPECT_EQ(f32_to_fp16(one + ulp / 2 + ulp / 16), 0x3c01);  // above the tie
  // subnormal tie: 1.5 * 2^-24 -> 2 * 2^-24 (even)
  EXPECT_EQ(f32_to_fp16(1.5f * std::ldexp(1.0f, -24)), 0x0002);
}

TEST(Fp16, Bf16IsTheUpperHalfOfF32) {
  const float x = 3.140625f;  // exactly representable in bf16
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  EXPECT_EQ(bf16_to_f32(static_cast<uint16_t>(bits >> 16)), x);
}

}  // namespace
}  // namespace wkvq
