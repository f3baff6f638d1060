// forward_group (model/linear.h): several Linears on one input give exactly what each Linear's
// forward gives, whether they run fused (all quantized, no act-order) or one by one (any other
// mix), biases included.
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "model/linear.h"

namespace wkvq {
namespace {

struct Owned {
  std::vector<float> w, bias;
  Linear l;
};

// A Linear of out x in: quantized (4 bits, group 64) or f32, with or without a bias.
std::unique_ptr<Owned> make_linear(int64_t out, int64_t in, bool quantized, bool bias,
                                   std::mt19937& rng) {
  auto o = std::make_unique<Owned>();
  std::normal_distribution<float> normal(0.0f, 0.05f);
  o->w.resize(static_cast<size_t>(out * in));
  for (float& v : o->w) v = normal(rng);
  o->l.out = out;
  o->l.in = in;
  if (quantized) {
    o->l.q = std::make_shared<QuantizedMatrix>(quantize_weights_ref(o->w.data(), out, in, 4, 64));
  } else {
    o->l.w = o->w.data();
  }
  if (bias) {
    o->bias.resize(static_cast<size_t>(out));
    for (float& v : o->bias) v = normal(rng);
    o->l.bias = o->bias.data();
  }
  return o;
}

void expect_group_equals_forward(const std::vector<const Linear*>& ls, int64_t n,
                                 std::mt19937& rng) {
  const int64_t in = ls[0]->in;
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * in));
  for (float& v : x) v = uni(rng);
  std::vector<std::vector<float>> got, want;
  std::vector<float*> ys;
  for (const Linear* l : ls) {
    want.emplace_back(static_cast<size_t>(n * l->out));
    l->forward(x.data(), n, want.back().data());
    got.emplace_back(static_cast<size_t>(n * l->out), -3.0f);
  }
  for (std::vector<float>& g : got) ys.push_back(g.data());
  forward_group(ls, x.data(), n, ys);
  for (size_t k = 0; k < ls.size(); ++k) EXPECT_EQ(got[k], want[k]) << "Linear " << k << " n " << n;
}

TEST(ForwardGroup, EqualsEachForward) {
  const int saved = num_threads();
  set_num_threads(2);
  std::mt19937 rng(7);
  const int64_t in = 320;
  auto q1 = make_linear(200, in, true, false, rng);
  auto q2 = make_linear(24, in, true, true, rng);
  auto q3 = make_linear(64, in, true, false, rng);
  auto f1 = make_linear(40, in, false, true, rng);
  auto act = make_linear(16, in, true, false, rng);
  std::vector<int32_t> order(static_cast<size_t>(in));
  for (int64_t j = 0; j < in; ++j) order[static_cast<size_t>(j)] = static_cast<int32_t>(in - 1 - j);
  act->l.in_order = std::make_shared<const std::vector<int32_t>>(order);
  for (const int64_t n : {1, 5, 70}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    expect_group_equals_forward({&q1->l, &q2->l, &q3->l}, n, rng);  // fused, with a bias
    expect_group_equals_forward({&q1->l, &f1->l}, n, rng);          // f32 among them
    expect_group_equals_forward({&q3->l, &act->l}, n, rng);         // act-order among them
    expect_group_equals_forward({&q2->l}, n, rng);
  }
  set_num_threads(saved);
}

TEST(ForwardGroup, MismatchedOutputsAreAnError) {
  std::mt19937 rng(8);
  auto q1 = make_linear(8, 64, true, false, rng);
  std::vector<float> x(64), y(8);
  const std::array<const Linear*, 2> ls{&q1->l, &q1->l};
  const std::array<float*, 1> ys{y.data()};
  EXPECT_THROW(forward_group(ls, x.data(), 1, ys), Error);
}

}  // namespace
}  // namespace wkvq
