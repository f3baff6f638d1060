// Shared by the int8-activation GEMM / GEMV tests (qmatmul_q8_test.cpp, qmatmul_q8_gemv8_test.cpp):
// the tolerances (derived below), seeded inputs and the kernel-against-reference check.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/fp16.h"
#include "formats/weight_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/qmatmul.h"
#include "kernels/qmatmul_q8.h"

namespace wkvq::q8test {

inline constexpr double kEps = std::numeric_limits<float>::epsilon();  // 2u, u = 2^-24

// Kernel against reference. Per output both evaluate the same 2B terms (B x blocks) in the same
// order: d_b t_b and -dsum_b (z s)_b, with t_b = s * float(sum_k q_k xq_k) rounded identically on
// both sides (the integer sum is exact, and so is its conversion: |sum| <= 128 * 255 * 127 < 2^24
// at 8 bits). The reference rounds each product and each addition (no FMA in baseline code), the
// kernel each FMA once: every term passes through at most 2B + 1 roundings, so each side is within
// gamma(2B + 1) S of the exact sum, S = sum_b (|d_b t_b| + |dsum_b (z s)_b|), and
// |y - y_ref| <= 2 gamma(2B + 1) S = (2B + 1) eps S / (1 - (2B + 1) u). kGammaMargin covers the
// 1 / (1 - (2B + 1) u) factor (< 1.0001 for B <= 64) and the double evaluation of S.
inline constexpr double kGammaMargin = 1.01;

// Reference against the f32 definition y = sum_k x_k W^_k: |x_k - d xq_k| <= d (1/2 + 127 u')
// (xq rounds x * (1/d), itself within 2 roundings of x / d, times at most 127.5), so
// |y_q8 - y| <= sum_k d_b(k) (1/2 + kQuantSlack) |W^_k| plus both sides' f32 rounding (the
// reference's above, the definition's in eps sum_k |x_k W^_k|, as in qmatmul_test.cpp).
inline constexpr double kQuantSlack = 1e-4;

inline uint32_t base_seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return 20261202u;
}

inline QuantizedMatrix random_matrix(int64_t out, int64_t in, int64_t group, std::mt19937& rng,
                                     int bits = 4) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(out * in));
  for (float& v : w) v = uni(rng) < 0.01f ? 10.0f * normal(rng) : normal(rng);
  return quantize_weights_ref(w.data(), out, in, bits, group);
}

// x like activations: normal, a few outlier channels, one all-zero block row when possible.
inline std::vector<float> random_x(int64_t n, int64_t in, float scale, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n * in));
  for (float& v : x) v = normal(rng);
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i * in + (7 * i) % in)] *= 30.0f;
  for (int64_t k = 0; k < std::min<int64_t>(in, kQ8BlockCols); ++k) x[static_cast<size_t>(k)] = 0;
  return x;
}

// S of the kernel bound above for output (i, o).
inline double rounding_terms(const QuantizedMatrix& w, const Q8Activations& a,
                             const std::vector<uint8_t>& codes, int64_t i, int64_t o) {
  double total = 0.0;
  for (int64_t b = 0; b < a.blocks; ++b) {
    const int64_t c0 = b * kQ8BlockCols;
    int64_t dot = 0;
    for (int64_t c = c0; c < std::min(w.cols, c0 + kQ8BlockCols); ++c) {
      dot += int64_t{codes[static_cast<size_t>(c)]} * a.q[static_cast<size_t>(i * a.stride + c)];
    }
    const int64_t g = w.n_groups == 1 ? 0 : c0 / w.group;
    const double s = fp16_to_f32(w.scales[static_cast<size_t>(o * w.n_groups + g)]);
    const double z = w.zeros[static_cast<size_t>(o * w.n_groups + g)];
    const auto at = static_cast<size_t>(i * a.blocks + b);
    total += std::fabs(a.d[at] * s * static_cast<double>(dot)) + std::fabs(a.dsum[at] * z * s);
  }
  return total;
}

// y (n, w.rows) of a kernel against qmatmul_q8_ref within the kernel bound above (the first 5
// failures reported); with `equal` also bit for bit equal to it.
inline void expect_within_kernel_bound(const QuantizedMatrix& w, const float* x, int64_t n,
                                       const float* y, const float* equal) {
  const int64_t in = w.cols, out = w.rows;
  std::vector<float> want(static_cast<size_t>(n * out));
  qmatmul_q8_ref(x, n, w, want.data());
  Q8Activations a;
  quantize_activations_q8_ref(x, n, in, a);
  std::vector<uint8_t> codes(static_cast<size_t>(in));
  int reported = 0;
  for (int64_t o = 0; o < out && reported < 5; ++o) {
    unpack_row_codes_ref(w.row_codes(o), in, w.bits, codes.data());
    for (int64_t i = 0; i < n && reported < 5; ++i) {
      const auto at = static_cast<size_t>(i * out + o);
      const double tol = kGammaMargin * static_cast<double>(2 * a.blocks + 1) * kEps *
                         rounding_terms(w, a, codes, i, o);
      const bool within = std::fabs(static_cast<double>(y[at]) - want[at]) <= tol;
      if (!within || (equal != nullptr && !(y[at] == equal[at]))) {
        ADD_FAILURE() << "y[" << i << ", " << o << "] = " << y[at] << ", reference " << want[at]
                      << " (tolerance " << tol << ")"
                      << (equal != nullptr ? ", int8 GEMM " + std::to_string(equal[at]) : "");
        ++reported;
      }
    }
  }
}

// Whether this CPU runs `isa`'s int8 kernels (AVX2; AVX-512 with AVX512_VNNI).
inline bool runs_int8(Isa isa) {
  return isa_supported(isa) && (isa == Isa::Avx2 || avx512_vnni_supported());
}

// The rows of x up to which `isa` runs the GEMV (the dot kernels' limit), above it the GEMM.
inline int64_t gemv_max_rows(Isa isa) { return isa == Isa::Avx2 ? 24 : 64; }

inline KernelTable gemv_table(Isa isa) {
  return kernel_table(isa, PrefillGemm::Int8, DecodeGemv::Int8);
}

// y (n, w.rows) of x through `isa`'s int8 GEMV table, checked not to write past its end.
inline std::vector<float> gemv_product(Isa isa, const std::vector<float>& x, int64_t n,
                                       const QuantizedMatrix& w) {
  std::vector<float> y(static_cast<size_t>(n * w.rows + 1), -7.0f);
  qmatmul(gemv_table(isa), x.data(), n, w, y.data());
  EXPECT_EQ(y.back(), -7.0f) << "wrote past y";
  y.pop_back();
  return y;
}

// On AVX-512, y (the AVX512_VNNI table's product with W as built: 4-bit W the AVX2 GEMV runs, 8-bit
// W the VNNI row kernel) equals the AVX2 table's and the VNNI GEMV's on W in the tile layout, the
// one inference builds for it (model/linear.h, inference_matrix), bit for bit.
inline void expect_avx2_gives_the_same(Isa isa, const std::vector<float>& x, int64_t n,
                                       const QuantizedMatrix& w, const std::vector<float>& y) {
  if (isa != Isa::Avx512) return;
  EXPECT_EQ(gemv_product(Isa::Avx2, x, n, w), y) << "AVX2 int8 GEMV against the AVX-512 table";
  QuantizedMatrix tiled = w;
  add_tile_layout(tiled);
  EXPECT_EQ(gemv_product(Isa::Avx512, x, n, tiled), y) << "tile layout";
}

// The int8 kernel tests' parameter (ISA, threads): an ISA whose int8 kernels this CPU does not
// run (AVX-512 without AVX512_VNNI included) is reported as skipped, never as passed.
class Int8KernelTest : public ::testing::TestWithParam<std::tuple<Isa, int>> {
 protected:
  void SetUp() override {
    if (!runs_int8(isa())) {
      GTEST_SKIP() << isa_name(isa()) << " int8 kernels not supported by this CPU"
                   << (isa() == Isa::Avx512 ? " (AVX512_VNNI)" : "");
    }
  }
  static Isa isa() { return std::get<0>(GetParam()); }
  static int threads() { return std::get<1>(GetParam()); }
};

// INSTANTIATE_TEST_SUITE_P(IsasAndThreads, Fixture, kIsasAndThreads, isa_threads_name).
inline const auto kIsasAndThreads =
    ::testing::Combine(::testing::Values(Isa::Avx2, Isa::Avx512), ::testing::Values(1, 2));
inline std::string isa_threads_name(const ::testing::TestParamInfo<std::tuple<Isa, int>>& p) {
  return std::string(isa_name(std::get<0>(p.param))) + "_" + std::to_string(std::get<1>(p.param)) +
         "threads";
}

}  // namespace wkvq::q8test
