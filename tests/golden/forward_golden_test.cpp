// The runtime forward on the real stories260K model: batched prefill, chunked prefill and
// token-by-token decode are the same function of the tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "model/loader.h"
#include "runtime/session.h"
#include "test_support.h"

namespace wkvq {
namespace {

constexpr double kEps32 = 1.1920929e-7;

// Paths differ only in summation order (matmul tiling for n > 1 vs n = 1, attention over a cache
// of different fill). Each logit is a chain of L blocks of dot products over <= hidden terms;
// reassociating a dot of m terms moves it by <= m * eps * sum|terms|. We bound the logit change
// by kReorderFactor * eps * max|logit| * sqrt(hidden) * n_layers, with a factor of 8 for the
// amplification through norms and softmax. Measured differences sit ~10-100x below it.
constexpr double kReorderFactor = 8.0;

TEST(ForwardGolden, PrefillChunkedAndDecodeAgree) {
  WKVQ_REQUIRE_SHARED(path, "models/stories260K/stories260K.bin");
  const Model m = load_model(path);
  const LlamaConfig& c = m.config;
  const int64_t n = 96;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> pick(3, c.vocab_size - 1);
  std::vector<int> tokens(static_cast<size_t>(n));
  tokens[0] = c.bos_id;
  for (size_t i = 1; i < tokens.size(); ++i) tokens[i] = pick(rng);

  const auto V = static_cast<size_t>(c.vocab_size);
  std::vector<float> full(n * V), chunked(n * V), decoded(n * V);
  Session a(m), b(m), d(m);
  a.forward_all(tokens.data(), n, full.data());
  b.forward_all(tokens.data(), 40, chunked.data());
  b.forward_all(tokens.data() + 40, n - 40, chunked.data() + 40 * V);
  for (int64_t t = 0; t < n; ++t) {
    const float* l = d.decode(tokens[static_cast<size_t>(t)]);
    std::copy(l, l + V, decoded.begin() + t * static_cast<int64_t>(V));
  }
  double max_logit = 0, diff_chunk = 0, diff_decode = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    max_logit = std::max(max_logit, static_cast<double>(std::abs(full[i])));
    diff_chunk = std::max(diff_chunk, static_cast<double>(std::abs(full[i] - chunked[i])));
    diff_decode = std::max(diff_decode, static_cast<double>(std::abs(full[i] - decoded[i])));
  }
  const double tol = kReorderFactor * kEps32 * max_logit * std::sqrt(c.hidden_dim) * c.n_layers;
  EXPECT_LE(diff_chunk, tol) << "chunked prefill vs one pass";
  EXPECT_LE(diff_decode, tol) << "decode vs prefill";
  std::printf("max|logit| %.3f, chunked diff %.3g, decode diff %.3g, bound %.3g\n", max_logit,
              diff_chunk, diff_decode, tol);
}

TEST(ForwardGolden, RejectsPositionsBeyondTheContext) {
  WKVQ_REQUIRE_SHARED(path, "models/stories260K/stories260K.bin");
  const Model m = load_model(path);
  Session s(m);
  std::vector<int> tokens(static_cast<size_t>(m.config.seq_len), 5);
  s.prefill(tokens);
  EXPECT_THROW(s.decode(5), Error);
  EXPECT_THROW(Session(m, m.config.seq_len + 1), Error);
}

}  // namespace
}  // namespace wkvq
