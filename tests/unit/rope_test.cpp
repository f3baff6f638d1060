#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace wkvq {
namespace {

// Interleaved and rotate-half RoPE are the same rotation up to the per-head permutation
// p(2i) = i, p(2i+1) = i + hd/2 (the HF conversion of llama2.c checkpoints): exact equality.
TEST(Rope, LayoutsAgreeUnderThePermutation) {
  const int heads = 3, hd = 8;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> a(heads * hd);
  for (float& x : a) x = u(rng);
  std::vector<float> b(a.size());
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      b[h * hd + i] = a[h * hd + 2 * i];
      b[h * hd + i + hd / 2] = a[h * hd + 2 * i + 1];
    }
  }
  RopeTable t;
  t.build(5, 4, hd, 10000.0f);
  rope_apply(a.data(), heads, hd, t, 3, RopeLayout::Interleaved);
  rope_apply(b.data(), heads, hd, t, 3, RopeLayout::RotateHalf);
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      EXPECT_EQ(b[h * hd + i], a[h * hd + 2 * i]);
      EXPECT_EQ(b[h * hd + i + hd / 2], a[h * hd + 2 * i + 1]);
    }
  }
}

// The rotation angle of pair i at position p is p * theta^(-2i/hd); rotations preserve norms.
TEST(Rope, AnglesAndNorms) {
  const int hd = 16;
  const float theta = 500000.0f;
  RopeTable t;
  t.build(0, 100, hd, theta);
  for (int p : {0, 1, 37, 99}) {
    for (int i = 0; i < hd / 2; ++i) {
      const double angle = p * std::pow(static_cast<double>(theta), -2.0 * i / hd);
      EXPECT_EQ(t.cos[p * hd / 2 + i], static_cast<float>(std::cos(angle)));
      EXPECT_EQ(t.sin[p * hd / 2 + i], static_cast<float>(std::sin(angle)));
    }
  }
  std::vector<float> x(hd, 1.0f);
  rope_apply(x.data(), 1, hd, t, 99, RopeLayout::RotateHalf);
  double norm = 0;
  for (float v : x) norm += static_cast<double>(v) * v;
  // each rotated pair keeps its norm up to a few f32 roundings: |n - 16| <= hd * 4 eps
  EXPECT_NEAR(norm, 16.0, hd * 4 * 1.2e-7 * 16);
}

// The scaled frequencies against the scalar formulas of kernels/rope.h, written out per case:
// with orig 32, low 1, high 4 and theta 10000, hd 16 has pairs in all three llama3 bands
// (wavelength 2 pi 10000^(i/8): i = 0 below 8, i = 1 in [8, 32], i >= 2 above 32).
TEST(Rope, ScaledFrequencies) {
  const int hd = 16;
  const double theta = 10000.0, pi = std::acos(-1.0);
  RopeScaling lin;
  lin.kind = RopeScaling::Kind::Linear;
  lin.factor = 4.0;
  RopeScaling l3;
  l3.kind = RopeScaling::Kind::Llama3;
  l3.factor = 8.0;
  l3.low_freq_factor = 1.0;
  l3.high_freq_factor = 4.0;
  l3.original_max_position = 32;
  const std::vector<double> plain = rope_frequencies(hd, theta, RopeScaling{});
  const std::vector<double> fl = rope_frequencies(hd, theta, lin);
  const std::vector<double> f3 = rope_frequencies(hd, theta, l3);
  ASSERT_EQ(plain.size(), 8u);
  int bands[3] = {0, 0, 0};
  for (int i = 0; i < hd / 2; ++i) {
    const double base = 1.0 / std::pow(theta, 2.0 * i / hd);
    EXPECT_EQ(plain[i], std::pow(theta, -2.0 * i / hd));
    EXPECT_NEAR(fl[i], base / 4.0, 1e-15 * base);
    const double wavelen = 2 * pi / base;
    double want;
    if (wavelen < 32.0 / 4.0) {
      want = base;
      ++bands[0];
    } else if (wavelen > 32.0 / 1.0) {
      want = base / 8.0;
      ++bands[2];
    } else {
      const double s = (32.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - s) * base / 8.0 + s * base;
      ++bands[1];
    }
    EXPECT_NEAR(f3[i], want, 1e-14 * base) << "pair " << i;
  }
  EXPECT_EQ(bands[0], 1);
  EXPECT_EQ(bands[1], 1);
  EXPECT_EQ(bands[2], 6);
  // The table uses them: angle = pos * freq, rounded once to float.
  RopeTable t;
  t.build(40, 3, hd, static_cast<float>(theta), l3);
  for (int p = 0; p < 3; ++p) {
    for (int i = 0; i < hd / 2; ++i) {
      EXPECT_EQ(t.cos[p * hd / 2 + i], static_cast<float>(std::cos((40 + p) * f3[i])));
      EXPECT_EQ(t.sin[p * hd / 2 + i], static_cast<float>(std::sin((40 + p) * f3[i])));
    }
  }
}

}  // namespace
}  // namespace wkvq
