#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"

namespace wkvq {
namespace {

TEST(Sampler, GreedyPicksTheFirstMaximum) {
  const std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  Sampler s(4, 0.0f, 1.0f, 1);
  EXPECT_EQ(s.sample(logits.data()), 1);
}

// Temperature sampling follows softmax(logits / T): frequencies within 5 standard deviations.
TEST(Sampler, FrequenciesFollowTheSoftmax) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  const float temp = 0.7f;
  Sampler s(3, temp, 1.0f, 42);
  const int n = 20000;
  std::vector<int> count(3);
  for (int i = 0; i < n; ++i) ++count[static_cast<size_t>(s.sample(logits.data()))];
  double z = 0;
  for (float l : logits) z += std::exp(l / temp);
  for (int k = 0; k < 3; ++k) {
    const double p = std::exp(logits[static_cast<size_t>(k)] / temp) / z;
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(count[static_cast<size_t>(k)], n * p, 5 * sd) << "token " << k;
  }
}

// top-p keeps only the smallest set of likely tokens reaching the mass: the unlikely tail never
// appears.
TEST(Sampler, TopPCutsTheTail) {
  const std::vector<float> logits = {5.0f, 4.9f, -5.0f, -6.0f};
  Sampler s(4, 1.0f, 0.9f, 3);
  for (int i = 0; i < 2000; ++i) EXPECT_LT(s.sample(logits.data()), 2);
}

TEST(Sampler, SameSeedSameSequence) {
  const std::vector<float> logits = {0.3f, 0.2f, 0.1f, 0.0f, -0.1f};
  Sampler a(5, 1.0f, 0.95f, 9), b(5, 1.0f, 0.95f, 9);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(logits.data()), b.sample(logits.data()));
}

TEST(Sampler, RejectsBadOptionsAndNaN) {
  EXPECT_THROW(Sampler(4, -1.0f, 1.0f, 1), Error);
  EXPECT_THROW(Sampler(4, 1.0f, 0.0f, 1), Error);
  EXPECT_THROW(Sampler(4, 1.0f, 1.5f, 1), Error);
  const std::vector<float> logits = {0.0f, NAN, 1.0f, 2.0f};
  Sampler s(4, 0.0f, 1.0f, 1);
  EXPECT_THROW(s.sample(logits.data()), Error);
}

}  // namespace
}  // namespace wkvq
