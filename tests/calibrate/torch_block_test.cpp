// The differentiable libtorch block (calibrate/torch_block.h) against the runtime's block_forward
// in full precision: random stories260K-shaped models in both RoPE layouts and with/without GQA,
// and the real stories260K when the shared files exist.
#include "calibrate/torch_block.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "calib_fixture.h"
#include "model/loader.h"
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

struct Shape {
  const char* name;
  RopeLayout rope;
  int n_kv_heads;
};

class TorchBlockFp : public ::testing::TestWithParam<Shape> {};

TEST_P(TorchBlockFp, EqualsRuntimeBlock) {
  LlamaConfig c = test::stories260k_config();
  c.rope_layout = GetParam().rope;
  c.n_kv_heads = GetParam().n_kv_heads;
  const Model m = test::make_test_model(c, 7);
  const int64_t T = 96;
  const Diff d = compare_all_layers(m, 2, T, 11);
  const double tol = block_tolerance(d.max_y);
  EXPECT_LE(d.max_abs, tol) << "max |y| " << d.max_y << " (seed 7)";
  std::printf("[ info ] %s: max |diff| %.3g, tolerance %.3g, max |y| %.3g\n", GetParam().name,
              d.max_abs, tol, d.max_y);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TorchBlockFp,
                         ::testing::Values(Shape{"interleaved_gqa", RopeLayout::Interleaved, 4},
                                           Shape{"rotate_half_gqa", RopeLayout::RotateHalf, 4},
                                           Shape{"rotate_half_mha", RopeLayout::RotateHalf, 8},
                                           Shape{"interleaved_mqa", RopeLayout::Interleaved, 1}),
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
