// Sampler: picks the next token from logits: greedy (temperature 0), or temperature sampling
// with nucleus (top-p) truncation from a seeded generator.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace wkvq {

class Sampler {
 public:
  // temperature >= 0 (0 = argmax); top_p in (0, 1] (1 = no truncation).
  Sampler(int vocab_size, float temperature, float top_p, uint64_t seed);

  // The next token for these logits (vocab_size floats; left unchanged).
  int sample(const float* logits);

 private:
  int vocab_size_;
  float temperature_, top_p_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;
  std::vector<int> order_;
};

// Index of the largest value, the first one on ties.
int argmax(const float* x, int n);

}  // namespace wkvq
