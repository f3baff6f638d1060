#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "eval/perplexity.h"

namespace wkvq {
namespace {

TEST(TokenNll, UniformLogitsGiveLogVocab) {
  const std::vector<float> logits(100, 3.5f);
  EXPECT_NEAR(token_nll(logits.data(), 100, 17), std::log(100.0), 1e-12);
}

// Large logits must not overflow: the max is subtracted before exp.
TEST(TokenNll, StableForLargeLogits) {
  const std::vector<float> logits = {1000.0f, 999.0f, 0.0f};
  const double expect = std::log(1.0 + std::exp(-1.0) + std::exp(-1000.0)) + 1.0;
  EXPECT_NEAR(token_nll(logits.data(), 3, 1), expect, 1e-12);
}

}  // namespace
}  // namespace wkvq
