// The int8-activation GEMV for 8-bit weights (QGemmQ8Ops::gemv8: qmatmul_q8_avx2.cpp, and
// qmatmul_q8_gemv_avx512vnni.cpp in the AVX-512 table; the 8-bit output head of `--head q8` under
// WKVQ_DECODE_GEMV=int8) against qmatmul_q8_ref within the kernel bound of qmatmul_q8_support.h;
// each row of x gets what it gets alone; the AVX-512 kernel gives the AVX2 one's numbers bit for
// bit. Skipped, not passed, where the CPU runs no int8 kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/parallel.h"
#include "formats/weight_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/qmatmul.h"
#include "kernels/qmatmul_q8.h"
#include "qmatmul_q8_support.h"
#include "test_support.h"

namespace wkvq {
namespace {

using namespace q8test;  // NOLINT(google-build-using-namespace): the shared helpers
using test::ThreadCount;

class QmatmulQ8Gemv8Test : public Int8KernelTest {};

// y of n rows through the 8-bit GEMV: within the kernel bound of the reference, each row equal
// bit for bit to that row alone (serve's batched decode rows get what they get alone), and on
// AVX-512 equal to the AVX2 table's result.
void check_gemv8(Isa isa, int64_t n, int64_t in, int64_t out, int64_t group, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << isa_name(isa) << " n=" << n << " in=" << in << " out=" << out << " g=" << group
               << " seed=" << seed << " (rerun: WKVQ_TEST_SEED)");
  std::mt19937 rng(seed);
  const QuantizedMatrix w = random_matrix(out, in, group, rng, 8);
  const std::vector<float> x = random_x(n, in, 1.0f, rng);
  const std::vector<float> y = gemv_product(isa, x, n, w);
  expect_within_kernel_bound(w, x.data(), n, y.data(), nullptr);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> alone(static_cast<size_t>(out));
    qmatmul(gemv_table(isa), x.data() + i * in, 1, w, alone.data());
    EXPECT_EQ(alone, std::vector<float>(y.begin() + i * out, y.begin() + (i + 1) * out))
        << "row " << i << " alone";
  }
  expect_avx2_gives_the_same(isa, x, n, w, y);
}

// n = 1 (decode) to the dot kernels' limit; W tiles of 8 rows and steps of 4 rows whole and
// partial; rows of whole and partial 128-byte blocks (in % 128 = 0, 32, 64, 100), odd block
// counts (steps of 2 blocks); groups of 128 and 256 and one per row.
TEST_P(QmatmulQ8Gemv8Test, MatchesReferenceRowByRow) {
  const ThreadCount tc(threads());
  uint32_t seed = base_seed() + 2000u;
  for (const int64_t group : {0, 128, 256}) {
    for (const int64_t n : {1, 2, 5}) {
      for (const int64_t in : {32, 64, 100, 256, 384, 1000, 2048}) {
        for (const int64_t out : {1, 7, 17, 48}) check_gemv8(isa(), n, in, out, group, ++seed);
      }
    }
    check_gemv8(isa(), gemv_max_rows(isa()), 640, 30, group, ++seed);
  }
  check_gemv8(isa(), 1, 2048, 1000, 128, ++seed);  // the shape of a head slice
}

// Codes at both ends of [0, 255] (255 and 0 in alternate pairs of columns) against activations
// at +-127 of the same sign in each pair: the kernel's vpmaddubsw pair sums reach 2 * 128 * 127
// (the most, 2^15 - 256) and must stay exact. A saturated pair would be off by thousands.
TEST_P(QmatmulQ8Gemv8Test, ExtremeCodesStayExact) {
  const ThreadCount tc(threads());
  const int64_t in = 256;
  const int64_t out = 9;
  std::vector<float> wf(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < in; ++k) {
      wf[static_cast<size_t>(o * in + k)] =
          ((k / 2 + o) % 2 == 0 ? 1.0f : -1.0f) + 0.125f * static_cast<float>(o);
    }
  }
  const QuantizedMatrix w = quantize_weights_ref(wf.data(), out, in, 8, 128);
  for (const float sign : {1.0f, -1.0f}) {
    SCOPED_TRACE(::testing::Message() << "sign " << sign);
    std::vector<float> x(static_cast<size_t>(in));
    for (int64_t k = 0; k < in; ++k) x[static_cast<size_t>(k)] = (k / 2) % 2 == 0 ? sign : -sign;
    std::vector<float> y(static_cast<size_t>(out));
    qmatmul(gemv_table(isa()), x.data(), 1, w, y.data());
    expect_within_kernel_bound(w, x.data(), 1, y.data(), nullptr);
  }
}

// Above the dot kernels' limit a table with the int8 prompt GEMM runs 8-bit W through the same
// GEMV (there is no 8-bit GEMM): each row equals the int8 decode GEMV's result for it alone, so
// that a teacher-forced `ppl --mode decode` pass stands for token-by-token decoding.
TEST_P(QmatmulQ8Gemv8Test, PromptRowsEqualDecodeRows) {
  const ThreadCount tc(threads());
  std::mt19937 rng(base_seed() + 987u);
  const int64_t n = gemv_max_rows(isa()) + 6;
  const int64_t in = 300;
  const int64_t out = 50;
  const QuantizedMatrix w = random_matrix(out, in, 128, rng, 8);
  const std::vector<float> x = random_x(n, in, 1.0f, rng);
  std::vector<float> y(static_cast<size_t>(n * out));
  qmatmul(isa(), PrefillGemm::Int8, x.data(), n, w, y.data());
  std::vector<float> f32(y.size());
  qmatmul(isa(), PrefillGemm::F32, x.data(), n, w, f32.data());
  EXPECT_NE(y, f32) << "the f32 kernels ran";
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> alone(static_cast<size_t>(out));
    qmatmul(gemv_table(isa()), x.data() + i * in, 1, w, alone.data());
    ASSERT_EQ(alone, std::vector<float>(y.begin() + i * out, y.begin() + (i + 1) * out))
        << "row " << i;
  }
}

// A NaN or an infinity in a row of x makes that row of y NaN, and no other.
TEST_P(QmatmulQ8Gemv8Test, NonFiniteActivationsGiveNaN) {
  const ThreadCount tc(threads());
  std::mt19937 rng(base_seed() + 654u);
  const int64_t n = 6;
  const int64_t in = 300;
  const int64_t out = 40;
  const QuantizedMatrix w = random_matrix(out, in, 128, rng, 8);
  std::vector<float> x = random_x(n, in, 1.0f, rng);
  x[static_cast<size_t>(2 * in + 250)] = std::numeric_limits<float>::quiet_NaN();
  x[static_cast<size_t>(4 * in + 7)] = std::numeric_limits<float>::infinity();
  std::vector<float> y(static_cast<size_t>(n * out));
  qmatmul(gemv_table(isa()), x.data(), n, w, y.data());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      const float v = y[static_cast<size_t>(i * out + o)];
      EXPECT_EQ(std::isnan(v), i == 2 || i == 4) << "y[" << i << ", " << o << "] = " << v;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(IsasAndThreads, QmatmulQ8Gemv8Test, kIsasAndThreads, isa_threads_name);

}  // namespace
}  // namespace wkvq
