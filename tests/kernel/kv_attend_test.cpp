// The attention kernels (kernels/kv_attend.h) of every ISA this CPU runs against their scalar
// references: decoding exact, scores and values within the bound of their reordered / fused f32
// sums, nothing written outside the outputs.
#include "kernels/kv_attend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "formats/kv_quant.h"
#include "kernels/isa.h"

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
};

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

TEST(KvAttendKernels, DecodeHeadEqualsReference) {
  const DecodeCase cases[] = {
      {16, 256, 0, 64, 64}, {16, 40, 0, 16, 24}, {8, 256, 64, 128, 64}, {4, 256, 64, 64, 64},
      {4, 256, 32, 64, 64}, {4, 48, 3, 12, 12},  {8, 24, 8, 8, 8},      {4, 128, 128, 0, 128},
      {4, 64, 16, 16, 8},   {2, 64, 16, 16, 16}, {3, 64, 16, 32, 32},   {4, 64, 12, 16, 16},
  };
  for (const DecodeCase& c : cases) {
    KvRecordFormat f;
    f.bits = c.bits;
    if (c.bits < 16) f.format = make_kv_format(c.channels, c.group, c.bits);
    const int64_t n = 19;
    int64_t stride = 0;
    const std::vector<uint8_t> rec = make_records(c, f, n, &stride);
    std::vector<float> want(static_cast<size_t>(n * c.hd));
    kv_decode_head_ref(f, rec.data(), stride, n, c.c0, c.hd, want.data());
    for (const Isa isa : kSimdIsas) {
      if (!isa_supported(isa)) continue;
      std::vector<float> got(want.size() + 16, -7.0f);
      kv_decode_head(f, rec.data(), stride, n, c.c0, c.hd, got.data(), kernel_table(isa));
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " bits " << c.bits << " group " << c.group
                                   << " hd " << c.hd << " at " << i;
      }
      for (size_t i = want.size(); i < got.size(); ++i) ASSERT_EQ(got[i], -7.0f) << "overrun";
    }
  }
}

struct TileCase {
  int64_t g, hd, n, ldx;
};

const TileCase kTiles[] = {{8, 64, 32, 64}, {8, 64, 17, 256}, {4, 128, 5, 128},
                           {1, 8, 16, 8},   {2, 8, 33, 32},   {3, 24, 9, 40},
                           {8, 64, 1, 64},  {1, 72, 31, 72},  {4, 200, 12, 200}};

TEST(KvAttendKernels, ScoresWithinTheReorderingBound) {
  for (const TileCase& c : kTiles) {
    const auto q = uniform(static_cast<size_t>(c.g * c.hd), 1);
    const auto x = uniform(static_cast<size_t>(c.n * c.ldx), 2, -2.0f, 2.0f);
    const int64_t ld = c.n + 3;
    const float scale = 0.125f;
    std::vector<float> want(static_cast<size_t>(c.g * ld), -7.0f);
    gqa_scores_ref(q.data(), c.g, c.hd, x.data(), c.ldx, c.n, scale, want.data(), ld);
    for (const Isa isa : kSimdIsas) {
      if (!isa_supported(isa)) continue;
      std::vector<float> got(want.size(), -7.0f);
      gqa_scores(q.data(), c.g, c.hd, x.data(), c.ldx, c.n, scale, got.data(), ld,
                 kernel_table(isa));
      for (int64_t h = 0; h < c.g; ++h) {
        for (int64_t j = 0; j < ld; ++j) {
          const size_t at = static_cast<size_t>(h * ld + j);
          if (j >= c.n) {
            ASSERT_EQ(got[at], -7.0f) << "written past the tile";
            continue;
          }
          // both sums of hd products err by <= hd * eps * sum|q x| (then one scaling rounding)
          double terms = 0;
          for (int64_t i = 0; i < c.hd; ++i) {
            terms += std::abs(q[static_cast<size_t>(h * c.hd + i)] *
                              x[static_cast<size_t>(j * c.ldx + i)]);
          }
          const double bound =
              2 * static_cast<double>(c.hd) * kEps32 * scale * terms + kEps32 * std::abs(want[at]);
          ASSERT_NEAR(got[at], want[at], bound) << isa_name(isa) << " g " << c.g << " hd " << c.hd
                                                << " n " << c.n << " h " << h << " j " << j;
        }
      }
    }
  }
}

TEST(KvAttendKernels, ValuesWithinTheFusedSumBound) {
  for (const TileCase& c : kTiles) {
    const int64_t ld = c.n + 5;
    const auto p = uniform(static_cast<size_t>(c.g * ld), 3, 0.0f, 1.0f);
    const auto x = uniform(static_cast<size_t>(c.n * c.ldx), 4, -2.0f, 2.0f);
    const auto acc0 = uniform(static_cast<size_t>(c.g * c.hd + 16), 6);
    std::vector<float> want = acc0;
    gqa_values_ref(p.data(), ld, c.g, c.hd, x.data(), c.ldx, c.n, want.data());
    for (const Isa isa : kSimdIsas) {
      if (!isa_supported(isa)) continue;
      std::vector<float> got = acc0;
      gqa_values(p.data(), ld, c.g, c.hd, x.data(), c.ldx, c.n, got.data(), kernel_table(isa));
      for (int64_t h = 0; h < c.g; ++h) {
        for (int64_t i = 0; i < c.hd; ++i) {
          const size_t at = static_cast<size_t>(h * c.hd + i);
          // n additions, each rounded once (fused) or twice (reference): <= 2 (n + 1) eps of the
          // sum of magnitudes
          double terms = std::abs(acc0[at]);
          for (int64_t j = 0; j < c.n; ++j) {
            terms += std::abs(p[static_cast<size_t>(h * ld + j)] *
                              x[static_cast<size_t>(j * c.ldx + i)]);
          }
          const double bound = 2 * static_cast<double>(c.n + 1) * kEps32 * terms;
          ASSERT_NEAR(got[at], want[at], bound)
              << isa_name(isa) << " g " << c.g << " hd " << c.hd << " n " << c.n;
        }
      }
      for (size_t i = static_cast<size_t>(c.g * c.hd); i < got.size(); ++i) {
        ASSERT_EQ(got[i], acc0[i]) << "written past the accumulators";
      }
    }
  }
}

// Softmax rows against softmax_inplace: every probability within 16 eps relative (exp within a
// few ulp, the row's maximum and sum as the reference's), nothing written past n.
TEST(KvAttendKernels, SoftmaxMatchesReference) {
  for (const int64_t n : {1, 7, 16, 17, 100, 1025}) {
    const int64_t g = 3, ld = n + 9;
    auto x = uniform(static_cast<size_t>(g * ld), 8, -30.0f, 12.0f);
    x[5 % static_cast<size_t>(n)] = -200.0f;  // far below the maximum: ~0
    std::vector<float> want = x;
    gqa_softmax_ref(want.data(), g, n, ld);
    for (const Isa isa : kSimdIsas) {
      if (!isa_supported(isa)) continue;
      std::vector<float> got = x;
      gqa_softmax(got.data(), g, n, ld, kernel_table(isa));
      for (int64_t h = 0; h < g; ++h) {
        for (int64_t j = 0; j < ld; ++j) {
          const size_t at = static_cast<size_t>(h * ld + j);
          if (j >= n) {
            ASSERT_EQ(got[at], x[at]) << "written past the row";
            continue;
          }
          ASSERT_NEAR(got[at], want[at], 16 * kEps32 * want[at] + 1e-37)
              << isa_name(isa) << " n " << n << " row " << h << " at " << j;
        }
      }
    }
  }
}

TEST(KvAttendKernels, KernelNameSaysWhatDecodes) {
  KvRecordFormat int4{4, make_kv_format(256, 64, 4)};
  KvRecordFormat int3{3, make_kv_format(256, 64, 3)};
  EXPECT_EQ(kv_attend_kernel(int4, 64, kernel_table(Isa::Reference)),
            "reference: int4 decode, GQA tiles");
  for (const Isa isa : kSimdIsas) {
    if (!isa_supported(isa)) continue;
    const std::string name = isa_name(isa);
    EXPECT_EQ(kv_attend_kernel(int4, 64, kernel_table(isa)), name + ": int4 decode, GQA tiles");
    EXPECT_EQ(kv_attend_kernel(int3, 64, kernel_table(isa)),
              "reference int3 decode, " + name + " GQA tiles");
    // groups spanning two heads: the reference decodes
    KvRecordFormat wide{4, make_kv_format(256, 128, 4)};
    EXPECT_EQ(kv_attend_kernel(wide, 64, kernel_table(isa)),
              "reference int4 decode, " + name + " GQA tiles");
  }
}

}  // namespace
}  // namespace wkvq
