// GPTQ (calibrate/gptq.h): its output error against RTN's on one layer, the exact reduction to RTN
// when the Hessian is diagonal, bad input, and the model-level run with its result file.
#include "calibrate/gptq.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>

#include "calib_fixture.h"
#include "calibrate/gptq_result.h"
#include "core/error.h"
#include "formats/weight_quant.h"
#include "model/weight_quantizer.h"
#include "test_support.h"

namespace wkvq {
namespace {

using test::floats_of;
using test::tensor_from;
using test::uniform;

template <class F>
void expect_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// (n, cols) correlated inputs with a few large channels, as activations are: z + z M, channels
// 0-3 scaled by 8; z from z_seed, M from mix_seed.
torch::Tensor make_inputs(int64_t n, int64_t cols, uint64_t z_seed, uint64_t mix_seed) {
  const torch::Tensor z = tensor_from(uniform(n * cols, -1.0f, 1.0f, z_seed), {n, cols});
  const torch::Tensor mix = tensor_from(uniform(cols * cols, -0.5f, 0.5f, mix_seed), {cols, cols});
  torch::Tensor gain = torch::ones({cols});
  gain.narrow(0, 0, 4).fill_(8.0);
  return (z + z.matmul(mix)) * gain;
}

struct Layer {
  torch::Tensor w;  // (rows, cols)
  torch::Tensor x;  // (n, cols)
};

Layer make_layer(int64_t rows, int64_t cols, int64_t n, uint64_t seed) {
  return {tensor_from(uniform(rows * cols, -1.0f, 1.0f, seed), {rows, cols}),
          make_inputs(n, cols, seed + 1, seed + 2)};
}

torch::Tensor dequantized(const QuantizedMatrix& m) {
  std::vector<float> w(static_cast<size_t>(m.rows * m.cols));
  dequantize_weights_ref(m, w.data());
  return tensor_from(w, {m.rows, m.cols});
}

// ||W X^T - Q X^T||_F^2
double output_error(const torch::Tensor& w, const QuantizedMatrix& q, const torch::Tensor& x) {
  return (w - dequantized(q)).matmul(x.t()).square().sum().item<double>();
}

QuantizedMatrix rtn(const torch::Tensor& w, int bits, int64_t group) {
  const std::vector<float> v = floats_of(w);
  return quantize_weights_ref(v.data(), w.size(0), w.size(1), bits, group);
}

// The Cholesky path: on a layer with correlated inputs GPTQ's output error is below RTN's for
// every bit width, with and without act-order, on the calibration inputs and on fresh ones.
TEST(GptqTest, OutputErrorBelowRtn) {
  const Layer l = make_layer(24, 96, 512, 5);
  const torch::Tensor x_test = make_inputs(512, 96, 77, 5 + 2);  // fresh inputs, same mixing
  const torch::Tensor h = gptq_hessian(l.x);
  for (const int bits : {2, 3, 4, 8}) {
    for (const bool act_order : {false, true}) {
      GptqOptions o;
      o.bits = bits;
      o.group = 32;
      o.block = 40;  // groups straddle lazy-batch blocks
      o.act_order = act_order;
      const QuantizedMatrix g = gptq_quantize(l.w, h, o);
      const QuantizedMatrix r = rtn(l.w, bits, 32);
      const double eg = output_error(l.w, g, l.x), er = output_error(l.w, r, l.x);
      SCOPED_TRACE("bits " + std::to_string(bits) + (act_order ? " act-order" : ""));
      EXPECT_LT(eg, 0.8 * er);
      EXPECT_GT(eg, 0.0);
      EXPECT_LT(output_error(l.w, g, x_test), output_error(l.w, r, x_test));
      validate(g, "gptq");
    }
  }
}

// With H = c I nothing propagates (U is diagonal): GPTQ is RTN bit for bit, in both orders.
TEST(GptqTest, DiagonalHessianIsRtn) {
  const Layer l = make_layer(8, 72, 16, 11);
  for (const int64_t group : {int64_t{0}, int64_t{16}, int64_t{32}}) {
    for (const bool act_order : {false, true}) {
      GptqOptions o;
      o.bits = 4;
      o.group = group;
      o.block = 24;
      o.act_order = act_order;
      const QuantizedMatrix g = gptq_quantize(l.w, torch::eye(72, torch::kFloat64) * 3.0, o);
      const QuantizedMatrix r = rtn(l.w, 4, group);
      EXPECT_EQ(g.codes, r.codes) << "group " << group;
      EXPECT_EQ(g.scales, r.scales);
      EXPECT_EQ(g.zeros, r.zeros);
    }
  }
}

TEST(GptqTest, BadInputIsAClearError) {
  const Layer l = make_layer(4, 16, 32, 3);
  const GptqOptions o;
  torch::Tensor bad_w = l.w.clone();
  bad_w[1][2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { gptq_quantize(bad_w, gptq_hessian(l.x), o, "L0.wq"); },
               "L0.wq: the weights are not finite");
  expect_error([&] { gptq_quantize(l.w, torch::eye(8, torch::kFloat64), o, "L0.wq"); },
               "the Hessian must be 16 x 16");
  torch::Tensor not_pd = torch::eye(16, torch::kFloat64);
  not_pd[3][3] = -5.0;
  expect_error([&] { gptq_quantize(l.w, not_pd, o, "L0.wq"); }, "raise --gptq-damp");
}

GptqOptions small_options() {
  GptqOptions o;
  o.group = 32;
  o.samples = 3;
  o.window = 24;
  return o;
}

// gptq_model: deterministic, every linear quantized at its shape, and the result file reads back
// bit-identical (and is refused for other options).
TEST(GptqTest, ModelRunAndResultFile) {
  const Model fp = test::make_test_model(test::stories260k_config(), 21);
  const std::vector<int> calib = test::random_tokens(80, fp.config.vocab_size, 4);
  const GptqOptions o = small_options();
  const GptqResult a = gptq_model(fp, calib, o);
  const GptqResult b = gptq_model(fp, calib, o);
  ASSERT_EQ(a.layers.size(), fp.layers.size());
  const test::TempDir dir("gptq_result");
  const std::string path = dir.path("gptq_weights.safetensors");
  write_gptq_result(path, a, o.summary(fp.config));
  const GptqResult c = read_gptq_result(path, fp, o);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    for (int i = 0; i < 7; ++i) {
      const QuantizedMatrix& m = a.layers[l][static_cast<size_t>(i)];
      const Linear& lin = linear_by_index(fp.layers[l], i);
      EXPECT_EQ(m.rows, lin.out);
      EXPECT_EQ(m.cols, lin.in);
      EXPECT_EQ(m.codes, b.layers[l][static_cast<size_t>(i)].codes);
      EXPECT_EQ(m.codes, c.layers[l][static_cast<size_t>(i)].codes);
      EXPECT_EQ(m.scales, c.layers[l][static_cast<size_t>(i)].scales);
      EXPECT_EQ(m.zeros, c.layers[l][static_cast<size_t>(i)].zeros);
    }
  }
  const Model q = apply_gptq(fp, c, o);
  EXPECT_EQ(q.quant.method, "gptq");
  EXPECT_EQ(q.quant.wbits, 4);
  EXPECT_TRUE(q.layers[2].w_down.quantized());
  GptqOptions other = o;
  other.damp = 0.1;
  expect_error([&] { read_gptq_result(path, fp, other); }, "not written for the options asked for");
}

}  // namespace
}  // namespace wkvq
