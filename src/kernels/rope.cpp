#include "kernels/rope.h"

#include <cmath>

namespace wkvq {

std::vector<double> rope_frequencies(int hd, double theta, const RopeScaling& s) {
  const int half = hd / 2;
  std::vector<double> freq(static_cast<size_t>(half));
  constexpr double kTwoPi = 6.283185307179586476925;
  for (int i = 0; i < half; ++i) {
    const double base = std::pow(theta, -2.0 * i / hd);
    double f = base;
    if (s.kind == RopeScaling::Kind::Linear) {
      f = base / s.factor;
    } else if (s.kind == RopeScaling::Kind::Llama3) {
      const double wavelen = kTwoPi / base;
      const double orig = s.original_max_position;
      if (wavelen > orig / s.low_freq_factor) {
        f = base / s.factor;
      } else if (wavelen >= orig / s.high_freq_factor) {
        const double smooth =
            (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * base / s.factor + smooth * base;
      }
    }
    freq[static_cast<size_t>(i)] = f;
  }
  return freq;
}

void RopeTable::build(int64_t pos0, int64_t n, int hd, float theta, const RopeScaling& scaling) {
  head_dim = hd;
  const int half = hd / 2;
  cos.resize(static_cast<size_t>(n * half));
  sin.resize(static_cast<size_t>(n * half));
  const std::vector<double> freqs = rope_frequencies(hd, theta, scaling);
  for (int i = 0; i < half; ++i) {
    const double freq = freqs[static_cast<size_t>(i)];
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
