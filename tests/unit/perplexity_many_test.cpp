// perplexity_many (eval/perplexity.h): several evaluations in one pass over the windows give
// exactly what perplexity() gives for each alone (same forward passes, same sums in the same
// order), including the KL divergence from a shared reference and prefill runs that are shared.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "eval/perplexity.h"
#include "unit/quantized_model_fixture.h"

namespace wkvq {
namespace {

using namespace qmtest;  // NOLINT(google-build-using-namespace): test helpers

void expect_same(const PplResult& want, const PplResult& got) {
  EXPECT_EQ(got.mode, want.mode);
  EXPECT_EQ(got.nll, want.nll);
  EXPECT_EQ(got.nll_stderr, want.nll_stderr);
  EXPECT_EQ(got.ppl, want.ppl);
  EXPECT_EQ(got.has_kld, want.has_kld);
  EXPECT_EQ(got.kld, want.kld);
  EXPECT_EQ(got.kld_stderr, want.kld_stderr);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.windows, want.windows);
  EXPECT_EQ(got.ctx, want.ctx);
  EXPECT_EQ(got.kv_bits_per_element, want.kv_bits_per_element);
  EXPECT_EQ(got.kv_bytes_per_token, want.kv_bytes_per_token);
}

TEST(PerplexityMany, EachResultEqualsItsOwnRun) {
  const LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);
  const Model fp = make_random_model(c, base_seed());
  const Model q = quantized_model(c, 4, 32, "", true, base_seed());  // with a KV smoothing
  const std::vector<int> stream = random_tokens(c.vocab_size, 200, base_seed() + 3u);
  PplOptions opt;
  opt.ctx = 24;
  opt.max_windows = 6;
  opt.chunk = 10;  // several chunks per window
  opt.kld_reference = &fp;
  KvQuantSettings kv4;
  kv4.bits = 4;
  KvQuantSettings kv2 = kv4;
  kv2.bits = 2;
  const std::vector<EvalSpec> specs = {
      {&fp, EvalMode::Prefill, {}, nullptr},     {&q, EvalMode::Decode, kv4, nullptr},
      {&q, EvalMode::DecodeNoPoq, kv4, nullptr}, {&q, EvalMode::Prefill, kv4, nullptr},
      {&q, EvalMode::Decode, kv2, nullptr},      {&q, EvalMode::Prefill, kv2, nullptr}};
  const std::vector<PplResult> many = perplexity_many(specs, stream, opt);
  ASSERT_EQ(many.size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "evaluation " << i);
    PplOptions one = opt;
    one.mode = specs[i].mode;
    one.kv = specs[i].kv;
    one.smoothing = specs[i].smoothing;
    expect_same(perplexity(*specs[i].model, stream, one), many[i]);
  }
  EXPECT_EQ(many[0].kld, 0.0) << "the reference against itself";
  EXPECT_NE(many[1].nll, many[2].nll) << "POQ and no POQ differ (the test could fail)";
  EXPECT_NE(many[1].nll, many[4].nll) << "KV4 and KV2 differ";
}

TEST(PerplexityMany, RefusesModelsThatDoNotShareAVocabulary) {
  const Model a = make_random_model(small_config(96, RopeLayout::RotateHalf, true), 1);
  LlamaConfig c = small_config(96, RopeLayout::RotateHalf, true);
  c.vocab_size = 80;
  const Model b = make_random_model(c, 2);
  const std::vector<int> stream = random_tokens(80, 100, 3);
  PplOptions opt;
  opt.ctx = 16;
  EXPECT_THROW(
      perplexity_many({{&a, EvalMode::Prefill, {}, nullptr}, {&b, EvalMode::Prefill, {}, nullptr}},
                      stream, opt),
      Error);
  EXPECT_THROW(perplexity_many({}, stream, opt), Error);
}

}  // namespace
}  // namespace wkvq
