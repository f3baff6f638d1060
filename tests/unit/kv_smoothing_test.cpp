#include "model/kv_smoothing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"

namespace wkvq {
namespace {

// d = (max + min) / 2, s = r / mean(r) with r = (max - min) / 2, floored at kMinSmoothingScale.
TEST(KvSmoothing, StatisticsInitialisation) {
  KvChannelStats st(1, 3);
  const std::vector<float> k0 = {-1.0f, 10.0f, 5.0f}, k1 = {3.0f, 14.0f, 5.0f};
  const std::vector<float> v0 = {0.0f, -2.0f, 1.0f}, v1 = {2.0f, 2.0f, 1.0f};
  st.add(0, k0.data(), v0.data(), 1);
  st.add(0, k1.data(), v1.data(), 1);
  EXPECT_EQ(st.tokens, 2);
  const KvSmoothing s = smoothing_from_stats(st);
  // K: ranges [-1,3], [10,14], [5,5] -> d = 1, 12, 5; r = 2, 2, 0; mean r = 4/3
  EXPECT_FLOAT_EQ(s.dk[0], 1.0f);
  EXPECT_FLOAT_EQ(s.dk[1], 12.0f);
  EXPECT_FLOAT_EQ(s.dk[2], 5.0f);
  EXPECT_FLOAT_EQ(s.sk[0], 1.5f);
  EXPECT_FLOAT_EQ(s.sk[1], 1.5f);
  EXPECT_FLOAT_EQ(s.sk[2], kMinSmoothingScale);  // constant channel
  // V: ranges [0,2], [-2,2], [1,1] -> r = 1, 2, 0; mean r = 1
  EXPECT_FLOAT_EQ(s.dv[1], 0.0f);
  EXPECT_FLOAT_EQ(s.sv[0], 1.0f);
  EXPECT_FLOAT_EQ(s.sv[1], 2.0f);
  EXPECT_NO_THROW(s.validate("test"));
}

TEST(KvSmoothing, IdentityAndValidation) {
  KvSmoothing s = KvSmoothing::identity(2, 4);
  EXPECT_TRUE(s.is_identity());
  s.sk[3] = -1.0f;
  EXPECT_THROW(s.validate("test"), Error);
  s.sk[3] = 1.0f;
  s.dv[0] = NAN;
  EXPECT_THROW(s.validate("test"), Error);
  KvChannelStats empty(1, 2);
  EXPECT_THROW(smoothing_from_stats(empty), Error);
}

}  // namespace
}  // namespace wkvq
