// The KV formats beyond fp16 group metadata in training (calibrate/fake_kv.h), against the
// runtime's exact quantizer and rules: rel8 metadata (the same records against the same levels),
// the static group ranges that follow the smoothing, value bits of their own, and the positions
// the fp16 window holds in the teacher-forced attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "calib_fixture.h"
#include "calibrate/fake_kv.h"
#include "calibrate/torch_block.h"
#include "core/error.h"
#include "formats/kv_quant.h"
#include "runtime/attention.h"

namespace wkvq {
namespace {

// Group ranges of x (T, C) over tokens [t0, T): lo, hi per group of g channels.
std::pair<std::vector<float>, std::vector<float>> ranges_of(const std::vector<float>& x, int64_t T,
                                                            int64_t C, int64_t g, int64_t t0) {
  std::vector<float> lo, hi;
  for (int64_t c0 = 0; c0 < C; c0 += g) {
    float l = std::numeric_limits<float>::infinity(), h = -l;
    for (int64_t t = t0; t < T; ++t) {
      for (int64_t c = c0; c < std::min(C, c0 + g); ++c) {
        l = std::min(l, x[static_cast<size_t>(t * C + c)]);
        h = std::max(h, x[static_cast<size_t>(t * C + c)]);
      }
    }
    lo.push_back(l);
    hi.push_back(h);
  }
  return {lo, hi};
}

// The runtime's dequantized records of x (T, C) in format f (rel8: against lo, hi).
std::vector<float> runtime_round_trip(const std::vector<float>& x, int64_t T, int64_t C, int64_t g,
                                      int bits, const std::vector<float>& lo,
                                      const std::vector<float>& hi) {
  KvQuantFormat f = make_kv_format(C, g, bits, /*rel8=*/true);
  std::vector<KvRel8Group> levels;
  for (size_t i = 0; i < lo.size(); ++i) levels.push_back(make_kv_rel8_group(lo[i], hi[i]));
  f.rel8_groups = levels.data();
  std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
  std::vector<float> out(x.size());
  for (int64_t t = 0; t < T; ++t) {
    quantize_token_ref(f, x.data() + t * C, rec.data());
    dequantize_token_ref(f, rec.data(), out.data() + t * C);
  }
  return out;
}

struct Rel8Case {
  int bits;
  int64_t group;
};

class Rel8Exact : public ::testing::TestWithParam<Rel8Case> {};

// The static ranges come from the first 6 tokens; the later ones stray beyond them (into the
// tails of the levels and past them), a group is constant, and one equals a level exactly.
TEST_P(Rel8Exact, FakeQuantEqualsRuntimeTokenQuantizer) {
  const auto [bits, group] = GetParam();
  const int64_t T = 14, C = 32;
  std::vector<float> x = test::uniform(T * C, -3.0f, 5.0f, 21);
  for (int64_t t = 6; t < T; ++t)
    x[static_cast<size_t>(t * C + t % C)] *= 1.5f + 3.0f * static_cast<float>(t);
  for (int64_t c = 0; c < 8; ++c) x[static_cast<size_t>(7 * C + c)] = 1.25f;
  const int64_t g = group == 0 ? C : group;
  const auto [lo, hi] = ranges_of(x, 6, C, g, 0);
  const std::vector<float> fake = test::floats_of(fake_quant_tokens(
      test::tensor_from(x, {1, T, C}), bits, g, ste_steps(), rel8_levels(lo, hi)));
  const std::vector<float> deq = runtime_round_trip(x, T, C, g, bits, lo, hi);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(fake[i], deq[i]) << "element " << i << " bits " << bits << " group " << g;
  }
  // and the records differ from fp16 metadata's (the test tells the formats apart)
  const std::vector<float> fp16 =
      test::floats_of(fake_quant_tokens(test::tensor_from(x, {1, T, C}), bits, g));
  EXPECT_NE(fake, fp16);
}

INSTANTIATE_TEST_SUITE_P(BitsAndGroups, Rel8Exact,
                         ::testing::Values(Rel8Case{4, 8}, Rel8Case{4, 0}, Rel8Case{3, 16},
                                           Rel8Case{2, 12}, Rel8Case{8, 32}));

// FakeKv with rel8 and 3-bit values: the group ranges are those of the smoothed K~, V~ over the
// positions the channel ranges came from, and K^, V^ are the runtime's records of K~, V~ (keys
// 4-bit, values 3-bit) with the smoothing undone.
TEST(FakeKvRel8, RangesFollowTheSmoothingAndRecordsAreTheRuntimes) {
  const int64_t T = 9, C = 16, g = 8;
  const std::vector<float> k = test::uniform(T * C, -4.0f, 6.0f, 31);
  const std::vector<float> v = test::uniform(T * C, -2.0f, 2.0f, 32);
  const LayerSmoothing sm{test::uniform(C, -1.0f, 1.0f, 33), test::uniform(C, 0.3f, 3.0f, 34),
                          test::uniform(C, -1.0f, 1.0f, 35), test::uniform(C, 0.3f, 3.0f, 36)};
  FakeKv kv(sm, 8, {4, g, true, KvSmoothMode::None, 0, 3, true}, /*learn=*/true);
  EXPECT_THROW(kv.quantize_k(test::tensor_from(k, {1, T, C})), Error);  // no ranges yet
  // raw channel ranges over positions 1.. (as CRR leaves out position 0)
  const auto [klo, khi] = ranges_of(k, T, C, 1, 1);
  const auto [vlo, vhi] = ranges_of(v, T, C, 1, 1);
  kv.set_channel_ranges(klo, khi, vlo, vhi);
  for (int t = 0; t < 2; ++t) {
    const std::vector<float>& raw = t == 0 ? k : v;
    const std::vector<float>& d = t == 0 ? sm.dk : sm.dv;
    const std::vector<float>& s = t == 0 ? sm.sk : sm.sv;
    std::vector<float> smoothed(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) smoothed[i] = (raw[i] - d[i % C]) / s[i % C];
    const auto [lo, hi] = ranges_of(smoothed, T, C, g, 1);
    const auto ranges = kv.group_ranges(t);
    EXPECT_EQ(ranges[0], lo) << "kv " << t;
    EXPECT_EQ(ranges[1], hi) << "kv " << t;
    const torch::Tensor x = test::tensor_from(raw, {1, T, C});
    const std::vector<float> fake = test::floats_of(t == 0 ? kv.quantize_k(x) : kv.quantize_v(x));
    const std::vector<float> deq = runtime_round_trip(smoothed, T, C, g, t == 0 ? 4 : 3, lo, hi);
    for (size_t i = 0; i < raw.size(); ++i) {
      // the smoothing undone in f32 (exp(log s) is s to an ulp: a relative bound of 4 ulps)
      const float want = deq[i] * s[i % C] + d[i % C];
      EXPECT_NEAR(fake[i], want, 4 * std::numeric_limits<float>::epsilon() * (std::abs(want) + 1))
          << "kv " << t << " element " << i;
    }
  }
}

// The teacher-forced masks are the runtime's rules: query t reads [window_from, from) from the
// window and [from, t] in full precision.
TEST(TeacherForcedRule, WindowMaskIsTheRuntimeRule) {
  for (const bool poq : {true, false}) {
    for (const int64_t W : {0, 1, 3}) {
      const int64_t T = 7;
      const auto [win, exact] = teacher_forced_positions(poq, W, T, torch::kCPU);
      const auto a = win.accessor<bool, 2>();
      const auto e = exact.accessor<bool, 2>();
      for (int64_t t = 0; t < T; ++t) {
        const int64_t from = full_precision_from(poq, ChunkAttention::TeacherForced, 0, t);
        const int64_t wfrom = window_from(poq, W, from, t);
        for (int64_t j = 0; j < T; ++j) {
          EXPECT_EQ(a[t][j], j >= wfrom && j < from)
              << poq << " W " << W << " t " << t << " j " << j;
          EXPECT_EQ(e[t][j], j >= from && j <= t) << poq << " W " << W << " t " << t << " j " << j;
        }
      }
      // W positions before the query (POQ) or up to it (no POQ), fewer at the start
      EXPECT_EQ(win.sum().item<int64_t>(), poq ? (W == 0   ? 0
                                                  : W == 1 ? 6
                                                           : 15)
                                               : (W == 0   ? 0
                                                  : W == 1 ? 7
                                                           : 18));
    }
  }
}

}  // namespace
}  // namespace wkvq
