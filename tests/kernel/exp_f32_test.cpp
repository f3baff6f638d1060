// exp_f32 (kernels/exp_f32.h) against long double: within kExpMaxUlp of e^x over the softmax's
// inputs and beyond, its special values, and the vector kernels' softmax using it (the bit
// identity of those is tests/kernel/kv_attend_test.cpp's).
#include "kernels/exp_f32.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace wkvq {
namespace {

// |exp_f32(x) - e^x| in units of the last place of the float nearest e^x (normal results).
double ulp_error(float x) {
  const long double e = std::exp(static_cast<long double>(x));
  const float nearest = static_cast<float>(e);
  const long double ulp = std::ldexp(1.0L, std::ilogb(nearest) - 23);
  return static_cast<double>(std::fabs(static_cast<long double>(exp_f32(x)) - e) / ulp);
}

TEST(ExpF32, WithinMaxUlpOfLongDouble) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> wide(-87.0f, 88.0f);  // normal results
  std::uniform_real_distribution<float> near(-1.0f, 0.0f);
  double worst = 0.0;
  float worst_x = 0.0f;
  for (int i = 0; i < 400000; ++i) {
    for (const float x : {wide(rng), near(rng)}) {
      const double err = ulp_error(x);
      if (err > worst) worst = err, worst_x = x;
    }
  }
  // 2^16 consecutive floats on each side of two range-reduction boundaries, x / ln 2 = -1/2 and
  // -103/2 (|r| largest there, k changes)
  for (const float edge : {-0.34657359f, -35.697080f}) {
    float x = edge;
    for (int i = 0; i < 65536; ++i) x = std::nextafter(x, -1000.0f);
    for (int i = 0; i < 131072; ++i, x = std::nextafter(x, 1000.0f)) {
      const double err = ulp_error(x);
      if (err > worst) worst = err, worst_x = x;
    }
  }
  EXPECT_LE(worst, kExpMaxUlp) << "at x = " << worst_x;
  EXPECT_GT(worst, 0.45);  // the rounding to float alone costs nearly half an ulp somewhere
}

// Results in the subnormal range: the double rounds once to the nearest subnormal float, so
// within half of the smallest subnormal of e^x.
TEST(ExpF32, SubnormalResultsRoundOnce) {
  const long double tiny = std::ldexp(1.0L, -149);
  for (float x = -103.9f; x < -87.4f; x += 0.0137f) {
    const long double e = std::exp(static_cast<long double>(x));
    EXPECT_LE(std::fabs(static_cast<long double>(exp_f32(x)) - e), 0.5L * tiny) << x;
  }
}

TEST(ExpF32, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(std::bit_cast<uint32_t>(exp_f32(-inf)), 0u);  // +0
  EXPECT_EQ(exp_f32(inf), inf);
  EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-1e-30f), 1.0f);
  EXPECT_EQ(exp_f32(1.0f), static_cast<float>(std::exp(1.0L)));
  // underflow: e^-103.97 is below half the smallest subnormal, e^-103.27 above it
  EXPECT_EQ(std::bit_cast<uint32_t>(exp_f32(-104.0f)), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(exp_f32(-200.0f)), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(exp_f32(-std::numeric_limits<float>::max())), 0u);
  EXPECT_EQ(exp_f32(-103.2f), std::numeric_limits<float>::denorm_min());
  // overflow: e^88.72 is below FLT_MAX, e^88.73 above
  EXPECT_EQ(exp_f32(88.72f), static_cast<float>(std::exp(static_cast<long double>(88.72f))));
  EXPECT_EQ(exp_f32(88.73f), inf);
  EXPECT_EQ(exp_f32(1000.0f), inf);
}

}  // namespace
}  // namespace wkvq
