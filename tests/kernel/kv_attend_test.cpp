// The attention kernels (kernels/kv_attend.h) of every ISA this CPU runs against their scalar
// references: decoding, scores and values bit-identical (the floats attention computed one head at
// a time before GQA), nothing written outside the outputs.
#include "kernels/kv_attend.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "formats/kv_quant.h"
#include "kernels/isa.h"
#include "kernels/vec_ops.h"

namespace wkvq {
namespace {

constexpr double kEps32 = 1.1920929e-7;
const Isa kSimdIsas[] = {Isa::Avx2, Isa::Avx512};

std::vector<float> uniform(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(n);
  for (float& e : x) e = u(rng);
  return x;
}

struct DecodeCase {
  int bits;
  int64_t channels, group, c0, hd;
  bool rel8 = false;  // int records with rel8 metadata (formats/kv_quant.h)
};

// The int format of a case, with rel8 metadata against static ranges kept in `groups`: per group
// [-2.5 + k / 8, 1.5 - k / 16] for k = g % 5, so make_records' values in [-3, 2] are partly
// clipped.
KvQuantFormat case_format(int bits, int64_t channels, int64_t group, bool rel8,
                          std::vector<KvRel8Group>& groups) {
  KvQuantFormat f = make_kv_format(channels, group, bits, rel8);
  if (!rel8) return f;
  groups.clear();
  for (int64_t g = 0; g < f.n_groups; ++g) {
    const float k = static_cast<float>(g % 5);
    groups.push_back(make_kv_rel8_group(-2.5f + k / 8.0f, 1.5f - k / 16.0f));
  }
  f.rel8_groups = groups.data();
  return f;
}

// n records of the case's format from random data (fp16 or int records of formats/kv_quant.h).
std::vector<uint8_t> make_records(const DecodeCase& c, const KvRecordFormat& f, int64_t n,
                                  int64_t* stride) {
  const std::vector<float> x = uniform(static_cast<size_t>(n * c.channels), 5, -3.0f, 2.0f);
  *stride = c.bits == 16 ? 2 * c.channels : f.format.token_bytes + 3;  // odd stride: unaligned
  std::vector<uint8_t> rec(static_cast<size_t>(n * *stride));
  for (int64_t j = 0; j < n; ++j) {
    uint8_t* r = rec.data() + j * *stride;
    if (c.bits == 16) {
      for (int64_t i = 0; i < c.channels; ++i) {
        const uint16_t h = f32_to_fp16(x[static_cast<size_t>(j * c.channels + i)]);
        r[2 * i] = static_cast<uint8_t>(h & 0xff);
        r[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
    } else {
      quantize_token_ref(f.format, x.data() + j * c.channels, r);
    }
  }
  return rec;
}

// Groupings of the head (channels, group, c0, hd) the int records are tested with at every width:
// groups inside the head of every length (multiples of the vector width or not, 1 channel, odd)
// and groups across heads (the reference decodes those).
struct HeadGrouping {
  int64_t channels, group, c0, hd;
};
const HeadGrouping kGroupings[] = {
    {256, 64, 64, 64},
    {256, 32, 64, 64},
    {256, 16, 64, 64},
    {64, 8, 8, 8},
    {96, 24, 24, 24},
    {48, 12, 12, 12},
    {40, 20, 20, 20},
    {128, 128, 0, 128},
    {64, 1, 16, 16},
    {60, 5, 10, 15},
    {72, 72, 0, 72},
    {200, 100, 100, 100},
    {256, 128, 64, 64},
    {64, 12, 16, 16},
    {48, 3, 12, 12},
    // heads inside one group (SIMD when the head is whole vectors and, at 4 bits, in one plane):
    // wkvq-ref-6m's 4 heads of 32 in groups of 64 and 128, TinyLlama's heads of 64 in groups of
    // 128 and 256, heads of 16 (AVX2 only) and 8 (reference)
    {128, 64, 32, 32},
    {128, 128, 96, 32},
    {128, 128, 64, 32},
    {256, 128, 128, 64},
    {256, 256, 192, 64},
    {64, 32, 16, 16},
    {32, 32, 8, 8},
    {96, 96, 32, 32},
};
constexpr int kIntBits[] = {2, 3, 4, 8};

TEST(KvAttendKernels, DecodeHeadEqualsReference) {
  std::vector<DecodeCase> cases = {
      {16, 256, 0, 64, 64}, {16, 40, 0, 16, 24}, {8, 256, 64, 128, 64}, {4, 256, 64, 64, 64},
      {4, 256, 32, 64, 64}, {4, 48, 3, 12, 12},  {8, 24, 8, 8, 8},      {4, 128, 128, 0, 128},
      {4, 64, 16, 16, 8},   {2, 64, 16, 16, 16}, {3, 64, 16, 32, 32},   {4, 64, 12, 16, 16},
  };
  for (const int bits : kIntBits) {
    for (const HeadGrouping& h : kGroupings) {
      for (const bool rel8 : {false, true}) {
        cases.push_back({bits, h.channels, h.group, h.c0, h.hd, rel8});
      }
    }
  }
  std::vector<KvRel8Group> groups;
  for (const DecodeCase& c : cases) {
    KvRecordFormat f;
    f.bits = c.bits;
    if (c.bits < 16) f.format = case_format(c.bits, c.channels, c.group, c.rel8, groups);
    for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{19}, int64_t{32}}) {
      int64_t stride = 0;
      const std::vector<uint8_t> rec = make_records(c, f, n, &stride);
      std::vector<float> want(static_cast<size_t>(n * c.hd));
      kv_decode_head_ref(f, rec.data(), stride, n, c.c0, c.hd, want.data());
      for (const Isa isa : kSimdIsas) {
        if (!isa_supported(isa)) continue;
        std::vector<float> got(want.size() + 16, -7.0f);
        kv_decode_head(f, rec.data(), stride, n, c.c0, c.hd, got.data(), kernel_table(isa));
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(got[i], want[i])
              << isa_name(isa) << " bits " << c.bits << " group " << c.group << " rel8 " << c.rel8
              << " hd " << c.hd << " n " << n << " at " << i;
        }
        for (size_t i = want.size(); i < got.size(); ++i) ASSERT_EQ(got[i], -7.0f) << "overrun";
      }
    }
  }
}

struct TileCase {
  int64_t g, hd, n, ldx;
};

const TileCase kTiles[] = {{8, 64, 32, 64}, {8, 64, 17, 256}, {4, 128, 5, 128},
                           {1, 8, 16, 8},   {2, 8, 33, 32},   {3, 24, 9, 40},
                           {8, 64, 1, 64},  {1, 72, 31, 72},  {4, 200, 12, 200}};

// Bitwise equality, NaN-free inputs: the kernels must compute the reference's floats.
void expect_same_floats(const std::vector<float>& got, const std::vector<float>& want,
                        const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
        << what << " at " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(KvAttendKernels, ScoresEqualReference) {
  for (const TileCase& c : kTiles) {
    const auto q = uniform(static_cast<size_t>(c.g * c.hd), 1);
    const auto x = uniform(static_cast<size_t>(c.n * c.ldx), 2, -2.0f, 2.0f);
    const int64_t ld = c.n + 3;
    const float scale = 0.125f;
    std::vector<float> want(static_cast<size_t>(c.g * ld), -7.0f);
    gqa_scores_ref(q.data(), c.g, c.hd, x.data(), c.ldx, c.n, scale, want.data(), ld);
    // the reference is vec_ops.h's dot, which attention ran per head before GQA
    ASSERT_EQ(want[0], scale * dot(q.data(), x.data(), c.hd));
    for (const Isa isa : kSimdIsas) {
      if (!isa_supported(isa)) continue;
      std::vector<float> got(want.size(), -7.0f);  // -7 past n: nothing written there
      gqa_scores(q.data(), c.g, c.hd, x.data(), c.ldx, c.n, scale, got.data(), ld,
                 kernel_table(isa));
      expect_same_floats(got, want,
                         std::string(isa_name(isa)) + " g " + std::to_string(c.g) + " hd " +
                             std::to_string(c.hd) + " n " + std::to_string(c.n));
    }
  }
}

struct IntScoreCase {
  int bits;
  int64_t channels, group, c0, hd;
  bool rel8 = false;
};

// gqa_scores_int of every table equals kv_dot_tokens per head and group under that table, for
// the SIMD path (every width, whole groups in the head) and the per-head fallback.
TEST(KvAttendKernels, IntScoresEqualPerHeadKvDotTokens) {
  std::vector<IntScoreCase> cases = {
      {4, 256, 64, 64, 64}, {8, 256, 64, 128, 64}, {4, 256, 32, 64, 64}, {8, 256, 32, 0, 64},
      {4, 64, 8, 8, 8},     {4, 96, 24, 24, 24},   {8, 40, 20, 20, 20},  {4, 128, 128, 0, 128},
      {4, 64, 12, 16, 16},  {2, 64, 16, 16, 16},   {3, 64, 16, 32, 32},  {4, 256, 128, 64, 64},
  };
  for (const int bits : kIntBits) {
    for (const HeadGrouping& h : kGroupings) {
      for (const bool rel8 : {false, true}) {
        cases.push_back({bits, h.channels, h.group, h.c0, h.hd, rel8});
      }
    }
  }
  std::vector<KvRel8Group> groups;
  for (const IntScoreCase& c : cases) {
    const KvQuantFormat f = case_format(c.bits, c.channels, c.group, c.rel8, groups);
    const KvRecordFormat rf{c.bits, f};
    for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{32}}) {
      int64_t stride = 0;
      const std::vector<uint8_t> rec =
          make_records({c.bits, c.channels, c.group, c.c0, c.hd}, rf, n, &stride);
      const int64_t g = 3, ld = n + 2;
      const auto q = uniform(static_cast<size_t>(g * c.hd), 11);
      std::vector<float> work(static_cast<size_t>(gqa_scores_int_work(f, n, c.hd)));
      for (const Isa isa : {Isa::Reference, Isa::Avx2, Isa::Avx512}) {
        if (!isa_supported(isa)) continue;
        std::vector<float> want(static_cast<size_t>(g * ld), -7.0f);
        gqa_scores_int_ref(f, rec.data(), stride, n, c.c0, q.data(), g, c.hd, 0.25f, want.data(),
                           ld, work.data(), kernel_table(isa));
        std::vector<float> got(want.size(), -7.0f);
        gqa_scores_int(f, rec.data(), stride, n, c.c0, q.data(), g, c.hd, 0.25f, got.data(), ld,
                       work.data(), kernel_table(isa));
        const std::string what = std::string(isa_name(isa)) + " bits " + std::to_string(c.bits) +
                                 " group " + std::to_string(c.group) + (c.rel8 ? " rel8" : "") +
                                 " hd " + std::to_string(c.hd) + " n " + std::to_string(n);
        expect_same_floats(got, want, what);
        if (isa != Isa::Reference) continue;
        // and they are the scores of the dequantized head, up to the reordering of the sums
        std::vector<float> x(static_cast<size_t>(n * c.hd));
        kv_decode_head_ref(rf, rec.data(), stride, n, c.c0, c.hd, x.data());
        std::vector<float> plain(want.size(), -7.0f);
        gqa_scores_ref(q.data(), g, c.hd, x.data(), c.hd, n, 0.25f, plain.data(), ld);
        for (size_t i = 0; i < want.size(); ++i) {
          double terms = 0;  // the bound: 3 hd eps of the magnitudes (two sums, then the scale)
          const int64_t h = static_cast<int64_t>(i) / ld, j = static_cast<int64_t>(i) % ld;
          for (int64_t k = 0; j < n && k < c.hd; ++k) {
            terms += std::abs(q[static_cast<size_t>(h * c.hd + k)] *
                              x[static_cast<size_t>(j * c.hd + k)]) +
                     std::abs(q[static_cast<size_t>(h * c.hd + k)]) * 4.0;
          }
          ASSERT_NEAR(want[i], plain[i], 3 * static_cast<double>(c.hd) * kEps32 * 0.25 * terms)
              << what << " at " << i;
        }
      }
    }
  }
}

TEST(KvAttendKernels, QueryQ8RoundsEachGroupToItsMaximum) {
  const std::vector<float> q = {0.5f, -1.0f, 0.25f, 0.0f,   // group 0: d = 1 / 127
                                0.0f, 0.0f,  0.0f,  0.0f,   // group 1: zero
                                3.0f, NAN,   1.0f,  2.0f};  // group 2: not finite
  std::vector<int8_t> q8(12, 99);
  std::vector<float> d(3), qsum(3);
  quantize_query_q8(q.data(), 1, 12, 4, q8.data(), d.data(), qsum.data());
  EXPECT_EQ(std::vector<int>(q8.begin(), q8.begin() + 8),
            (std::vector<int>{64, -127, 32, 0, 0, 0, 0, 0}));  // 63.5 rounds to even 64
  EXPECT_EQ(d[0], 1.0f / 127.0f);
  EXPECT_EQ(qsum[0], -0.25f);
  EXPECT_EQ(d[1], 0.0f);
  EXPECT_TRUE(std::isnan(d[2]));
  for (int i = 8; i < 12; ++i) EXPECT_EQ(q8[static_cast<size_t>(i)], 0);
}

// gqa_scores_q8 of every SIMD table equals its reference bit for bit (the SIMD kernel where the
// group is a multiple of 32, the reference otherwise), and the reference is the exact score of
// the dequantized head up to q's rounding: scale sum_k s_k (d_k / 2) sum_i code_i, plus the f32
// rounding of the sums.
TEST(KvAttendKernels, Q8ScoresEqualReferenceWithinQueryRounding) {
  struct Case {
    int64_t channels, group, c0, hd;
  };
  const Case cases[] = {{256, 64, 64, 64},  {256, 64, 0, 128}, {256, 128, 128, 128},
                        {512, 128, 0, 256}, {256, 32, 64, 64}, {192, 96, 96, 96},
                        {128, 32, 32, 64},  {64, 8, 8, 16},    {120, 24, 48, 48}};
  std::vector<KvRel8Group> groups;
  for (const Case& c : cases) {
    for (const bool rel8 : {false, true}) {
      const KvQuantFormat f = case_format(4, c.channels, c.group, rel8, groups);
      const KvRecordFormat rf{4, f};
      ASSERT_TRUE(gqa_scores_q8_applies(f, c.c0, c.hd));
      for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{9}, int64_t{32}}) {
        int64_t stride = 0;
        const std::vector<uint8_t> rec =
            make_records({4, c.channels, c.group, c.c0, c.hd}, rf, n, &stride);
        for (const int64_t g : {int64_t{1}, int64_t{3}, int64_t{8}}) {
          const int64_t ld = n + 2, per_head = c.hd / c.group;
          const auto q = uniform(static_cast<size_t>(g * c.hd), 13, -2.0f, 1.5f);
          std::vector<int8_t> q8(static_cast<size_t>(g * c.hd));
          std::vector<float> d(static_cast<size_t>(g * per_head)), qsum(d.size());
          quantize_query_q8(q.data(), g, c.hd, c.group, q8.data(), d.data(), qsum.data());
          const QueryQ8 qq{q8.data(), d.data(), qsum.data()};
          const float scale = 0.125f;
          std::vector<float> want(static_cast<size_t>(g * ld), -7.0f);
          gqa_scores_q8_ref(f, rec.data(), stride, n, c.c0, qq, g, c.hd, scale, want.data(), ld);
          const std::string what = "group " + std::to_string(c.group) + (rel8 ? " rel8" : "") +
                                   " hd " + std::to_string(c.hd) + " n " + std::to_string(n) +
                                   " g " + std::to_string(g);
          std::vector<float> work(static_cast<size_t>(gqa_scores_q8_work(f, n, c.hd)));
          for (const Isa isa : kSimdIsas) {
            if (!isa_supported(isa)) continue;
            std::vector<float> got(want.size(), -7.0f);  // -7 past n: nothing written there
            gqa_scores_q8(f, rec.data(), stride, n, c.c0, qq, g, c.hd, scale, got.data(), ld,
                          work.data(), kernel_table(isa));
            expect_same_floats(got, want, std::string(isa_name(isa)) + " " + what);
          }
          std::vector<float> x(static_cast<size_t>(n * c.hd));
          kv_decode_head_ref(rf, rec.data(), stride, n, c.c0, c.hd, x.data());
          double worst = 0.0;
          for (int64_t h = 0; h < g; ++h) {
            for (int64_t j = 0; j < n; ++j) {
              const uint8_t* r = rec.data() + j * stride;
              double exact = 0.0, magnitudes = 0.0, rounding = 0.0;
              for (int64_t k = 0; k < per_head; ++k) {
                const int64_t gk = c.c0 / c.group + k;
                const KvGroupParams p = kv_group_params(f, r, gk);
                double codes = 0.0;  // sum_i code_i = (x^_i - m) / s
                for (int64_t i = 0; i < c.group; ++i) {
                  const int64_t ch = k * c.group + i;
                  const double qi = q[static_cast<size_t>(h * c.hd + ch)];
                  const double xi = x[static_cast<size_t>(j * c.hd + ch)];
                  exact += qi * xi;
                  magnitudes += std::abs(qi * xi) + std::abs(qi) * std::abs(p.min);
                  if (p.scale > 0.0f) codes += (xi - p.min) / p.scale;
                }
                // |q_i - d q8_i| <= d / 2, plus the f32 rounding of q / d (a few eps of d)
                rounding +=
                    p.scale * d[static_cast<size_t>(h * per_head + k)] * (0.5 + 1e-5) * codes;
              }
              const double tol =
                  scale * (rounding + 3.0 * static_cast<double>(c.hd) * kEps32 * magnitudes);
              const double err = std::abs(want[static_cast<size_t>(h * ld + j)] - scale * exact);
              ASSERT_LE(err, tol) << what << " head " << h << " row " << j;
              worst = std::max(worst, err);
            }
          }
          EXPECT_GT(worst, 0.0) << what;  // q's rounding shows: the bound is not vacuous
        }
      }
    }
  }
}

TEST(KvAttendKernels, ValuesEqualReference) {
  for (const TileCase& c : kTiles) {
    const int64_t ld = c.n + 5;
    const auto p = uniform(static_cast<size_t>(c.g * ld), 3, 0.0f, 1.0f);
    const auto x = uniform(static_cast<size_t>(c.n * c.ldx), 4, -2.0f, 2.0f);
    const auto acc0 = uniform(static_cast<size_t>(c.g * c.hd + 16), 6);
    std::vector<float> want = acc0;  // the 16 past g * hd: nothing written there
    gqa_values_ref(p.data(), ld, c.g, c.hd, x.data(), c.ldx, c.n, want.data());
    for (const Isa isa : kSimdIsas) {
      if (!isa_supported(isa)) continue;
      std::vector<float> got = acc0;
      gqa_values(p.data(), ld, c.g, c.hd, x.data(), c.ldx, c.n, got.data(), kernel_table(isa));
      expect_same_floats(got, want,
                         std::string(isa_name(isa)) + " g " + std::to_string(c.g) + " hd " +
                             std::to_string(c.hd) + " n " + std::to_string(c.n));
    }
  }
}

// Softmax rows are softmax_inplace's bit for bit on every table (tails of every length, masked
// -inf entries, a score far below the maximum, exp_f32 underflowing to 0), nothing written past n.
TEST(KvAttendKernels, SoftmaxIsSoftmaxInplacePerRow) {
  for (const int64_t n : {1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 1025}) {
    const int64_t g = 3, ld = n + 9;
    auto x = uniform(static_cast<size_t>(g * ld), 8, -30.0f, 12.0f);
    x[5 % static_cast<size_t>(n)] = -200.0f;  // far below the maximum: exp gives 0
    if (n > 2) x[static_cast<size_t>(ld + n - 2)] = -std::numeric_limits<float>::infinity();
    std::vector<float> want = x;
    for (int64_t h = 0; h < g; ++h) softmax_inplace(want.data() + h * ld, n);
    for (const Isa isa : {Isa::Reference, Isa::Avx2, Isa::Avx512}) {
      if (!isa_supported(isa)) continue;
      std::vector<float> got = x;
      gqa_softmax(got.data(), g, n, ld, kernel_table(isa));
      expect_same_floats(got, want, std::string(isa_name(isa)) + " n " + std::to_string(n));
    }
  }
}

// A long row (every lane of the 16 partial sums used, a tail of 3) agrees bit for bit, and its
// probabilities sum to 1 within the two float roundings of each (1 / sum, then the product).
TEST(KvAttendKernels, SoftmaxSumOrderIsTheReferences) {
  const int64_t n = 4099;
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = -0.37f * static_cast<float>(i % 61);
  std::vector<float> want = x;
  softmax_inplace(want.data(), n);
  double total = 0.0;
  for (const float p : want) total += p;
  EXPECT_NEAR(total, 1.0, 1.01 * kEps32);  // (1 + u)^2: kEps32 = 2u
  for (const Isa isa : kSimdIsas) {
    if (!isa_supported(isa)) continue;
    std::vector<float> got = x;
    gqa_softmax(got.data(), 1, n, n, kernel_table(isa));
    expect_same_floats(got, want, isa_name(isa));
  }
}

TEST(KvAttendKernels, KernelNameSaysWhatDecodes) {
  KvRecordFormat int4{4, make_kv_format(256, 64, 4)};
  EXPECT_EQ(kv_attend_kernel(int4, 64, kernel_table(Isa::Reference)),
            "reference: int4 decode, GQA tiles");
  for (const Isa isa : kSimdIsas) {
    if (!isa_supported(isa)) continue;
    const std::string name = isa_name(isa);
    for (const int bits : kIntBits) {  // every width decodes with SIMD, groups inside the head
      const std::string b = std::to_string(bits);
      KvRecordFormat f{bits, make_kv_format(256, 16, bits)};
      EXPECT_EQ(kv_attend_kernel(f, 64, kernel_table(isa)),
                name + ": int" + b + " decode, GQA tiles");
      // heads of 64 inside groups of 128: SIMD too; heads of 8 inside groups of 32 (a run of less
      // than two vectors): the reference decodes
      KvRecordFormat wide{bits, make_kv_format(256, 128, bits)};
      EXPECT_EQ(kv_attend_kernel(wide, 64, kernel_table(isa)),
                name + ": int" + b + " decode, GQA tiles");
      KvRecordFormat small{bits, make_kv_format(32, 32, bits)};
      EXPECT_EQ(kv_attend_kernel(small, 8, kernel_table(isa)),
                "reference int" + b + " decode, " + name + " GQA tiles");
    }
  }
}

}  // namespace
}  // namespace wkvq
