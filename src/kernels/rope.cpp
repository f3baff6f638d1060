#include "kernels/rope.h"

#include <cmath>

namespace wkvq {

void RopeTable::build(int64_t pos0, int64_t n, int hd, float theta) {
  head_dim = hd;
  const int half = hd / 2;
  cos.resize(static_cast<size_t>(n * half));
  sin.resize(static_cast<size_t>(n * half));
  for (int i = 0; i < half; ++i) {
    const double freq = std::pow(static_cast<double>(theta), -2.0 * i / hd);
    for (int64_t t = 0; t < n; ++t) {
      const double angle = static_cast<double>(pos0 + t) * freq;
      cos[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(angle));
      sin[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(angle));
    }
  }
}

void rope_apply(float* x, int n_heads, int hd, const RopeTable& table, int64_t t,
                RopeLayout layout) {
  const int half = hd / 2;
  const float* c = table.cos.data() + t * half;
  const float* s = table.sin.data() + t * half;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * hd;
    for (int i = 0; i < half; ++i) {
      const int a = layout == RopeLayout::Interleaved ? 2 * i : i;
      const int b = layout == RopeLayout::Interleaved ? 2 * i + 1 : i + half;
      const float x0 = v[a];
      const float x1 = v[b];
      v[a] = x0 * c[i] - x1 * s[i];
      v[b] = x0 * s[i] + x1 * c[i];
    }
  }
}

}  // namespace wkvq
