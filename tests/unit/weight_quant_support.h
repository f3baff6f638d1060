// Shared by the weight quantization tests (weight_quant_test.cpp, weight_quant_gptq_test.cpp):
// the seed and the random weights. All randomness is seeded; set WKVQ_TEST_SEED to replay
// another seed.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

namespace wkvq::wqtest {

inline uint32_t base_seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return 20240611u;
}

// Normal weights (sigma 0.02), a fraction outlier_rate of them 20 times larger.
inline std::vector<float> random_weights(int64_t count, std::mt19937& rng,
                                         float outlier_rate = 0.01f) {
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(count));
  for (float& v : w) v = uni(rng) < outlier_rate ? 20.0f * normal(rng) : normal(rng);
  return w;
}

}  // namespace wkvq::wqtest
