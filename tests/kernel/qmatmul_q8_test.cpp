// The int8-activation GEMM (kernels/qmatmul_q8.h): its reference against the f32 definition
// (within the activation quantization error), and the AVX2 and AVX512_VNNI kernels against the
// reference (within f32 rounding, derived in qmatmul_q8_support.h). An ISA this CPU does not run
// (AVX-512 without AVX512_VNNI included) has its kernel tests reported as skipped, never as passed.
// Inputs are seeded; WKVQ_TEST_SEED replays another.
#include "kernels/qmatmul_q8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "formats/weight_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/qmatmul.h"
#include "qmatmul_q8_support.h"
#include "test_support.h"

namespace wkvq {
namespace {

using namespace q8test;  // NOLINT(google-build-using-namespace): the shared helpers
using test::ThreadCount;

void check_kernel(Isa isa, int64_t n, int64_t in, int64_t out, int64_t group, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << isa_name(isa) << " n=" << n << " in=" << in << " out=" << out << " g=" << group
               << " seed=" << seed << " (rerun: WKVQ_TEST_SEED)");
  std::mt19937 rng(seed);
  const QuantizedMatrix w = random_matrix(out, in, group, rng);
  const std::vector<float> x = random_x(n, in, 1.0f, rng);
  std::vector<float> y(static_cast<size_t>(n * out + 1), -7.0f);
  qmatmul(isa, PrefillGemm::Int8, x.data(), n, w, y.data());
  EXPECT_EQ(y[static_cast<size_t>(n * out)], -7.0f) << "wrote past y";
  expect_within_kernel_bound(w, x.data(), n, y.data(), nullptr);
}

class QmatmulQ8KernelTest : public Int8KernelTest {};

// n above the dot kernels' limit (64; AVX2 24): the int8 GEMM. Partial register tiles (n % 12),
// partial panels (out % 32), in not a multiple of 32, 64 or 128, one or several packed blocks of
// 256 columns and of 256 W rows, groups of 128 and 256 and one per row.
TEST_P(QmatmulQ8KernelTest, MatchesReference) {
  const ThreadCount tc(threads());
  uint32_t seed = base_seed();
  for (const int64_t group : {0, 128, 256}) {
    for (const int64_t in : {32, 100, 128, 200, 256, 300, 640, 1000}) {
      for (const int64_t out : {1, 17, 64, 100}) check_kernel(isa(), 65, in, out, group, ++seed);
    }
    check_kernel(isa(), 77, 600, 530, group, ++seed);
    check_kernel(isa(), 130, 2048, 70, group, ++seed);
  }
}

// Where the int8 GEMM does not apply (n within the dot kernels' limit, groups of 32 or 64) Int8
// runs the f32 kernels, bit for bit (8 bits: qmatmul_q8_gemv8_test.cpp).
TEST_P(QmatmulQ8KernelTest, OtherCasesRunTheF32Kernels) {
  const ThreadCount tc(threads());
  std::mt19937 rng(base_seed() + 99u);
  const int64_t at_limit = gemv_max_rows(isa());
  struct Case {
    int64_t n, in, out, group;
    int bits;
  };
  for (const Case c :
       {Case{1, 256, 40, 128, 4}, Case{at_limit, 256, 40, 128, 4}, Case{70, 256, 40, 64, 4},
        Case{70, 256, 40, 32, 4}, Case{70, 256, 40, 64, 8}}) {
    SCOPED_TRACE(::testing::Message() << "n=" << c.n << " g=" << c.group << " bits=" << c.bits);
    std::vector<float> wf(static_cast<size_t>(c.out * c.in));
    std::normal_distribution<float> normal(0.0f, 0.05f);
    for (float& v : wf) v = normal(rng);
    const QuantizedMatrix w = quantize_weights_ref(wf.data(), c.out, c.in, c.bits, c.group);
    const std::vector<float> x = random_x(c.n, c.in, 1.0f, rng);
    std::vector<float> y8(static_cast<size_t>(c.n * c.out));
    std::vector<float> y32(y8.size());
    qmatmul(isa(), PrefillGemm::Int8, x.data(), c.n, w, y8.data());
    qmatmul(isa(), PrefillGemm::F32, x.data(), c.n, w, y32.data());
    EXPECT_EQ(y8, y32);
  }
}

// The process's table picks the GEMM per use (kernel_table.h, GemmUse): unasked, a Prompt runs
// the int8 GEMM and Exact (evaluation, serve) the f32 one, bit for bit the explicit tables'
// results; WKVQ_PREFILL_GEMM pins one GEMM for both, WKVQ_DECODE_GEMV=int8 gives evaluation the
// int8 GEMM too. qmatmul_many follows the same choice.
TEST_P(QmatmulQ8KernelTest, ProcessTablePicksTheGemmPerUse) {
  const ThreadCount tc(threads());
  const KernelTable& t = kernel_table();
  if (t.isa != isa()) GTEST_SKIP() << "the process runs " << isa_name(t.isa);
  // Unasked (neither variable set), a Prompt runs int8 wherever the CPU runs the int8 kernels
  // (else f32) and evaluation f32; asked, both follow it.
  const bool asked = t.int4_gemm.pinned || t.int4_decode.form == DecodeGemv::Int8;
  const bool int8 = t.int4_gemm.form == PrefillGemm::Int8;
  if (!asked) {
    EXPECT_EQ(int8, runs_int8(t.isa));
  }
  EXPECT_EQ(t.int8_gemm_for(GemmUse::Prompt), int8);
  EXPECT_EQ(t.int8_gemm_for(GemmUse::Exact), asked && int8);
  std::mt19937 rng(base_seed() + 7u);
  const int64_t n = 70, in = 256, out = 48;
  const QuantizedMatrix w = random_matrix(out, in, 128, rng);
  const std::vector<float> x = random_x(n, in, 1.0f, rng);
  std::vector<float> y8(static_cast<size_t>(n * out)), y32(y8.size());
  qmatmul(isa(), PrefillGemm::Int8, x.data(), n, w, y8.data());
  qmatmul(isa(), PrefillGemm::F32, x.data(), n, w, y32.data());
  ASSERT_NE(y8, y32);  // else this test could not tell the two apart
  for (const GemmUse use : {GemmUse::Exact, GemmUse::Prompt}) {
    SCOPED_TRACE(use == GemmUse::Prompt ? "prompt" : "exact");
    const std::vector<float>& want = t.int8_gemm_for(use) ? y8 : y32;
    std::vector<float> y(y8.size()), y_many(y8.size());
    qmatmul(x.data(), n, w, y.data(), use);
    EXPECT_EQ(y, want);
    const QuantizedMatrix* ws[] = {&w};
    float* ys[] = {y_many.data()};
    qmatmul_many(x.data(), n, ws, ys, use);
    EXPECT_EQ(y_many, want);
  }
}

// The AMX GEMM (qmatmul_q8_amx.cpp) against the AVX512_VNNI one: bit for bit, over partial
// groups of 16 x rows and 16 W rows, partial blocks, groups of 128 and 256 and one per row,
// NaN rows; several threads splitting both x and W. Skipped where AMX-INT8 is not usable.
TEST_P(QmatmulQ8KernelTest, AmxGemmEqualsTheVnniGemm) {
  if (isa() != Isa::Avx512 || !amx_int8_usable()) {
    GTEST_SKIP() << "AMX-INT8 not usable on this CPU / OS (or not the AVX-512 instance)";
  }
  const ThreadCount tc(threads());
  const KernelTable amx = with_amx(kernel_table(Isa::Avx512, PrefillGemm::Int8), true);
  const KernelTable vnni = with_amx(kernel_table(Isa::Avx512, PrefillGemm::Int8), false);
  ASSERT_NE(amx.qgemm_q8, vnni.qgemm_q8);
  uint32_t seed = base_seed() + 500u;
  for (const int64_t group : {0, 128, 256}) {
    for (const int64_t in : {100, 128, 300, 2048}) {
      for (const int64_t out : {17, 64, 100}) {
        for (const int64_t n : {65, 77, 130}) {
          SCOPED_TRACE(::testing::Message()
                       << "n=" << n << " in=" << in << " out=" << out << " g=" << group);
          std::mt19937 rng(++seed);
          const QuantizedMatrix w = random_matrix(out, in, group, rng);
          std::vector<float> x = random_x(n, in, 1.0f, rng);
          x[static_cast<size_t>(in + 3)] = std::numeric_limits<float>::quiet_NaN();
          std::vector<float> ya(static_cast<size_t>(n * out + 1), -7.0f), yv(ya.size(), -7.0f);
          qmatmul(amx, x.data(), n, w, ya.data());
          qmatmul(vnni, x.data(), n, w, yv.data());
          for (size_t k = 0; k < ya.size(); ++k) {
            ASSERT_TRUE(ya[k] == yv[k] || (std::isnan(ya[k]) && std::isnan(yv[k])))
                << "y[" << k / static_cast<size_t>(out) << ", " << k % static_cast<size_t>(out)
                << "] = " << ya[k] << ", VNNI " << yv[k];
          }
        }
      }
    }
  }
}

// A NaN or an infinity in a row of x makes that row of y NaN (kernel and reference), and no other.
TEST_P(QmatmulQ8KernelTest, NonFiniteActivationsGiveNaN) {
  const ThreadCount tc(threads());
  std::mt19937 rng(base_seed() + 123u);
  const int64_t n = 70;
  const int64_t in = 300;
  const int64_t out = 40;
  const QuantizedMatrix w = random_matrix(out, in, 128, rng);
  std::vector<float> x = random_x(n, in, 1.0f, rng);
  x[static_cast<size_t>(3 * in + 250)] = std::numeric_limits<float>::quiet_NaN();
  x[static_cast<size_t>(5 * in + 7)] = std::numeric_limits<float>::infinity();
  std::vector<float> y(static_cast<size_t>(n * out));
  std::vector<float> want(y.size());
  qmatmul(isa(), PrefillGemm::Int8, x.data(), n, w, y.data());
  qmatmul_q8_ref(x.data(), n, w, want.data());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      const auto at = static_cast<size_t>(i * out + o);
      const bool nan_row = i == 3 || i == 5;
      EXPECT_EQ(std::isnan(y[at]), nan_row) << "y[" << i << ", " << o << "] = " << y[at];
      EXPECT_EQ(std::isnan(want[at]), nan_row) << "reference y[" << i << ", " << o << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(IsasAndThreads, QmatmulQ8KernelTest, kIsasAndThreads, isa_threads_name);

// ---- the int8 GEMV (WKVQ_DECODE_GEMV=int8: n <= the dot kernels' limit of 64) ----

// The GEMV for n rows against the reference (the kernel bound above: it evaluates the GEMM's
// operations) and, bit for bit, against the int8 GEMM on the same rows (x padded with rows to
// 65 so that the GEMM runs: each output depends on its own row of x only). Equality is what lets
// teacher-forced evaluation through the GEMM stand for token-by-token decode through the GEMV.
// Where both run, the AVX2 GEMV's result equals the AVX512_VNNI one's, bit for bit.
void check_gemv(Isa isa, int64_t n, int64_t in, int64_t out, int64_t group, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << isa_name(isa) << " n=" << n << " in=" << in << " out=" << out << " g=" << group
               << " seed=" << seed << " (rerun: WKVQ_TEST_SEED)");
  std::mt19937 rng(seed);
  const QuantizedMatrix w = random_matrix(out, in, group, rng);
  const int64_t padded = 65;
  const std::vector<float> x = random_x(padded, in, 1.0f, rng);
  const std::vector<float> y = gemv_product(isa, x, n, w);
  std::vector<float> gemm(static_cast<size_t>(padded * out));
  qmatmul(gemv_table(isa), x.data(), padded, w, gemm.data());
  expect_within_kernel_bound(w, x.data(), n, y.data(), gemm.data());
  expect_avx2_gives_the_same(isa, x, n, w, y);
}

// n = 1 (decode) to 64, passes of 4, 2 and 1 rows of x; W tiles of 16 rows whole and partial;
// rows of whole and partial 64-byte blocks (in % 128 = 0, 32, 64, 96), steps of 16, 8 and 4
// blocks whole and partial; groups of 128 and 256 and one per row.
TEST_P(QmatmulQ8KernelTest, GemvMatchesReferenceAndTheGemm) {
  const ThreadCount tc(threads());
  uint32_t seed = base_seed() + 1000u;
  for (const int64_t group : {0, 128, 256}) {
    for (const int64_t n : {1, 2, 3, 4, 7}) {
      for (const int64_t in : {32, 100, 256, 300, 1000, 2048, 2400}) {
        for (const int64_t out : {1, 17, 48}) check_gemv(isa(), n, in, out, group, ++seed);
      }
    }
    check_gemv(isa(), gemv_max_rows(isa()), 640, 100, group, ++seed);
    check_gemv(isa(), 13, 5632, 40, group, ++seed);
  }
}

// A NaN or an infinity in a row of x makes that row of y NaN, as in the reference.
TEST_P(QmatmulQ8KernelTest, GemvNonFiniteActivationsGiveNaN) {
  const ThreadCount tc(threads());
  std::mt19937 rng(base_seed() + 321u);
  const int64_t n = 7;
  const int64_t in = 300;
  const int64_t out = 40;
  const QuantizedMatrix w = random_matrix(out, in, 128, rng);
  std::vector<float> x = random_x(n, in, 1.0f, rng);
  x[static_cast<size_t>(3 * in + 250)] = std::numeric_limits<float>::quiet_NaN();
  x[static_cast<size_t>(5 * in + 7)] = -std::numeric_limits<float>::infinity();
  std::vector<float> y(static_cast<size_t>(n * out));
  qmatmul(gemv_table(isa()), x.data(), n, w, y.data());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      const float v = y[static_cast<size_t>(i * out + o)];
      EXPECT_EQ(std::isnan(v), i == 3 || i == 5) << "y[" << i << ", " << o << "] = " << v;
    }
  }
}

// qmatmul_many quantizes x once for every matrix: the 8-bit one runs the 8-bit GEMV on the same
// codes, and the one the GEMV does not take (groups of 64) the f32 kernels, in the same call. Each
// output equals its own qmatmul call.
TEST_P(QmatmulQ8KernelTest, GemvInQmatmulManyEqualsSingleCalls) {
  const ThreadCount tc(threads());
  std::mt19937 rng(base_seed() + 77u);
  const int64_t in = 512;
  const int64_t n = 3;
  std::vector<float> wf(static_cast<size_t>(40 * in));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (float& v : wf) v = normal(rng);
  const QuantizedMatrix a = random_matrix(64, in, 128, rng);
  const QuantizedMatrix b = quantize_weights_ref(wf.data(), 40, in, 8, 128);
  const QuantizedMatrix c = quantize_weights_ref(wf.data(), 40, in, 4, 64);
  const QuantizedMatrix d = random_matrix(33, in, 0, rng);
  const std::vector<float> x = random_x(n, in, 1.0f, rng);
  const QuantizedMatrix* ws[] = {&a, &b, &c, &d};
  std::vector<std::vector<float>> ys;
  std::vector<float*> yp;
  for (const QuantizedMatrix* w : ws) ys.emplace_back(static_cast<size_t>(n * w->rows));
  for (auto& y : ys) yp.push_back(y.data());
  qmatmul_many(gemv_table(isa()), x.data(), n, ws, yp);
  for (size_t k = 0; k < 4; ++k) {
    std::vector<float> one(ys[k].size());
    qmatmul(gemv_table(isa()), x.data(), n, *ws[k], one.data());
    EXPECT_EQ(ys[k], one) << "matrix " << k;
    std::vector<float> f32(ys[k].size());
    qmatmul(isa(), x.data(), n, *ws[k], f32.data());
    EXPECT_EQ(ys[k] == f32, k == 2) << "matrix " << k << ": int8 GEMV iff it applies";
  }
}

// The quantizer's definition: d = max|x| / 127, |xq| <= 127 with +-127 at the maximum, zero
// codes past the row's end and for an all-zero block, dsum = d * sum(xq).
TEST(QmatmulQ8Reference, QuantizerFollowsItsDefinition) {
  std::mt19937 rng(base_seed() + 5u);
  const int64_t n = 3;
  const int64_t in = 300;  // blocks of 128, 128, 44; stride 320
  const std::vector<float> x = random_x(n, in, 2.0f, rng);
  Q8Activations a;
  quantize_activations_q8_ref(x.data(), n, in, a);
  ASSERT_EQ(a.stride, 320);
  ASSERT_EQ(a.blocks, 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < a.blocks; ++b) {
      const int64_t c0 = b * kQ8BlockCols;
      const int64_t c1 = std::min(in, c0 + kQ8BlockCols);
      float amax = 0.0f;
      int64_t sum = 0;
      int peak = 0;
      for (int64_t c = c0; c < c1; ++c) {
        amax = std::max(amax, std::fabs(x[static_cast<size_t>(i * in + c)]));
        const int q = a.q[static_cast<size_t>(i * a.stride + c)];
        EXPECT_LE(std::abs(q), 127);
        peak = std::max(peak, std::abs(q));
        sum += q;
      }
      const auto at = static_cast<size_t>(i * a.blocks + b);
      EXPECT_EQ(a.d[at], amax / 127.0f);
      EXPECT_EQ(peak, amax > 0.0f ? 127 : 0);
      EXPECT_EQ(a.dsum[at], a.d[at] * static_cast<float>(sum));
    }
    for (int64_t c = in; c < a.stride; ++c)
      EXPECT_EQ(a.q[static_cast<size_t>(i * a.stride + c)], 0);
  }
}

// The reference is the f32 product of the dequantized activations: within the quantization
// error bound above of the f32 definition, for 4- and 8-bit weights.
TEST(QmatmulQ8Reference, WithinTheQuantizationErrorOfTheF32Product) {
  std::mt19937 rng(base_seed() + 7u);
  const int64_t n = 5;
  for (const auto& [group, bits] :
       {std::pair<int64_t, int>{0, 4}, {128, 4}, {256, 4}, {0, 8}, {128, 8}, {256, 8}}) {
    const int64_t in = 520;
    const int64_t out = 9;
    const QuantizedMatrix w = random_matrix(out, in, group, rng, bits);
    const std::vector<float> x = random_x(n, in, 1.0f, rng);
    std::vector<float> y(static_cast<size_t>(n * out));
    qmatmul_q8_ref(x.data(), n, w, y.data());
    Q8Activations a;
    quantize_activations_q8_ref(x.data(), n, in, a);
    std::vector<float> wh(static_cast<size_t>(in));
    std::vector<uint8_t> codes(static_cast<size_t>(in));
    for (int64_t o = 0; o < out; ++o) {
      dequantize_row_ref(w, o, wh.data());
      unpack_row_codes_ref(w.row_codes(o), in, bits, codes.data());
      for (int64_t i = 0; i < n; ++i) {
        double exact = 0.0;
        double quant = 0.0;
        double abs_terms = 0.0;
        for (int64_t k = 0; k < in; ++k) {
          const double wk = wh[static_cast<size_t>(k)];
          const double xk = x[static_cast<size_t>(i * in + k)];
          exact += xk * wk;
          abs_terms += std::fabs(xk * wk);
          quant += a.d[static_cast<size_t>(i * a.blocks + k / kQ8BlockCols)] * (0.5 + kQuantSlack) *
                   std::fabs(wk);
        }
        const double rounding = kGammaMargin * static_cast<double>(2 * a.blocks + 1) * kEps *
                                    rounding_terms(w, a, codes, i, o) +
                                kGammaMargin * static_cast<double>(in) * kEps * abs_terms;
        const double got = y[static_cast<size_t>(i * out + o)];
        EXPECT_LE(std::fabs(got - exact), quant + rounding)
            << "g=" << group << " bits=" << bits << " y[" << i << ", " << o << "]";
      }
    }
  }
}

TEST(QmatmulQ8Reference, RejectsLayoutsItDoesNotTake) {
  EXPECT_FALSE(qmatmul_q8_applies(make_quantized_matrix(2, 256, 4, 64)));
  EXPECT_FALSE(qmatmul_q8_applies(make_quantized_matrix(2, 256, 8, 64)));
  EXPECT_FALSE(qmatmul_q8_applies(make_quantized_matrix(2, 256, 2, 128)));
  EXPECT_TRUE(qmatmul_q8_applies(make_quantized_matrix(2, 256, 8, 128)));
  EXPECT_TRUE(qmatmul_q8_applies(make_quantized_matrix(2, 256, 4, 128)));
  EXPECT_TRUE(qmatmul_q8_applies(make_quantized_matrix(2, 100, 4, 0)));
  const QuantizedMatrix w = make_quantized_matrix(2, 256, 4, 64);
  std::vector<float> x(256, 1.0f);
  std::vector<float> y(2);
  EXPECT_THROW(qmatmul_q8_ref(x.data(), 1, w, y.data()), Error);
}

}  // namespace
}  // namespace wkvq
