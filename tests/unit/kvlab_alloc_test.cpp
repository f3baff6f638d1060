// The KV lab's per-layer bit allocation (alloc=sens, kvlab/kv_alloc.h): the budget kept exactly,
// the allocation deterministic and optimal on planted sensitivities (against brute force), the
// bits report counting every layer's codes and metadata, and per-layer bits applied per layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"
#include "kvlab/kv_alloc.h"
#include "kvlab/kv_alloc_measure.h"
#include "kvlab/kv_lab_method.h"
#include "kvlab/kv_method.h"
#include "kvlab/kv_sweep.h"
#include "model/random_model.h"

namespace wkvq {
namespace {

const KvShape kStories{32, 8, 5};  // stories260K: 4 KV heads of 8, 5 layers

double bits(const std::string& spec, const KvShape& s, int64_t ctx = 512) {
  return kv_bits_per_element(parse_kv_method(spec), s, ctx);
}

// cost[t][b] = w_t 4^-b: the squared error of a uniform quantizer falls 4x per bit.
KvSensitivity planted(const std::vector<double>& w, const std::vector<int>& menu) {
  KvSensitivity s;
  s.n_tensors = static_cast<int>(w.size());
  s.bits = menu;
  for (const double wt : w) {
    for (const int b : menu) s.cost.push_back(wt * std::pow(4.0, -b));
  }
  return s;
}

double total_cost(const KvSensitivity& s, const std::vector<int>& a) {
  double c = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    for (size_t i = 0; i < s.bits.size(); ++i) {
      if (s.bits[i] == a[t]) c += s.cost[t * s.bits.size() + i];
    }
  }
  return c;
}

// Reverse water-filling: b_t = log4(w_t) + c; w = 20, 1, 1.1, 0.05 and 12 bits give
// c ~ 2.98 -> 5.14, 2.98, 3.05, 0.82 -> 5, 3, 3, 1; and the same as the best of all 6^4 choices.
TEST(KvLabAlloc, PlantedSensitivityGivesTheExpectedBits) {
  const std::vector<int> menu = {1, 2, 3, 4, 5, 6};
  const KvSensitivity s = planted({20.0, 1.0, 1.1, 0.05}, menu);
  const std::vector<int> got = allocate_kv_bits(s, 12);
  EXPECT_EQ(got, (std::vector<int>{5, 3, 3, 1}));
  double best = 1e300;
  for (int i = 0; i < 6 * 6 * 6 * 6; ++i) {
    const std::vector<int> a = {1 + i % 6, 1 + i / 6 % 6, 1 + i / 36 % 6, 1 + i / 216};
    if (std::accumulate(a.begin(), a.end(), 0) == 12) best = std::min(best, total_cost(s, a));
  }
  EXPECT_DOUBLE_EQ(total_cost(s, got), best);
}

// Every total the menu allows is met exactly, by bits of the menu, on random tables.
TEST(KvLabAlloc, KeepsTheBudgetExactly) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (const std::vector<int>& menu :
       {std::vector<int>{1, 2, 3, 4, 5}, std::vector<int>{2, 3, 4, 8}}) {
    KvSensitivity s;
    s.n_tensors = 10;
    s.bits = menu;
    for (int i = 0; i < 10 * static_cast<int>(menu.size()); ++i) s.cost.push_back(u(rng));
    // the sums 10 widths of the menu reach (2, 3, 4, 8 reach neither 73 nor 77..79)
    std::set<int64_t> reach = {0};
    for (int t = 0; t < 10; ++t) {
      std::set<int64_t> next;
      for (const int64_t r : reach) {
        for (const int b : menu) next.insert(r + b);
      }
      reach = next;
    }
    for (int64_t total = 10 * menu.front(); total <= 10 * menu.back(); ++total) {
      if (reach.count(total) == 0) {
        EXPECT_THROW(allocate_kv_bits(s, total), Error) << total;
        continue;
      }
      const std::vector<int> a = allocate_kv_bits(s, total);
      ASSERT_EQ(a.size(), 10u);
      EXPECT_EQ(std::accumulate(a.begin(), a.end(), int64_t{0}), total);
      for (const int b : a) EXPECT_NE(std::find(menu.begin(), menu.end(), b), menu.end());
      EXPECT_EQ(allocate_kv_bits(s, total), a);  // deterministic
    }
    EXPECT_THROW(allocate_kv_bits(s, 10 * menu.back() + 1), Error);
    EXPECT_THROW(allocate_kv_bits(s, 10 * menu.front() - 1), Error);
  }
}

// Equal costs: the ties rule gives the smallest prefix sums first.
TEST(KvLabAlloc, TiesAreDeterministic) {
  KvSensitivity s;
  s.n_tensors = 4;
  s.bits = {1, 2, 3, 4};
  s.cost.assign(16, 0.5);
  EXPECT_EQ(allocate_kv_bits(s, 8), (std::vector<int>{1, 1, 2, 4}));
}

TEST(KvLabAlloc, MonotoneMakesMoreBitsNeverWorse) {
  KvSensitivity s;
  s.n_tensors = 1;
  s.bits = {1, 2, 3};
  s.cost = {3.0, 1.0, 1.5};
  make_kv_sensitivity_monotone(s);
  EXPECT_EQ(s.cost, (std::vector<double>{3.0, 1.0, 1.0}));
}

// Per-layer bits: the mean over the 2 n_layers tensors of codes + metadata, by hand.
TEST(KvLabAlloc, BitsCountEveryLayersMetadata) {
  // rel8 g32: 16 bits per 32 channels = 0.5 per element on every tensor
  EXPECT_DOUBLE_EQ(bits("wkvq2d:g=32,kb=5.5.5.5.5,vb=3.3.3.3.3", kStories),
                   (5.5 * 5 + 3.5 * 5) / 10);
  EXPECT_DOUBLE_EQ(bits("wkvq2d:g=32,kb=3.3.1.2.1,vb=2.2.2.2.2", kStories), 2.5);
  // fp16 scale and min per 16 channels: 2 bits per element, 8 + 2 and three 2 + 2
  EXPECT_DOUBLE_EQ(bits("wkvq:g=16,kb=8.2,vb=2.2", kStories), (10.0 + 4.0 * 3) / 4);
  // a window of 16 fp16 tokens on top
  EXPECT_DOUBLE_EQ(bits("wkvq2d:g=32,kb=4.4,vb=3.5,w=16", kStories),
                   (496 * 4.5 + 16 * 16.0) / 512.0);
  // the sweep's alloc: the uniform's group, the most code bits within the budget
  const auto c = kv_config_for_budget(parse_kv_method("wkvq2d:alloc=sens"), kStories, 512, 3.8125);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->label(), "wkvq2d b3 g32 alloc");
  EXPECT_EQ(c->alloc_total_bits, 33);  // 0.5 + 33 / 10 = 3.8 <= 3.8125 < 0.5 + 34 / 10
  EXPECT_DOUBLE_EQ(kv_bits_per_element(*c, kStories, 512), 3.8);
  const auto u = kv_config_for_budget(parse_kv_method("wkvq2d:alloc=sens"), kStories, 512, 2.5);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->alloc_total_bits, 20);
}

TEST(KvLabAlloc, ParseAndLabel) {
  EXPECT_EQ(parse_kv_method("wkvq2d:g=32,kb=5.6,vb=3.1").label(), "wkvq2d b4 g32 kb5.6 vb3.1");
  EXPECT_EQ(parse_kv_method("wkvq2d:b=2,alloc=sens").label(), "wkvq2d b2 alloc");
  EXPECT_EQ(parse_kv_method("wkvq2d:b=2,alloc=solo").label(), "wkvq2d b2 alloc-solo");
  EXPECT_THROW(parse_kv_method("kivi:alloc=sens"), Error);
  EXPECT_THROW(parse_kv_method("wkvq2d:alloc=max"), Error);
  EXPECT_THROW(parse_kv_method("wkvq2d:kb=3.3,vb=3"), Error);
  EXPECT_THROW(parse_kv_method("wkvq2d:kb=3.9,vb=3.3"), Error);
  EXPECT_THROW(parse_kv_method("wkvq2d:kb=3..3,vb=3.3.3"), Error);
}

LlamaConfig alloc_config() {
  LlamaConfig c;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.dim = 32;
  c.hidden_dim = 64;
  c.vocab_size = 40;
  c.seq_len = 48;
  return c;
}

// Per-layer bits round-trip each layer's keys and values as the uniform method at those bits;
// 0 bits leave the tensor as it is; widths the quantizer does not take are refused.
TEST(KvLabAlloc, LayerBitsApplyPerLayer) {
  const LlamaConfig c = alloc_config();
  const KvLabMethod mixed(parse_kv_method("rtn:g=8,kb=8.2,vb=0.3"), c, nullptr, nullptr);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> x(16 * 3);
  for (float& v : x) v = u(rng);
  std::vector<float> got(x.size()), want(x.size());
  const auto uniform = [&](int b) {
    return KvLabMethod(parse_kv_method("rtn:g=8,b=" + std::to_string(b)), c, nullptr, nullptr);
  };
  mixed.round_trip_keys(0, x.data(), 3, 0, got.data());
  uniform(8).round_trip_keys(0, x.data(), 3, 0, want.data());
  EXPECT_EQ(got, want);
  mixed.round_trip_keys(1, x.data(), 3, 0, got.data());
  uniform(2).round_trip_keys(1, x.data(), 3, 0, want.data());
  EXPECT_EQ(got, want);
  EXPECT_NE(got, x);
  mixed.round_trip_values(0, x.data(), 3, got.data());
  EXPECT_EQ(got, x);
  mixed.round_trip_values(1, x.data(), 3, got.data());
  uniform(3).round_trip_values(1, x.data(), 3, want.data());
  EXPECT_EQ(got, want);
  EXPECT_THROW(KvLabMethod(parse_kv_method("rtn:g=8,kb=5.2,vb=2.2"), c, nullptr, nullptr), Error);
  EXPECT_THROW(KvLabMethod(parse_kv_method("rtn:g=8,kb=2.2.2,vb=2.2.2"), c, nullptr, nullptr),
               Error);
  EXPECT_THROW(KvLabMethod(parse_kv_method("rtn:alloc=sens"), c, nullptr, nullptr), Error);
}

// alloc=sens on a model: the bits chosen sum to the uniform's, so the bits per element are the
// uniform's exactly; a second allocation reuses the probes and gives the same bits.
TEST(KvLabAlloc, MeasuredAllocationKeepsTheUniformBits) {
  const LlamaConfig c = alloc_config();
  const Model model = make_random_model(c, 9);
  std::vector<int> stream(96);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<int>((i * 7 + 3) % 40);
  KvLabCalibration calib;
  calib.fp = calib.model = &model;
  calib.stream = &stream;
  calib.windows = {48, 2, 1};
  const KvMethodSpec spec = parse_kv_method("rtn:b=3,g=8,alloc=sens");
  const KvMethodSpec a = allocate_kv_layers(spec, c, calib);
  ASSERT_EQ(a.layer_bits.size(), 4u);
  EXPECT_EQ(std::accumulate(a.layer_bits.begin(), a.layer_bits.end(), 0), 12);
  const KvShape shape{c.kv_dim(), c.head_dim, c.n_layers};
  EXPECT_DOUBLE_EQ(kv_bits_per_element(a, shape, 48),
                   kv_bits_per_element(parse_kv_method("rtn:b=3,g=8"), shape, 48));
  EXPECT_EQ(calib.probes->size(), 4u * 4u - 3u);  // 4 tensors x 2,3,4,8; the uniform once
  const KvSensitivity s = measure_kv_sensitivity(spec, {2, 3, 4, 8}, c, calib);
  for (int t = 0; t < 4; ++t) {  // 8 bits on one tensor is closer to the float cache than 2
    EXPECT_LT(s.cost[static_cast<size_t>(t) * 4 + 3], s.cost[static_cast<size_t>(t) * 4]) << t;
  }
  EXPECT_EQ(allocate_kv_layers(spec, c, calib).layer_bits, a.layer_bits);
  EXPECT_EQ(calib.probes->size(), 13u);
}

}  // namespace
}  // namespace wkvq
