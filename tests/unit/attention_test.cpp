#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/kv_cache.h"

namespace wkvq {
namespace {

constexpr double kEps32 = 1.1920929e-7;

// Causal GQA attention in double, straight from the definition.
std::vector<double> attention_ref(const LlamaConfig& c, const std::vector<float>& q,
                                  const std::vector<float>& k, const std::vector<float>& v,
                                  int64_t n) {
  const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  std::vector<double> out(static_cast<size_t>(n * c.q_dim()));
  for (int64_t t = 0; t < n; ++t) {
    for (int h = 0; h < c.n_heads; ++h) {
      const int g = h / group;
      std::vector<double> s(static_cast<size_t>(t + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= t; ++j) {
        double d = 0;
        for (int i = 0; i < hd; ++i) {
          d += static_cast<double>(q[static_cast<size_t>(t * c.q_dim() + h * hd + i)]) *
               k[static_cast<size_t>(j * c.kv_dim() + g * hd + i)];
        }
        s[static_cast<size_t>(j)] = d / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, s[static_cast<size_t>(j)]);
      }
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - mx));
      for (int i = 0; i < hd; ++i) {
        double acc = 0;
        for (int64_t j = 0; j <= t; ++j) {
          acc +=
              s[static_cast<size_t>(j)] / z * v[static_cast<size_t>(j * c.kv_dim() + g * hd + i)];
        }
        out[static_cast<size_t>(t * c.q_dim() + h * hd + i)] = acc;
      }
    }
  }
  return out;
}

// The f32 cache, fed in chunks (prefill then single decode steps), equals the double reference.
// Tolerance: a score has error <= hd * eps * |q||k| (dot of hd terms, |q_i|,|k_i| <= 1 so
// <= hd^2 eps / sqrt(hd)); softmax turns a score error d into a relative probability error
// <= 2d; the output, a convex combination of |v| <= 1, errs by <= 2d + len * eps from the sum.
TEST(KvCacheAttention, ChunkedMatchesReference) {
  LlamaConfig c;
  c.dim = 48;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.n_layers = 2;
  c.seq_len = 64;
  const int64_t n = 37;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto fill = [&](int64_t count) {
    std::vector<float> x(static_cast<size_t>(count));
    for (float& e : x) e = u(rng);
    return x;
  };
  const auto q = fill(n * c.q_dim()), k = fill(n * c.kv_dim()), v = fill(n * c.kv_dim());
  const auto ref = attention_ref(c, q, k, v, n);

  KvCache cache(c, c.seq_len);
  std::vector<float> out(static_cast<size_t>(n * c.q_dim()));
  const int layer = 1;
  int64_t pos = 0;
  for (int64_t chunk : {20, 10, 1, 1, 5}) {
    cache.attend(layer, q.data() + pos * c.q_dim(), k.data() + pos * c.kv_dim(),
                 v.data() + pos * c.kv_dim(), chunk, pos, out.data() + pos * c.q_dim());
    pos += chunk;
  }
  ASSERT_EQ(pos, n);
  const double hd = c.head_dim;
  const double score_err = hd * hd * kEps32 / std::sqrt(hd);
  const double tol = 2 * score_err + static_cast<double>(n) * kEps32;
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(out[i] - ref[i]));
  EXPECT_LE(worst, tol) << "max |out - ref| = " << worst << ", bound " << tol;
  EXPECT_GT(worst, 0.0);  // f32 vs double: some rounding must show, or the test compares nothing
}

TEST(KvCacheAttention, BytesPerTokenCountsKAndVOfEveryLayer) {
  LlamaConfig c;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  KvCache cache(c, 8);
  EXPECT_EQ(cache.bytes_per_token(), 2 * 3 * 32 * 4);
}

}  // namespace
}  // namespace wkvq
