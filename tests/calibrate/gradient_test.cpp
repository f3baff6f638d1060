// Gradients of the fake-quantized block with respect to the LWC parameters (gamma, beta) and the
// KV smoothing parameters (dK, log sK, dV, log sV), against central finite differences, in
// double precision on a tiny block.
//
// What is checked: the fake quantizers round (to integers and fp16) and clamp, so as functions of
// the parameters they are piecewise constant or kinked, and finite differences of them say
// nothing about the STE gradient. The STE gradient at a point theta0 is, exactly, the gradient of
// the smooth surrogate in which every rounding adds its residual frozen at theta0
// (round(x) -> x + (round(x0) - x0)) and every clamp keeps its active set frozen at theta0 (the
// clamped elements stay at the bound, the others pass through; boundary elements pass, as in
// torch's clamp gradient). The surrogate equals the real fake quantizer at theta0 and is smooth
// around it (up to ties in group min/max, which random data does not produce), so its finite
// differences must match autograd. FrozenSteps implements that surrogate through the QuantSteps
// interface; a last check shows that production's STE steps give the same gradients at theta0.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include "calib_fixture.h"
#include "calibrate/fake_kv.h"
#include "calibrate/lwc.h"
#include "calibrate/torch_block.h"

namespace wkvq {
namespace {

// The STE surrogate: the first forward pass records every rounding residual and clamp mask,
// later passes (start_pass() before each) replay them in the same order.
class FrozenSteps final : public QuantSteps {
 public:
  torch::Tensor round(const torch::Tensor& x) const override {
    return x + frozen(kRound, torch::round(x) - x);
  }
  torch::Tensor to_fp16(const torch::Tensor& x) const override {
    return x + frozen(kFp16, x.to(torch::kHalf).to(x.scalar_type()) - x);
  }
  torch::Tensor clamp(const torch::Tensor& x, double lo, double hi) const override {
    const torch::Tensor below = frozen(kMask, x < lo), above = frozen(kMask, x > hi);
    return torch::where(below, torch::full_like(x, lo),
                        torch::where(above, torch::full_like(x, hi), x));
  }
  void start_pass() const {
    recording_ = passes_++ == 0;
    for (size_t& n : next_) n = 0;
  }

 private:
  enum Kind { kRound, kFp16, kMask };
  torch::Tensor frozen(Kind k, const torch::Tensor& fresh) const {
    if (recording_) store_[k].push_back(fresh.detach());
    return store_[k].at(next_[k]++);
  }
  mutable bool recording_ = true;
  mutable int passes_ = 0;
  mutable std::vector<torch::Tensor> store_[3];
  mutable size_t next_[3] = {0, 0, 0};
};

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.vocab_size = 32;
  c.seq_len = 16;
  return c;
}

// Compares autograd gradients of loss() with central differences for every element of params.
// loss() must run one forward pass of the frozen surrogate.
void check_gradients(const std::vector<torch::Tensor>& params,
                     const std::function<torch::Tensor()>& loss, const char* what) {
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) p.grad().zero_();
  }
  loss().backward();
  constexpr double h = 1e-6;
  // FD error: truncation ~h^2 |f'''| (~1e-12 here), cancellation ~eps64 |f| / h (~1e-12 for the
  // losses here, |f| < 0.01); gradients are ~1e-5..1e-4. kAbsTol is 1000x the FD error, kRelTol
  // catches any gradient wrong by more than 1e-5 of itself.
  constexpr double kAbsTol = 1e-9, kRelTol = 1e-5;
  double max_grad = 0, max_err = 0;
  int64_t nonzero = 0;
  for (const torch::Tensor& p : params) {
    const torch::Tensor g = p.grad().contiguous();
    for (int64_t j = 0; j < p.numel(); ++j) {
      double* v = p.data_ptr<double>() + j;
      const double v0 = *v;
      *v = v0 + h;
      const double up = loss().item<double>();
      *v = v0 - h;
      const double down = loss().item<double>();
      *v = v0;
      const double fd = (up - down) / (2 * h);
      const double ad = g.data_ptr<double>()[j];
      EXPECT_NEAR(ad, fd, kAbsTol + kRelTol * std::abs(fd)) << what << " element " << j;
      max_grad = std::max(max_grad, std::abs(ad));
      max_err = std::max(max_err, std::abs(ad - fd));
      nonzero += ad != 0.0 ? 1 : 0;
    }
  }
  EXPECT_GT(nonzero, 0) << what << ": every gradient is zero, the check would be vacuous";
  std::printf("[ info ] %s: max |grad| %.3g, max |autograd - fd| %.3g, %lld nonzero\n", what,
              max_grad, max_err, static_cast<long long>(nonzero));
}

torch::Tensor mse(const torch::Tensor& y, const torch::Tensor& target) {
  return (y - target).square().mean();
}

TEST(Gradients, LwcParametersMatchFiniteDifferencesOfTheSteSurrogate) {
  const Model m = test::make_test_model(tiny_config(), 41);
  const TorchBlock block(m, 0, torch::kFloat64);
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({2, 6, 16}, torch::kFloat64);
  const torch::Tensor target = block.forward(x) + 0.05 * torch::randn({2, 6, 16}, torch::kFloat64);
  Lwc lwc(block.weights(), 3, 10);  // groups of 10: tails of 6 and 4 columns
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 7; ++i) {  // clip factors ~0.7-0.95: many clamped elements
      lwc.gamma(i).uniform_(1.0, 3.0);
      lwc.beta(i).uniform_(1.0, 3.0);
    }
  }
  FrozenSteps steps;
  auto loss = [&] {
    steps.start_pass();
    const BlockLinears w = lwc.fake_quant(steps);
    return mse(block.forward(x, &w), target);
  };
  const double at_base = loss().item<double>();  // records
  const BlockLinears w_ste = lwc.fake_quant();
  EXPECT_EQ(at_base, mse(block.forward(x, &w_ste), target).item<double>())
      << "the frozen surrogate differs from the STE quantizer at the base point";
  check_gradients(lwc.parameters(), loss, "LWC gamma/beta");

  // production's STE steps give the same gradient at the base point
  std::vector<torch::Tensor> frozen_grads;
  for (const torch::Tensor& p : lwc.parameters()) frozen_grads.push_back(p.grad().clone());
  for (const torch::Tensor& p : lwc.parameters()) p.grad().zero_();
  const BlockLinears w2 = lwc.fake_quant();
  mse(block.forward(x, &w2), target).backward();
  for (size_t i = 0; i < frozen_grads.size(); ++i) {
    EXPECT_TRUE(torch::allclose(lwc.parameters()[i].grad(), frozen_grads[i], 1e-12, 1e-15));
  }
}

class SmoothingGradients : public ::testing::TestWithParam<bool> {};

TEST_P(SmoothingGradients, MatchFiniteDifferencesOfTheSteSurrogate) {
  const bool poq = GetParam();
  const Model m = test::make_test_model(tiny_config(), 43);
  const TorchBlock block(m, 0, torch::kFloat64);
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({2, 7, 16}, torch::kFloat64);
  const torch::Tensor target = block.forward(x) + 0.05 * torch::randn({2, 7, 16}, torch::kFloat64);
  const LayerSmoothing init{test::uniform(8, -0.3f, 0.3f, 1), test::uniform(8, 0.5f, 2.0f, 2),
                            test::uniform(8, -0.3f, 0.3f, 3), test::uniform(8, 0.5f, 2.0f, 4)};
  FrozenSteps steps;
  // 3 bits, groups of 3 channels (a tail of 2): coarse codes, many clamped group extremes
  const FakeKv kv(init, 8, {3, 3, poq}, /*learn=*/true, torch::kFloat64, &steps);
  auto loss = [&] {
    steps.start_pass();
    return mse(block.forward(x, nullptr, &kv), target);
  };
  loss();  // records
  check_gradients(kv.parameters(), loss, poq ? "smoothing (POQ)" : "smoothing (no POQ)");

  std::vector<torch::Tensor> frozen_grads;
  for (const torch::Tensor& p : kv.parameters()) frozen_grads.push_back(p.grad().clone());
  for (const torch::Tensor& p : kv.parameters()) p.grad().zero_();
  const FakeKv kv_ste(init, 8, {3, 3, poq}, true, torch::kFloat64);
  {  // the same parameter values
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < 4; ++i) kv_ste.parameters()[i].copy_(kv.parameters()[i]);
  }
  mse(block.forward(x, nullptr, &kv_ste), target).backward();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(torch::allclose(kv_ste.parameters()[i].grad(), frozen_grads[i], 1e-12, 1e-15))
        << "parameter " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(PoqOnOff, SmoothingGradients, ::testing::Bool());

}  // namespace
}  // namespace wkvq
