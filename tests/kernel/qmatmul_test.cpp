// Every quantized matmul implementation (kernels/qmatmul.h) against the definition: W^ from
// dequantize_weights_ref, then a plain f32 double loop. Odd sizes, every group layout the kernels
// take (g = 0, 32, 64, 128) plus one they do not (g = 48: reference fallback), bits 4 and 8,
// misaligned x / y, 1 and 2 threads. Inputs are seeded; set WKVQ_TEST_SEED to replay another seed.
#include "kernels/qmatmul.h"

#include <gtest/gtest.h>
#include <xmmintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "formats/weight_quant.h"
#include "kernels/kernel_table.h"
#include "test_support.h"

namespace wkvq {
namespace {

// Error bound. Every implementation forms each W^ element exactly ((q - z) s is exact in f32),
// or (AVX2 GEMV) x_j (q_j - z) exactly inside an FMA with s applied once per group, so y differs
// from the exact sum_j x_j w^_j only by the rounding of the products and additions. With d_j
// roundings on term j's path, |y - exact| <= sum_j gamma(d_j) |x_j w^_j|, gamma(d) =
// d u / (1 - d u), u = eps / 2 (Higham, 2nd ed., §3.1, §4.2), and d_j <= in for the reference
// (sequential), the dot kernels (FMA lanes, then a log2 tree: ceil(in / L) + log2 L; with
// per-group scaling ceil(g / L) + n_groups + log2 L; both <= in for in >= 32; the table GEMV's
// 4 x 16 lane chains: in / 64 + 2 + log2 16 <= in) and the packed
// kernels (one FMA chain per output). Both sides within gamma(in) sum |t_j| of the exact
// value: |y - y_ref| <= 2 gamma(in) sum_j |x_j w^_j| ~= in * eps * sum_j |x_j w^_j|.
// kReorderBound is the factor on that: 1 / (1 - in u) < 1.0001 for in <= 1024, plus margin for the
// double-precision evaluation of sum |t_j|.
// The scaled 4-bit GEMVs (AVX2, AVX-512; n = 1) form q_j x_j exactly and subtracts the zero point
// once per group (s sum_j q_j x_j - z s sum_j x_j): its rounded terms are |x_j| s q_j and |x_j| s
// z, so for 4-bit GEMV cases sum |t_j| is taken as sum_j |x_j| s (q_j + z) (>= sum_j |x_j w^_j|;
// the same gamma(in) argument, the reference's own error included; the other forms' terms are
// smaller).
constexpr double kReorderBound = 1.01;

double tolerance(int64_t in, double sum_abs_terms) {
  return kReorderBound * static_cast<double>(in) * std::numeric_limits<float>::epsilon() *
         sum_abs_terms;
}

// |t_j| of the bound above for weight (o, k) times x_k.
double term_bound(const QuantizedMatrix& w, int64_t o, int64_t k, float xk, float wk, int64_t n) {
  if (w.bits != 4 || n != 1) return std::fabs(static_cast<double>(xk) * wk);
  const int64_t g = o * w.n_groups + k / w.group;
  return std::fabs(static_cast<double>(xk)) * fp16_to_f32(w.scales[static_cast<size_t>(g)]) *
         (weight_code(w, o, k) + w.zeros[static_cast<size_t>(g)]);
}

uint32_t base_seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return 20240611u;
}

// `count` floats starting `offset` floats past a 64-byte boundary, uniform(-1, 1).
struct Buffer {
  std::vector<float> storage;
  float* data = nullptr;
  Buffer(int64_t count, int64_t offset, std::mt19937& rng) {
    storage.resize(static_cast<size_t>(count + offset + 16));
    const auto addr = reinterpret_cast<uintptr_t>(storage.data());
    data = storage.data() + ((64 - addr % 64) % 64) / sizeof(float) + offset;
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < count; ++i) data[i] = dist(rng);
  }
};

using test::ThreadCount;

// Weights like a linear layer's, with a few outliers so groups differ in scale and zero point.
QuantizedMatrix random_matrix(int64_t out, int64_t in, int bits, int64_t group, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(out * in));
  for (float& v : w) v = uni(rng) < 0.01f ? 10.0f * normal(rng) : normal(rng);
  return quantize_weights_ref(w.data(), out, in, bits, group);
}

// x uniform(-x_scale, x_scale), through the kernels of `t`.
void check_case(const KernelTable& t, int64_t n, int64_t in, int64_t out, int bits, int64_t group,
                int64_t misalign, uint32_t seed, float x_scale = 1.0f) {
  SCOPED_TRACE(::testing::Message()
               << "isa=" << isa_name(t.isa) << " gemv=" << gemv_form_name(t.int4_gemv.form)
               << " n=" << n << " in=" << in << " out=" << out << " bits=" << bits << " g=" << group
               << " misalign=" << misalign << " x_scale=" << x_scale << " seed=" << seed
               << " (rerun: WKVQ_TEST_SEED)");
  std::mt19937 rng(seed);
  const QuantizedMatrix w = random_matrix(out, in, bits, group, rng);
  std::vector<float> wh(static_cast<size_t>(out * in));
  dequantize_weights_ref(w, wh.data());
  Buffer x(n * in, misalign, rng);
  for (int64_t k = 0; k < n * in; ++k) x.data[k] *= x_scale;
  Buffer y(n * out + 1, misalign, rng);  // random garbage: kernels must not read y as input
  const float guard = y.data[n * out];
  qmatmul(t, x.data, n, w, y.data);
  EXPECT_EQ(y.data[n * out], guard) << "wrote past y";
  int reported = 0;
  for (int64_t i = 0; i < n && reported < 5; ++i) {
    for (int64_t o = 0; o < out && reported < 5; ++o) {
      float want = 0.0f;  // the definition: plain f32 loop over the dequantized row
      double sum_abs = 0.0;
      for (int64_t k = 0; k < in; ++k) {
        const float xk = x.data[i * in + k];
        want += xk * wh[static_cast<size_t>(o * in + k)];
        sum_abs += term_bound(w, o, k, xk, wh[static_cast<size_t>(o * in + k)], n);
      }
      const double got = y.data[i * out + o];
      const double tol = tolerance(in, sum_abs);
      if (!(std::fabs(got - want) <= tol)) {
        ADD_FAILURE() << "y[" << i << ", " << o << "] = " << got << ", reference " << want
                      << ", |diff| " << std::fabs(got - want) << " > tolerance " << tol;
        ++reported;
      }
    }
  }
}

// An ISA and the form of its 4-bit GEMV (AVX2: dot, scaled; AVX-512: dot, scaled, table): every
// form is tested on every CPU that runs the ISA, whichever the process would pick (the scaled one
// is slow, not wrong, where denormal operands are slow).
struct Kernels {
  Isa isa;
  GemvForm form;
};
void PrintTo(const Kernels& k, std::ostream* os) {
  *os << isa_name(k.isa) << " gemv " << gemv_form_name(k.form);
}
// (kernels, threads)
using Params = std::tuple<Kernels, int>;

class QmatmulTest : public ::testing::TestWithParam<Params> {
 protected:
  void SetUp() override {
    if (!isa_supported(isa())) GTEST_SKIP() << isa_name(isa()) << " not supported by this CPU";
  }
  Isa isa() const { return std::get<0>(GetParam()).isa; }
  KernelTable table() const { return with_gemv(kernel_table(isa()), std::get<0>(GetParam()).form); }
  int threads() const { return std::get<1>(GetParam()); }
};

TEST_P(QmatmulTest, MatchesReferenceOverOddSizes) {
  const ThreadCount tc(threads());
  uint32_t case_index = 0;
  for (const int bits : {4, 8}) {
    for (const int64_t group : {0, 32, 64, 128}) {
      for (const int64_t n : {1, 2, 3, 7, 33}) {
        for (const int64_t in : {32, 64, 96, 128, 200, 256, 512, 1000}) {
          for (const int64_t out : {1, 5, 17, 64}) {
            check_case(table(), n, in, out, bits, group, case_index % 2,
                       base_seed() + 7919u * case_index);
            ++case_index;
          }
        }
      }
    }
  }
}

// W larger than one packed block (and one dot-kernel row block) in both directions, x rows over
// several register tiles, in not a multiple of 32, and n on both sides of the dot / packed limit.
TEST_P(QmatmulTest, MatchesReferenceOverManyBlocks) {
  const ThreadCount tc(threads());
  for (const int bits : {4, 8}) {
    check_case(table(), 29, 600, 530, bits, 128, 1, base_seed() + 1u);
    check_case(table(), 1, 600, 530, bits, 64, 0, base_seed() + 2u);
    check_case(table(), 4, 1000, 70, bits, 0, 1, base_seed() + 3u);
    // Rows of more than 16 groups (the GEMV converts scales 16 groups at a time) and as long as
    // TinyLlama's down projection.
    check_case(table(), 1, 2560, 37, bits, 128, 0, base_seed() + 9u);
    check_case(table(), 1, 5632, 21, bits, 256, 1, base_seed() + 10u);
    // Above every ISA's dot-kernel row limit: the packed kernels, with a partial register tile.
    check_case(table(), 77, 300, 200, bits, 64, 1, base_seed() + 8u);
  }
}

// Matrices no SIMD kernel takes (group not a multiple of 32, 2 and 3 bits) run the reference.
TEST_P(QmatmulTest, OtherLayoutsFallBackToTheReference) {
  const ThreadCount tc(threads());
  EXPECT_FALSE(qmatmul_has_simd(isa(), make_quantized_matrix(1, 96, 4, 48)));
  EXPECT_EQ(qmatmul_has_simd(isa(), make_quantized_matrix(1, 96, 4, 32)), isa() != Isa::Reference);
  check_case(table(), 3, 96, 9, 4, 48, 1, base_seed() + 4u);
  check_case(table(), 5, 100, 9, 2, 32, 0, base_seed() + 5u);
  check_case(table(), 1, 100, 9, 3, 0, 0, base_seed() + 6u);
}

// The scaled 4-bit GEMVs scale x by powers of two chosen from max|x| (2^-64 <= max|x| < 2^64;
// outside that, and for x = 0, the dot kernel): both sides of each limit, and far beyond (short of
// denormal x, where the error model above, which assumes no underflow, does not hold).
TEST_P(QmatmulTest, GemvOverEveryInputMagnitude) {
  const ThreadCount tc(threads());
  uint32_t seed = base_seed() + 11u;
  for (const float scale : {0.0f, 0x1p-100f, 0x1p-64f, 0x1p-63f, 0x1p-20f, 1.0f, 0x1p40f, 0x1p63f,
                            0x1p64f, 0x1p100f, 0x1p122f}) {
    check_case(table(), 1, 256, 37, 4, 128, 0, ++seed, scale);
    check_case(table(), 1, 384, 19, 4, 0, 1, ++seed, scale);
  }
}

// A NaN or an Inf in x reaches the outputs as in the reference.
TEST_P(QmatmulTest, GemvPropagatesNanAndInf) {
  const ThreadCount tc(threads());
  std::mt19937 rng(base_seed() + 12u);
  const int64_t in = 256;
  const int64_t out = 24;
  const QuantizedMatrix w = random_matrix(out, in, 4, 128, rng);
  std::vector<float> wh(static_cast<size_t>(out * in));
  dequantize_weights_ref(w, wh.data());
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    Buffer x(in, 0, rng);
    x.data[77] = bad;
    std::vector<float> y(static_cast<size_t>(out));
    qmatmul(table(), x.data, 1, w, y.data());
    for (int64_t o = 0; o < out; ++o) {
      float want = 0.0f;
      for (int64_t k = 0; k < in; ++k) want += x.data[k] * wh[static_cast<size_t>(o * in + k)];
      const float got = y[static_cast<size_t>(o)];
      EXPECT_EQ(std::isnan(got), std::isnan(want)) << "x[77]=" << bad << " o=" << o << " " << got;
      if (std::isinf(want)) {
        EXPECT_EQ(got, want) << "x[77]=" << bad << " o=" << o;
      }
    }
  }
}

// With denormals-are-zero set (some programs do), the GEMV must not read its denormal-coded
// weights as 0: it falls back. MXCSR is per thread, so this runs on the calling thread alone.
TEST_P(QmatmulTest, GemvIsExactUnderDenormalsAreZero) {
  const ThreadCount tc(1);
  constexpr unsigned kDaz = 1u << 6;
  const unsigned saved = _mm_getcsr();
  _mm_setcsr(saved | kDaz);
  check_case(table(), 1, 512, 40, 4, 128, 0, base_seed() + 13u);
  check_case(table(), 1, 256, 9, 4, 0, 1, base_seed() + 14u);
  _mm_setcsr(saved);
}

// The order of every sum is fixed by the kernel, not by how the work is split over threads.
TEST_P(QmatmulTest, ResultDoesNotDependOnThreadCount) {
  std::mt19937 rng(base_seed() + 7u);
  for (const int64_t n : {1, 3, 40}) {
    const QuantizedMatrix w = random_matrix(700, 320, 4, 64, rng);
    Buffer x(n * 320, 0, rng);
    Buffer y1(n * 700, 0, rng);
    Buffer y2(n * 700, 0, rng);
    {
      const ThreadCount tc(1);
      qmatmul(table(), x.data, n, w, y1.data);
    }
    {
      const ThreadCount tc(threads());
      qmatmul(table(), x.data, n, w, y2.data);
    }
    for (int64_t j = 0; j < n * 700; ++j)
      ASSERT_EQ(y1.data[j], y2.data[j]) << "n=" << n << " " << j;
  }
}

// qmatmul_many (one parallel loop over several matrices) gives each matrix exactly what qmatmul
// gives it alone (itself checked against the reference above): same kernels, same sums. Matrices
// of different rows, bits and groups (one a reference-only layout), more of them than one loop
// takes (8), on 1, 2 and 3 threads.
TEST_P(QmatmulTest, ManyMatricesEqualOneAtATime) {
  std::mt19937 rng(base_seed() + 15u);
  const int64_t in = 256;
  struct Shape {
    int64_t out;
    int bits;
    int64_t group;
  };
  const std::vector<Shape> shapes = {{96, 4, 128}, {17, 4, 64}, {40, 8, 0},   {9, 4, 0},
                                     {64, 4, 32},  {5, 3, 32},  {33, 8, 128}, {8, 4, 128},
                                     {70, 4, 64},  {1, 4, 128}};
  std::vector<QuantizedMatrix> ws;
  for (const Shape& sh : shapes) ws.push_back(random_matrix(sh.out, in, sh.bits, sh.group, rng));
  for (const int threads : {1, threads() + 1}) {
    const ThreadCount tc(threads);
    for (const int64_t n : {1, 3, 40, 77}) {
      SCOPED_TRACE(::testing::Message() << "threads=" << threads << " n=" << n);
      Buffer x(n * in, 0, rng);
      std::vector<const QuantizedMatrix*> wp;
      std::vector<std::vector<float>> got, want;
      std::vector<float*> yp;
      for (const QuantizedMatrix& w : ws) {
        wp.push_back(&w);
        got.emplace_back(static_cast<size_t>(n * w.rows), -7.0f);
        want.emplace_back(static_cast<size_t>(n * w.rows));
        qmatmul(table(), x.data, n, w, want.back().data());
      }
      for (std::vector<float>& g : got) yp.push_back(g.data());
      qmatmul_many(table(), x.data, n, wp, yp);
      for (size_t k = 0; k < ws.size(); ++k) EXPECT_EQ(got[k], want[k]) << "matrix " << k;
    }
  }
}

std::string param_name(const ::testing::TestParamInfo<Params>& info) {
  const Kernels k = std::get<0>(info.param);
  return std::string(isa_name(k.isa)) + (k.form == GemvForm::Dot ? "" : "_") +
         (k.form == GemvForm::Dot ? "" : gemv_form_name(k.form)) + "_threads" +
         std::to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(
    AllIsas, QmatmulTest,
    ::testing::Combine(::testing::Values(Kernels{Isa::Reference, GemvForm::Dot},
                                         Kernels{Isa::Avx2, GemvForm::Dot},
                                         Kernels{Isa::Avx2, GemvForm::Scaled},
                                         Kernels{Isa::Avx512, GemvForm::Dot},
                                         Kernels{Isa::Avx512, GemvForm::Scaled},
                                         Kernels{Isa::Avx512, GemvForm::Table}),
                       ::testing::Values(1, 2)),
    param_name);

TEST(QmatmulApi, EmptyProductsAndBadArguments) {
  const QuantizedMatrix w = make_quantized_matrix(0, 8, 4, 0);
  qmatmul(nullptr, 3, w, nullptr);  // no rows of W: nothing to do
  const QuantizedMatrix w2 = make_quantized_matrix(2, 8, 4, 0);
  qmatmul(nullptr, 0, w2, nullptr);
  EXPECT_THROW(qmatmul(nullptr, -1, w2, nullptr), Error);
  std::vector<float> y(2);
  EXPECT_THROW(qmatmul(nullptr, 1, w2, y.data()), Error);
  // qmatmul_many: one output per matrix, and every matrix the same columns.
  const QuantizedMatrix w3 = make_quantized_matrix(2, 16, 4, 0);
  std::vector<float> x(16), y2(2), y3(2);
  const QuantizedMatrix* ws[] = {&w2, &w3};
  float* ys[] = {y2.data(), y3.data()};
  EXPECT_THROW(qmatmul_many(x.data(), 1, ws, std::span<float* const>(ys, 1)), Error);
  EXPECT_THROW(qmatmul_many(x.data(), 1, ws, ys), Error);
}

}  // namespace
}  // namespace wkvq
