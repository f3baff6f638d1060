// The differentiable libtorch block (calibrate/torch_block.h) against the runtime's block_forward
// in full precision: random stories260K-shaped models in both RoPE layouts and with/without GQA,
// with each architecture feature beyond Llama-2 (q/k/v biases, q/k/v/o biases, per-head q/k norms
// with head_dim != dim / heads, llama3 and linear RoPE scaling at positions beyond the original
// context), and the real stories260K when the shared files exist.
#include "calibrate/torch_block.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "calib_fixture.h"
#include "core/error.h"
#include "model/loader.h"
#include "model/weight_quantizer.h"
#include "runtime/kv_cache.h"
#include "test_support.h"

namespace wkvq {
namespace {

using test::block_tolerance;

struct Diff {
  double max_abs = 0, max_y = 0;
};

// Every layer of m: the torch block and the runtime block on the same inputs (B windows of T
// tokens, the runtime's own layer outputs chained), compared element by element.
Diff compare_all_layers(const Model& m, int64_t B, int64_t T, uint64_t seed) {
  const LlamaConfig& c = m.config;
  std::vector<std::vector<float>> x(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int> tok =
        test::random_tokens(T, c.vocab_size, seed + static_cast<uint64_t>(b));
    for (const int t : tok) {
      x[static_cast<size_t>(b)].insert(x[static_cast<size_t>(b)].end(),
                                       m.tok_embeddings + int64_t{t} * c.dim,
                                       m.tok_embeddings + int64_t{t + 1} * c.dim);
    }
  }
  Diff d;
  for (int layer = 0; layer < c.n_layers; ++layer) {
    std::vector<float> flat;
    for (const auto& xb : x) flat.insert(flat.end(), xb.begin(), xb.end());
    const TorchBlock block(m, layer);
    const std::vector<float> yt =
        test::floats_of(block.forward(test::tensor_from(flat, {B, T, c.dim})));
    for (int64_t b = 0; b < B; ++b) {
      KvCache cache(c, T);
      auto& xb = x[static_cast<size_t>(b)];
      xb = test::runtime_block(m, layer, xb, cache);
      for (size_t i = 0; i < xb.size(); ++i) {
        d.max_abs = std::max(d.max_abs, std::abs(static_cast<double>(xb[i]) -
                                                 yt[static_cast<size_t>(b * T * c.dim) + i]));
        d.max_y = std::max(d.max_y, std::abs(static_cast<double>(xb[i])));
      }
    }
  }
  return d;
}

using test::Feature;

struct Shape {
  const char* name;
  RopeLayout rope;
  int n_kv_heads;
  Feature feature = Feature::None;
};

void PrintTo(const Shape& p, std::ostream* os) { *os << p.name; }

LlamaConfig shape_config(const Shape& s) {
  LlamaConfig c = test::with_feature(test::stories260k_config(), s.feature);
  c.rope_layout = s.rope;
  c.n_kv_heads = s.n_kv_heads;
  return c;
}

class TorchBlockFp : public ::testing::TestWithParam<Shape> {};

// T = 96 positions: beyond the original context (64) of the llama3 scaling (test::with_feature).
TEST_P(TorchBlockFp, EqualsRuntimeBlock) {
  const Model m = test::make_test_model(shape_config(GetParam()), 7);
  const int64_t T = 96;
  const Diff d = compare_all_layers(m, 2, T, 11);
  const double tol = block_tolerance(d.max_y);
  EXPECT_LE(d.max_abs, tol) << "max |y| " << d.max_y << " (seed 7)";
  std::printf("[ info ] %s: max |diff| %.3g, tolerance %.3g, max |y| %.3g\n", GetParam().name,
              d.max_abs, tol, d.max_y);
}

// Act-order GPTQ weights (an imported desc_act checkpoint: the stored columns permuted,
// Linear::in_order): the block computes with W^ in input-feature order, as the runtime does by
// gathering its input. (Without the columns put back the outputs differ by O(max |y|).)
TEST(TorchBlockQuantized, ActOrderWeightsEqualTheRuntimeBlock) {
  const Model fp = test::make_test_model(shape_config({"gqa", RopeLayout::RotateHalf, 4}), 41);
  const Model q = test::with_act_order_weights(fp, 32, 42);
  const Diff d = compare_all_layers(q, 2, 48, 43);
  EXPECT_LE(d.max_abs, block_tolerance(d.max_y)) << "max |y| " << d.max_y;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, TorchBlockFp,
    ::testing::Values(
        Shape{"interleaved_gqa", RopeLayout::Interleaved, 4},
        Shape{"rotate_half_gqa", RopeLayout::RotateHalf, 4},
        Shape{"rotate_half_mha", RopeLayout::RotateHalf, 8},
        Shape{"interleaved_mqa", RopeLayout::Interleaved, 1},
        Shape{"qkv_bias", RopeLayout::RotateHalf, 4, Feature::QkvBias},
        Shape{"attention_bias_interleaved", RopeLayout::Interleaved, 4, Feature::AttentionBias},
        Shape{"qk_norm_head_dim_16", RopeLayout::RotateHalf, 4, Feature::QkNorm},
        Shape{"qk_norm_interleaved_mqa", RopeLayout::Interleaved, 1, Feature::QkNorm},
        Shape{"llama3_rope", RopeLayout::RotateHalf, 4, Feature::Llama3Rope},
        Shape{"linear_rope_interleaved", RopeLayout::Interleaved, 4, Feature::LinearRope}),
    [](const auto& p) { return std::string(p.param.name); });

// m without its features: biases and q/k norms dropped, plain RoPE.
Model without_feature(const Model& m) {
  Model plain = m;
  LlamaConfig& c = plain.config;
  c.qkv_bias = c.o_bias = c.qk_norm = false;
  c.rope_scaling = RopeScaling{};
  for (LayerWeights& l : plain.layers) {
    for (int i = 0; i < 7; ++i) linear_by_index(l, i).bias = nullptr;
    l.q_norm = l.k_norm = nullptr;
  }
  return plain;
}

// The equality above could not see a feature the random model does not exercise: each one moves
// the runtime block's output by far more than the tolerance (kMatters times).
constexpr double kMatters = 100;

class TorchBlockFeature : public ::testing::TestWithParam<Shape> {};

TEST_P(TorchBlockFeature, MovesTheBlockOutput) {
  const Model m = test::make_test_model(shape_config(GetParam()), 7);
  const Model plain = without_feature(m);
  const LlamaConfig& c = m.config;
  const int64_t T = 96;
  std::vector<float> x;
  for (const int t : test::random_tokens(T, c.vocab_size, 11)) {
    x.insert(x.end(), m.tok_embeddings + int64_t{t} * c.dim,
             m.tok_embeddings + int64_t{t + 1} * c.dim);
  }
  KvCache ca(c, T), cb(c, T);
  const std::vector<float> y = test::runtime_block(m, 0, x, ca);
  const std::vector<float> yp = test::runtime_block(plain, 0, x, cb);
  double d = 0, max_y = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(y[i]) - yp[i]));
    max_y = std::max(max_y, std::abs(static_cast<double>(y[i])));
  }
  EXPECT_GT(d, kMatters * block_tolerance(max_y));
  // a model that names a feature but lacks its tensors is refused, not calibrated without it
  if (c.qk_norm) {
    Model broken = m;
    broken.layers[0].k_norm = nullptr;
    EXPECT_THROW(TorchBlock(broken, 0), Error);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Features, TorchBlockFeature,
    ::testing::Values(Shape{"qkv_bias", RopeLayout::RotateHalf, 4, Feature::QkvBias},
                      Shape{"attention_bias", RopeLayout::RotateHalf, 4, Feature::AttentionBias},
                      Shape{"qk_norm", RopeLayout::RotateHalf, 4, Feature::QkNorm},
                      Shape{"llama3_rope", RopeLayout::RotateHalf, 4, Feature::Llama3Rope},
                      Shape{"linear_rope", RopeLayout::RotateHalf, 4, Feature::LinearRope}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(TorchBlockFp, EqualsRuntimeBlockOnStories260K) {
  WKVQ_REQUIRE_SHARED(path, "models/stories260K/stories260K.bin");
  const Model m = load_model(path);
  const int64_t T = m.config.seq_len;
  const Diff d = compare_all_layers(m, 1, T, 5);
  const double tol = block_tolerance(d.max_y);
  EXPECT_LE(d.max_abs, tol) << "max |y| " << d.max_y;
  std::printf("[ info ] stories260K: max |diff| %.3g, tolerance %.3g, max |y| %.3g\n", d.max_abs,
              tol, d.max_y);
}

TEST(TorchBlockFp, GradientsFlowToTheInput) {
  const Model m = test::make_test_model(test::stories260k_config(), 3);
  const TorchBlock block(m, 0);
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({1, 8, 64}, torch::requires_grad());
  block.forward(x).square().sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
  for (const torch::Tensor& w : block.weights()) EXPECT_FALSE(w.requires_grad());
}

}  // namespace
}  // namespace wkvq
