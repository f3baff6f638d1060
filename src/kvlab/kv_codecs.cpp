#include "kvlab/kv_codecs.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/kv_quant.h"

namespace wkvq {

namespace {
float fp16_round(float x) { return fp16_to_f32(f32_to_fp16(x)); }
}  // namespace

void q4_0_round_trip(const float* x, int64_t n, float* out, uint8_t* codes) {
  WKVQ_REQUIRE(n % 32 == 0, "q4_0: ", n, " values are not whole blocks of 32");
  for (int64_t b = 0; b < n; b += 32) {
    float amax = 0.0f;
    float mx = 0.0f;
    for (int64_t j = b; j < b + 32; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        mx = x[j];
      }
    }
    const float d = mx / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float dh = fp16_round(d);
    for (int64_t j = b; j < b + 32; ++j) {
      const int q = std::min(15, static_cast<int>(std::trunc(x[j] * id + 8.5f)));
      if (codes != nullptr) codes[j] = static_cast<uint8_t>(q);
      out[j] = static_cast<float>(q - 8) * dh;
    }
  }
}

void q4_1_round_trip(const float* x, int64_t n, float* out, uint8_t* codes) {
  WKVQ_REQUIRE(n % 32 == 0, "q4_1: ", n, " values are not whole blocks of 32");
  for (int64_t b = 0; b < n; b += 32) {
    float mn = x[b];
    float mx = x[b];
    for (int64_t j = b; j < b + 32; ++j) {
      mn = std::min(mn, x[j]);
      mx = std::max(mx, x[j]);
    }
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float dh = fp16_round(d);
    const float mh = fp16_round(mn);
    for (int64_t j = b; j < b + 32; ++j) {
      const int q = std::min(15, static_cast<int>(std::trunc((x[j] - mn) * id + 0.5f)));
      if (codes != nullptr) codes[j] = static_cast<uint8_t>(q);
      out[j] = static_cast<float>(q) * dh + mh;
    }
  }
}

void token_groups_round_trip(const float* x, int64_t c, int64_t group, int bits, float* out) {
  const KvQuantFormat f = make_kv_format(c, group, bits);
  std::vector<uint8_t> record(static_cast<size_t>(f.token_bytes));
  quantize_token_ref(f, x, record.data());
  dequantize_token_ref(f, record.data(), out);
}

void rel8_groups_round_trip(const float* x, int64_t c, int64_t group, int bits,
                            const KvRel8Group* groups, float* out) {
  const float qmax = static_cast<float>((1 << bits) - 1);
  for (int64_t g = 0; g * group < c; ++g) {
    const int64_t c0 = g * group;
    const int64_t len = std::min(group, c - c0);
    float mn = x[c0];
    float mx = x[c0];
    for (int64_t i = c0; i < c0 + len; ++i) {
      WKVQ_REQUIRE(std::isfinite(x[i]), "KV quantization: non-finite value at channel ", i);
      mn = std::min(mn, x[i]);
      mx = std::max(mx, x[i]);
    }
    uint8_t m8t8[2];
    kv_rel8_codes(groups[g], mn, mx, m8t8);
    const float m = groups[g].levels[m8t8[0]];
    const float s = (groups[g].levels[m8t8[1]] - m) / qmax;
    for (int64_t i = c0; i < c0 + len; ++i) {
      const float q = s > 0.0f ? std::clamp(std::nearbyint((x[i] - m) / s), 0.0f, qmax) : 0.0f;
      out[i] = std::fma(q, s, m);
    }
  }
}

void hadamard_in_place(float* x, int64_t n) {
  WKVQ_REQUIRE(n > 0 && (n & (n - 1)) == 0, "Hadamard rotation: size ", n,
               " is not a power of two");
  for (int64_t h = 1; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) {
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j];
        const float b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(n));
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

namespace {

// Cumulative mass and first moment of the density on a grid of cells over [-1, 1], read at any
// point by linear interpolation inside a cell.
struct GridDensity {
  int64_t cells = int64_t{1} << 18;
  double h = 2.0 / static_cast<double>(cells);
  std::vector<double> mass, moment;  // at the cell edges: cells + 1 entries
  std::vector<double> w;             // per cell

  explicit GridDensity(int dim) : mass(cells + 1, 0.0), moment(cells + 1, 0.0), w(cells) {
    const double e = (dim - 3) / 2.0;
    for (int64_t i = 0; i < cells; ++i) {
      const double t = -1.0 + (static_cast<double>(i) + 0.5) * h;
      w[i] = std::pow(std::max(0.0, 1.0 - t * t), e) * h;
      mass[i + 1] = mass[i] + w[i];
      moment[i + 1] = moment[i] + w[i] * t;
    }
  }
  // mass and moment of [-1, b]
  void at(double b, double* m, double* mom) const {
    const double p = std::clamp((b + 1.0) / h, 0.0, static_cast<double>(cells));
    const auto i = std::min(static_cast<int64_t>(p), cells - 1);
    const double frac = p - static_cast<double>(i);
    const double edge = -1.0 + static_cast<double>(i) * h;
    *m = mass[i] + frac * w[i];
    *mom = moment[i] + frac * w[i] * (edge + frac * h / 2.0);
  }
};

}  // namespace

std::vector<double> lloyd_max_unit_coordinate(int dim, int bits) {
  WKVQ_REQUIRE(dim >= 2 && bits >= 1 && bits <= 4, "Lloyd-Max codebook: dim ", dim, ", bits ", bits,
               " (need dim >= 2, bits 1..4)");
  const GridDensity g(dim);
  const int levels = 1 << bits;
  std::vector<double> c(static_cast<size_t>(levels));
  const double sd = 1.0 / std::sqrt(static_cast<double>(dim));
  for (int i = 0; i < levels; ++i) {  // start: evenly over +-2 standard deviations
    c[i] = std::clamp(sd * (-2.0 + 4.0 * (i + 0.5) / levels), -0.999, 0.999);
  }
  for (int it = 0; it < 100000; ++it) {
    double moved = 0.0;
    double m0 = 0.0, mom0 = 0.0;
    g.at(-1.0, &m0, &mom0);
    std::vector<double> next(c.size());
    for (int i = 0; i < levels; ++i) {
      const double b = i + 1 < levels ? (c[i] + c[i + 1]) / 2.0 : 1.0;
      double m1 = 0.0, mom1 = 0.0;
      g.at(b, &m1, &mom1);
      next[i] = m1 > m0 ? (mom1 - mom0) / (m1 - m0) : c[i];
      moved = std::max(moved, std::fabs(next[i] - c[i]));
      m0 = m1;
      mom0 = mom1;
    }
    c = next;
    if (moved < 1e-12) break;
  }
  return c;
}

std::vector<double> random_orthogonal(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> r(static_cast<size_t>(n) * n);
  for (double& v : r) v = normal(rng);
  for (int i = 0; i < n; ++i) {
    double* ri = &r[static_cast<size_t>(i) * n];
    for (int j = 0; j < i; ++j) {
      const double* rj = &r[static_cast<size_t>(j) * n];
      double d = 0.0;
      for (int k = 0; k < n; ++k) d += ri[k] * rj[k];
      for (int k = 0; k < n; ++k) ri[k] -= d * rj[k];
    }
    double nn = 0.0;
    for (int k = 0; k < n; ++k) nn += ri[k] * ri[k];
    nn = std::sqrt(nn);
    WKVQ_ASSERT(nn > 1e-9);
    for (int k = 0; k < n; ++k) ri[k] /= nn;
  }
  return r;
}

void turbo_round_trip(const float* x, int n, const std::vector<double>& r,
                      const std::vector<double>& levels, float* out) {
  double nn = 0.0;
  for (int i = 0; i < n; ++i) nn += static_cast<double>(x[i]) * x[i];
  nn = std::sqrt(nn);
  const double stored = fp16_round(static_cast<float>(nn));
  std::vector<double> y(static_cast<size_t>(n), 0.0);
  if (nn > 0.0) {
    for (int i = 0; i < n; ++i) {
      double d = 0.0;
      for (int k = 0; k < n; ++k) d += r[static_cast<size_t>(i) * n + k] * x[k];
      const double u = d / nn;
      size_t q = 0;  // boundaries strictly below u: ties go to the lower level
      while (q + 1 < levels.size() && u > (levels[q] + levels[q + 1]) / 2.0) ++q;
      y[i] = levels[q];
    }
  }
  for (int k = 0; k < n; ++k) {
    double v = 0.0;
    for (int i = 0; i < n; ++i) v += r[static_cast<size_t>(i) * n + k] * y[i];
    out[k] = static_cast<float>(stored * v);
  }
}

}  // namespace wkvq
