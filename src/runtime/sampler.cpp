#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace wkvq {

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

Sampler::Sampler(int vocab_size, float temperature, float top_p, uint64_t seed)
    : vocab_size_(vocab_size), temperature_(temperature), top_p_(top_p), rng_(seed) {
  WKVQ_REQUIRE(std::isfinite(temperature) && temperature >= 0.0f,
               "--temperature must be a finite number >= 0, found ", temperature);
  WKVQ_REQUIRE(top_p > 0.0f && top_p <= 1.0f, "--top-p must be in (0, 1], found ", top_p);
  probs_.resize(static_cast<size_t>(vocab_size));
  order_.resize(static_cast<size_t>(vocab_size));
}

int Sampler::sample(const float* logits) {
  for (int i = 0; i < vocab_size_; ++i) {
    WKVQ_REQUIRE(std::isfinite(logits[i]), "the model produced a non-finite logit (", logits[i],
                 ") for token ", i, "; the weights may be corrupt");
  }
  if (temperature_ == 0.0f) return argmax(logits, vocab_size_);
  // softmax(logits / T), in double for the normaliser
  const float mx = logits[argmax(logits, vocab_size_)];
  double sum = 0.0;
  for (int i = 0; i < vocab_size_; ++i) {
    const float p = std::exp((logits[i] - mx) / temperature_);
    probs_[static_cast<size_t>(i)] = p;
    sum += p;
  }
  // nucleus: the smallest set of most likely tokens whose mass reaches top_p
  std::iota(order_.begin(), order_.end(), 0);
  int keep = vocab_size_;
  if (top_p_ < 1.0f) {
    std::sort(order_.begin(), order_.end(), [&](int a, int b) {
      return probs_[static_cast<size_t>(a)] > probs_[static_cast<size_t>(b)] ||
             (probs_[static_cast<size_t>(a)] == probs_[static_cast<size_t>(b)] && a < b);
    });
    double mass = 0.0;
    for (keep = 0; keep < vocab_size_;) {
      mass += probs_[static_cast<size_t>(order_[static_cast<size_t>(keep)])];
      ++keep;
      if (mass >= top_p_ * sum) break;
    }
    sum = mass;
  }
  const double r = std::uniform_real_distribution<double>(0.0, sum)(rng_);
  double acc = 0.0;
  for (int i = 0; i < keep; ++i) {
    acc += probs_[static_cast<size_t>(order_[static_cast<size_t>(i)])];
    if (r < acc) return order_[static_cast<size_t>(i)];
  }
  return order_[static_cast<size_t>(keep - 1)];
}

}  // namespace wkvq
