#include "kernels/vec_ops.h"

#include <cmath>

#include "kernels/exp_f32.h"

namespace wkvq {

void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double mean = n > 0 ? ss / static_cast<double>(n) : 0.0;
  const float scale = static_cast<float>(1.0 / std::sqrt(mean + static_cast<double>(eps)));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void softmax_inplace(float* x, int64_t n) {
  if (n <= 0) return;
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  double part[kSoftmaxParts] = {};
  for (int64_t i = 0; i < n; ++i) {
    x[i] = exp_f32(x[i] - max);
    part[i % kSoftmaxParts] += x[i];
  }
  for (int half = kSoftmaxParts / 2; half >= 1; half /= 2) {
    for (int l = 0; l < half; ++l) part[l] += part[l + half];
  }
  const float inv = static_cast<float>(1.0 / part[0]);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

float dot(const float* a, const float* b, int64_t n) {
  constexpr int64_t kParts = 8;
  float part[kParts] = {};
  int64_t i = 0;
  for (; i + kParts <= n; i += kParts) {
    for (int64_t l = 0; l < kParts; ++l) part[l] += a[i + l] * b[i + l];
  }
  for (int64_t l = 0; i + l < n; ++l) part[l] += a[i + l] * b[i + l];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

void axpy(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace wkvq
