// The f32 vector kernels against straightforward double-precision references, with tolerances
// derived from the roundings each kernel performs (u = eps / 2, the unit roundoff of float).
// Inputs are seeded; set WKVQ_TEST_SEED to replay another seed.
#include "kernels/vec_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

namespace wkvq {
namespace {

constexpr double kU = std::numeric_limits<float>::epsilon() / 2.0;  // unit roundoff of float

// glibc's expf is documented to be within 1 ulp: a relative error of at most 2u.
constexpr double kExpfRoundings = 2.0;

uint32_t seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return 20240611u;
}

std::vector<float> random_vector(int64_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(rng);
  return v;
}

const int64_t kSizes[] = {1, 2, 7, 8, 9, 31, 64, 1000, 4099};

#define WKVQ_TRACE_CASE(n) SCOPED_TRACE(::testing::Message() << "n=" << (n) << " seed=" << seed())

TEST(VecOps, RmsnormMatchesDouble) {
  std::mt19937 rng(seed());
  for (const int64_t n : kSizes) {
    WKVQ_TRACE_CASE(n);
    const auto x = random_vector(n, -3.0f, 3.0f, rng);
    const auto weight = random_vector(n, -2.0f, 2.0f, rng);
    const float eps = 1e-5f;
    std::vector<float> out(static_cast<size_t>(n));
    rmsnorm(out.data(), x.data(), weight.data(), n, eps);
    double ss = 0.0;
    for (const float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<size_t>(i);
      const double want = x[k] * scale * weight[k];
      // Float roundings: the scale, x * scale, then * weight (the double sum is exact to ~1e-16).
      EXPECT_NEAR(out[k], want, 3.0 * kU * 1.01 * std::fabs(want)) << "i=" << i;
    }
  }
}

TEST(VecOps, RmsnormInPlace) {
  std::mt19937 rng(seed());
  auto x = random_vector(100, -1.0f, 1.0f, rng);
  const auto weight = random_vector(100, -1.0f, 1.0f, rng);
  std::vector<float> expected(100);
  rmsnorm(expected.data(), x.data(), weight.data(), 100, 1e-6f);
  rmsnorm(x.data(), x.data(), weight.data(), 100, 1e-6f);
  EXPECT_EQ(x, expected);
}

TEST(VecOps, SoftmaxMatchesDouble) {
  std::mt19937 rng(seed());
  for (const int64_t n : kSizes) {
    WKVQ_TRACE_CASE(n);
    auto x = random_vector(n, -12.0f, 12.0f, rng);
    const auto x0 = x;
    double max = x0[0];
    for (const float v : x0) max = std::max(max, static_cast<double>(v));
    std::vector<double> e(x0.size());
    double sum = 0.0;
    for (size_t i = 0; i < e.size(); ++i) sum += e[i] = std::exp(x0[i] - max);
    // e_i = expf(fl(x_i - max)): the subtraction's rounding, u |x_i - max|, becomes a relative
    // error of that size after exp; expf adds kExpfRoundings u. The (double) sum inherits the
    // largest relative error of its terms; the reciprocal and the final product round once each.
    double worst_term = 0.0;
    for (const float v : x0) worst_term = std::max(worst_term, max - v + kExpfRoundings);
    softmax_inplace(x.data(), n);
    for (size_t i = 0; i < e.size(); ++i) {
      const double p = e[i] / sum;
      const double roundings = (max - x0[i] + kExpfRoundings) + worst_term + 2.0;
      EXPECT_NEAR(x[i], p, 1.01 * roundings * kU * p) << "i=" << i;
    }
  }
}

TEST(VecOps, SoftmaxMasksMinusInfinity) {
  std::vector<float> x = {1.0f, -std::numeric_limits<float>::infinity(), 1.0f};
  softmax_inplace(x.data(), 3);
  EXPECT_EQ(x[0], 0.5f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_EQ(x[2], 0.5f);
}

TEST(VecOps, SiluMulMatchesDouble) {
  std::mt19937 rng(seed());
  for (const int64_t n : kSizes) {
    WKVQ_TRACE_CASE(n);
    auto gate = random_vector(n, -10.0f, 10.0f, rng);
    const auto up = random_vector(n, -3.0f, 3.0f, rng);
    const auto g0 = gate;
    silu_mul(gate.data(), up.data(), n);
    for (size_t i = 0; i < gate.size(); ++i) {
      const double g = g0[i];
      const double want = g / (1.0 + std::exp(-g)) * up[i];
      // expf (kExpfRoundings u, damped by e / (1 + e) <= 1 in 1 + e), then 1 + e, g / (.) and
      // * up round once each.
      EXPECT_NEAR(gate[i], want, 1.01 * (kExpfRoundings + 3.0) * kU * std::fabs(want)) << "i=" << i;
    }
  }
}

TEST(VecOps, AddInplaceIsExactlyRoundedSum) {
  std::mt19937 rng(seed());
  for (const int64_t n : kSizes) {
    WKVQ_TRACE_CASE(n);
    auto y = random_vector(n, -1.0f, 1.0f, rng);
    const auto x = random_vector(n, -1.0f, 1.0f, rng);
    const auto y0 = y;
    add_inplace(y.data(), x.data(), n);
    // The double sum of two floats within a factor 2^29 of each other is exact; rounding it to
    // float gives the correctly rounded float sum.
    for (size_t i = 0; i < y.size(); ++i) {
      EXPECT_EQ(y[i], static_cast<float>(static_cast<double>(y0[i]) + x[i])) << "i=" << i;
    }
  }
}

TEST(VecOps, DotMatchesDouble) {
  std::mt19937 rng(seed());
  for (const int64_t n : kSizes) {
    WKVQ_TRACE_CASE(n);
    const auto a = random_vector(n, -1.0f, 1.0f, rng);
    const auto b = random_vector(n, -1.0f, 1.0f, rng);
    double want = 0.0;
    double sum_abs = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
      want += static_cast<double>(a[i]) * b[i];
      sum_abs += std::fabs(static_cast<double>(a[i]) * b[i]);
    }
    // Each term: its product, at most ceil(n / 8) - 1 additions in its lane, 3 in the final
    // pairwise sum of the 8 lanes: d <= ceil(n / 8) + 3 roundings, |error| <= gamma(d) sum |t|.
    const double d = std::ceil(static_cast<double>(n) / 8.0) + 3.0;
    EXPECT_NEAR(dot(a.data(), b.data(), n), want, 1.01 * d * kU * sum_abs);
  }
}

TEST(VecOps, AxpyMatchesDouble) {
  std::mt19937 rng(seed());
  for (const int64_t n : kSizes) {
    WKVQ_TRACE_CASE(n);
    auto y = random_vector(n, -1.0f, 1.0f, rng);
    const auto x = random_vector(n, -1.0f, 1.0f, rng);
    const auto y0 = y;
    const float a = 0.7f;
    axpy(y.data(), a, x.data(), n);
    for (size_t i = 0; i < y.size(); ++i) {
      const double ax = static_cast<double>(a) * x[i];
      // The product and the sum round once each.
      EXPECT_NEAR(y[i], y0[i] + ax, 1.01 * kU * (std::fabs(ax) + std::fabs(y0[i] + ax)))
          << "i=" << i;
    }
  }
}

}  // namespace
}  // namespace wkvq
