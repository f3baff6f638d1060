// Every f32 matmul implementation against the reference, over odd sizes, misaligned pointers and
// 1 or 2 threads. Inputs are seeded; set WKVQ_TEST_SEED to replay another seed.
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "test_support.h"

namespace wkvq {
namespace {

// Error bound. Each output is a sum of `in` products t_j = x_j * w_j that every implementation
// forms as a tree of float additions. If term j passes through d_j roundings on its way to the
// result (one for the product unless it is fused, one per addition of two non-zero operands
// above it), the computed sum differs from the exact one by at most sum_j gamma(d_j) |t_j|,
// gamma(d) = d u / (1 - d u), u = eps / 2 (Higham, "Accuracy and Stability of Numerical
// Algorithms", 2nd ed., §3.1 and §4.2).
//  - reference: sequential sum, product rounded: d_j <= in;
//  - dot kernels: FMA (exact product) into one of L lanes (L = 8 or 16, masked tail lanes add
//    exact zeros), then a pairwise reduction over the lanes:
//    d_j <= ceil(in / L) + ceil(log2(min(L, in))) <= in for every in >= 1;
//  - packed kernels: one FMA chain per output in index order: d_j <= in.
// So |y - y_ref| <= 2 gamma(in) sum_j |t_j| ~= in * eps * sum_j |t_j| for every input: a worst-case
// bound, no probabilistic sqrt(in) argument. kReorderBound is the factor on in * eps * sum |t_j|:
// 1 / (1 - in u) < 1.0001 for in <= 1024, and the rest is margin for the double-precision
// computation of sum |t_j| (relative error ~1e-13).
constexpr double kReorderBound = 1.01;

double tolerance(int64_t in, double sum_abs_terms) {
  return kReorderBound * static_cast<double>(in) * std::numeric_limits<float>::epsilon() *
         sum_abs_terms;
}

uint32_t base_seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return 20240611u;
}

// A buffer of `count` uniform(-1, 1) floats starting `offset` floats past a 64-byte boundary and
// ending exactly at the end of its allocation (so that AddressSanitizer sees any over-read).
struct Buffer {
  static constexpr std::align_val_t kAlign{64};
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, kAlign); }
  };
  std::unique_ptr<float[], Free> storage;
  float* data = nullptr;
  Buffer(int64_t count, int64_t offset, std::mt19937& rng)
      : storage(static_cast<float*>(
            ::operator new[](static_cast<size_t>(count + offset) * sizeof(float), kAlign))),
        data(storage.get() + offset) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < count; ++i) data[i] = dist(rng);
  }
};

// Sets the OpenMP thread count for one test and restores it afterwards.
using test::ThreadCount;

// Compares matmul_f32(isa) with the reference at one size, element by element (reports at most
// 5 mismatching elements per size).
void check_size(Isa isa, int64_t n, int64_t in, int64_t out, int64_t misalign, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << "isa=" << isa_name(isa) << " n=" << n << " in=" << in << " out=" << out
               << " misalign=" << misalign << " seed=" << seed << " (rerun: WKVQ_TEST_SEED)");
  std::mt19937 rng(seed);
  Buffer x(n * in, misalign, rng);
  Buffer w(out * in, misalign, rng);
  Buffer y(n * out, misalign, rng);  // random garbage: kernels must not read y as input
  Buffer y_ref(n * out, 0, rng);
  matmul_f32(Isa::Reference, x.data, n, in, w.data, out, y_ref.data);
  matmul_f32(isa, x.data, n, in, w.data, out, y.data);
  int reported = 0;
  for (int64_t i = 0; i < n && reported < 5; ++i) {
    for (int64_t o = 0; o < out && reported < 5; ++o) {
      double sum_abs = 0.0;
      for (int64_t k = 0; k < in; ++k) {
        sum_abs += std::fabs(static_cast<double>(x.data[i * in + k]) * w.data[o * in + k]);
      }
      const double got = y.data[i * out + o];
      const double want = y_ref.data[i * out + o];
      const double tol = tolerance(in, sum_abs);
      if (!(std::fabs(got - want) <= tol)) {
        ADD_FAILURE() << "y[" << i << ", " << o << "] = " << got << ", reference " << want
                      << ", |diff| " << std::fabs(got - want) << " > tolerance " << tol;
        ++reported;
      }
    }
  }
}

// matmul_f16 at one size: against its reference, and that reference against the f32 reference on
// the converted W (the definition: bit for bit).
void check_size_f16(Isa isa, int64_t n, int64_t in, int64_t out, int64_t misalign, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << "fp16 W, isa=" << isa_name(isa) << " n=" << n << " in=" << in << " out=" << out
               << " misalign=" << misalign << " seed=" << seed << " (rerun: WKVQ_TEST_SEED)");
  std::mt19937 rng(seed);
  Buffer x(n * in, misalign, rng);
  Buffer wf(out * in, 0, rng);
  std::vector<uint16_t> storage(static_cast<size_t>(out * in + misalign));
  uint16_t* w16 = storage.data() + misalign;
  for (int64_t j = 0; j < out * in; ++j) {
    w16[j] = f32_to_fp16(wf.data[j]);
    wf.data[j] = fp16_to_f32(w16[j]);
  }
  Buffer y(n * out, misalign, rng);
  Buffer y_ref(n * out, 0, rng);
  Buffer y_f32(n * out, 0, rng);
  matmul_f16(Isa::Reference, x.data, n, in, w16, out, y_ref.data);
  matmul_f32(Isa::Reference, x.data, n, in, wf.data, out, y_f32.data);
  matmul_f16(isa, x.data, n, in, w16, out, y.data);
  int reported = 0;
  for (int64_t j = 0; j < n * out && reported < 5; ++j) {
    const int64_t i = j / out;
    const int64_t o = j % out;
    ASSERT_EQ(y_ref.data[j], y_f32.data[j]) << "reference f16 vs f32 at " << j;
    double sum_abs = 0.0;
    for (int64_t k = 0; k < in; ++k) {
      sum_abs += std::fabs(static_cast<double>(x.data[i * in + k]) * wf.data[o * in + k]);
    }
    const double tol = tolerance(in, sum_abs);
    if (!(std::fabs(y.data[j] - y_ref.data[j]) <= tol)) {
      ADD_FAILURE() << "y[" << i << ", " << o << "] = " << y.data[j] << ", reference "
                    << y_ref.data[j] << " > tolerance " << tol;
      ++reported;
    }
  }
}

// (isa, threads, pointers misaligned by one float)
using Params = std::tuple<Isa, int, bool>;

class MatmulTest : public ::testing::TestWithParam<Params> {
 protected:
  void SetUp() override {
    if (!isa_supported(isa())) GTEST_SKIP() << isa_name(isa()) << " not supported by this CPU";
  }
  Isa isa() const { return std::get<0>(GetParam()); }
  int threads() const { return std::get<1>(GetParam()); }
  int64_t misalign() const { return std::get<2>(GetParam()) ? 1 : 0; }
};

TEST_P(MatmulTest, MatchesReferenceOverOddSizes) {
  const ThreadCount tc(threads());
  const uint32_t seed = base_seed();
  uint32_t case_index = 0;
  for (const int64_t n : {1, 2, 3, 5, 17, 64, 129}) {
    for (const int64_t in : {1, 7, 8, 15, 16, 33, 100, 257, 1024}) {
      for (const int64_t out : {1, 3, 17, 64, 130}) {
        check_size(isa(), n, in, out, misalign(), seed + 7919u * case_index++);
      }
    }
  }
}

// W in fp16: every kernel converts it on load (dot) or while packing (packed), with the f32
// kernels' tolerance (the conversion is exact).
TEST_P(MatmulTest, Fp16WeightsMatchReference) {
  const ThreadCount tc(threads());
  uint32_t case_index = 0;
  for (const int64_t n : {1, 2, 5, 17, 129}) {
    for (const int64_t in : {1, 7, 16, 33, 257, 1024}) {
      for (const int64_t out : {1, 17, 130}) {
        check_size_f16(isa(), n, in, out, misalign(), base_seed() + 104729u * ++case_index);
      }
    }
  }
  check_size_f16(isa(), 13, 600, 1100, misalign(), base_seed() + 3u);
}

// More rows of W than one packed block holds, and `in` over several packed column blocks.
TEST_P(MatmulTest, MatchesReferenceOverManyBlocks) {
  const ThreadCount tc(threads());
  check_size(isa(), 13, 600, 1100, misalign(), base_seed() + 1u);
  check_size(isa(), 1, 600, 1100, misalign(), base_seed() + 2u);
}

// The order of every sum is fixed by the kernel, not by how the work is split over threads.
TEST_P(MatmulTest, ResultDoesNotDependOnThreadCount) {
  std::mt19937 rng(base_seed());
  for (const int64_t n : {1, 3, 40}) {
    const int64_t in = 300;
    const int64_t out = 700;
    Buffer x(n * in, misalign(), rng);
    Buffer w(out * in, misalign(), rng);
    Buffer y1(n * out, misalign(), rng);
    Buffer y2(n * out, misalign(), rng);
    {
      const ThreadCount tc(1);
      matmul_f32(isa(), x.data, n, in, w.data, out, y1.data);
    }
    {
      const ThreadCount tc(threads());
      matmul_f32(isa(), x.data, n, in, w.data, out, y2.data);
    }
    for (int64_t j = 0; j < n * out; ++j) {
      ASSERT_EQ(y1.data[j], y2.data[j]) << "n=" << n << " element " << j;
    }
  }
}

TEST_P(MatmulTest, EmptySumsAreZero) {
  std::vector<float> y(6, 1.0f);
  matmul_f32(isa(), nullptr, 2, 0, nullptr, 3, y.data());
  for (const float v : y) EXPECT_EQ(v, 0.0f);
  matmul_f32(isa(), nullptr, 0, 5, nullptr, 3, nullptr);  // nothing to do
}

std::string param_name(const ::testing::TestParamInfo<Params>& info) {
  return std::string(isa_name(std::get<0>(info.param))) + "_threads" +
         std::to_string(std::get<1>(info.param)) +
         (std::get<2>(info.param) ? "_misaligned" : "_aligned");
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MatmulTest,
                         ::testing::Combine(::testing::Values(Isa::Reference, Isa::Avx2,
                                                              Isa::Avx512),
                                            ::testing::Values(1, 2), ::testing::Bool()),
                         param_name);

TEST(MatmulIsa, NamesRoundTrip) {
  for (const Isa isa : {Isa::Reference, Isa::Avx2, Isa::Avx512}) {
    EXPECT_EQ(parse_isa(isa_name(isa)), isa);
  }
  EXPECT_THROW(parse_isa("sse2"), Error);
  EXPECT_THROW(parse_isa(""), Error);
}

TEST(MatmulIsa, BestIsSupportedAndDefaultDispatchUsesIt) {
  const Isa best = best_isa();
  EXPECT_TRUE(isa_supported(best));
  EXPECT_TRUE(isa_supported(Isa::Reference));
  std::mt19937 rng(base_seed());
  Buffer x(5 * 70, 0, rng);
  Buffer w(33 * 70, 0, rng);
  Buffer y1(5 * 33, 0, rng);
  Buffer y2(5 * 33, 0, rng);
  matmul_f32(x.data, 5, 70, w.data, 33, y1.data);
  matmul_f32(best, x.data, 5, 70, w.data, 33, y2.data);
  for (int64_t j = 0; j < 5 * 33; ++j) EXPECT_EQ(y1.data[j], y2.data[j]);
}

TEST(MatmulIsa, RejectsNegativeSizes) {
  float y = 0.0f;
  EXPECT_THROW(matmul_f32(Isa::Reference, &y, -1, 1, &y, 1, &y), Error);
}

}  // namespace
}  // namespace wkvq
