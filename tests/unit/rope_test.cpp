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

}  // namespace
}  // namespace wkvq
