// KV token quantization (formats/kv_quant.h) and its SIMD kernels (kernels/kv_quant.h), tested by
// property (representable input exact, error under the derived bound, constant groups, NaN/Inf
// rejected) and every implementation against the reference over odd sizes and misaligned
// records. All randomness is seeded; set WKVQ_TEST_SEED to replay another seed.
#include "formats/kv_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/kv_quant.h"

namespace wkvq {
namespace {

uint32_t base_seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return 20240611u;
}

constexpr int kAllBits[] = {2, 3, 4, 8};
constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr double kFp16Rounding = 0.00048828125;  // 2^-11: |fp16(v) - v| <= 2^-11 |v|
// Margin on derived worst-case bounds: covers the double-precision evaluation of the bound itself.
constexpr double kBoundMargin = 1.01;

// Per-element round-trip bound (header of formats/kv_quant.h): half a step, the fp16 rounding of
// the scale over the qmax steps of the range and of the min, and f32 rounding of m + q s.
double error_bound(int bits, double s, double true_min, double max_abs) {
  const double qmax = (1 << bits) - 1;
  return kBoundMargin * (s * (0.5 + qmax * kFp16Rounding) + std::fabs(true_min) * kFp16Rounding +
                         4.0 * kEps * max_abs);
}

// Channel values with a few large outlier channels and a per-channel offset, like raw keys.
std::vector<float> random_token(int64_t c, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c));
  for (int64_t i = 0; i < c; ++i) {
    const float offset = (i % 13 == 5) ? 8.0f : 0.0f;
    x[static_cast<size_t>(i)] = offset + ((i % 17 == 3) ? 10.0f : 1.0f) * normal(rng);
  }
  return x;
}

// Byte buffer whose data starts `offset` bytes past a 64-byte boundary.
struct Bytes {
  std::vector<uint8_t> storage;
  uint8_t* data;
  Bytes(int64_t n, int64_t offset) : storage(static_cast<size_t>(n + offset + 64), 0xCD) {
    const auto addr = reinterpret_cast<uintptr_t>(storage.data());
    data = storage.data() + (64 - addr % 64) % 64 + offset;
  }
};

// A format with fp16 metadata, or rel8 metadata against seeded static ranges (owned here) that
// cover most of random_token's values and clip the rest: lo in [-12, -2], hi in [2, 22].
struct TestFormat {
  KvQuantFormat f;
  std::vector<KvRel8Group> groups;
};
TestFormat test_format(int64_t c, int64_t group, int bits, bool rel8, std::mt19937& rng) {
  TestFormat t{make_kv_format(c, group, bits, rel8), {}};
  if (!rel8) return t;
  std::uniform_real_distribution<float> lo(-12.0f, -2.0f), hi(2.0f, 22.0f);
  for (int64_t g = 0; g < t.f.n_groups; ++g)
    t.groups.push_back(make_kv_rel8_group(lo(rng), hi(rng)));
  t.f.rel8_groups = t.groups.data();
  return t;
}

TEST(KvQuant, FormatSizes) {
  const KvQuantFormat a = make_kv_format(64, 64, 4);
  EXPECT_EQ(a.n_groups, 1);
  EXPECT_EQ(a.token_bytes, 4 + 32);                  // 4.5 bits per element
  const KvQuantFormat b = make_kv_format(32, 8, 4);  // stories260K: 4 KV heads of 8
  EXPECT_EQ(b.n_groups, 4);
  EXPECT_EQ(b.token_bytes, 16 + 4 * 4);
  EXPECT_EQ(b.group_code_offset(2), 16 + 8);
  const KvQuantFormat c = make_kv_format(30, 8, 3);  // groups 8, 8, 8, 6
  EXPECT_EQ(c.group_len(3), 6);
  EXPECT_EQ(c.token_bytes, 16 + 3 * 3 + 3);
  EXPECT_EQ(make_kv_format(10, 0, 8).n_groups, 1);
  EXPECT_EQ(make_kv_format(10, 0, 2).token_bytes, 4 + 3);
  EXPECT_THROW(make_kv_format(0, 8, 4), Error);
  EXPECT_THROW(make_kv_format(8, 8, 5), Error);
  const KvQuantFormat r = make_kv_format(256, 16, 4, true);  // rel8: 2 bytes per group
  EXPECT_EQ(r.params_bytes, 2 * 16);
  EXPECT_EQ(r.token_bytes, 2 * 16 + 128);
  EXPECT_EQ(r.group_code_offset(1), 32 + 8);
}

// rel8 by hand: range [-1, 1.23], so the 224 levels across it are 0.01 apart (L[16 + i] =
// -1 + i / 100); a group of min -0.255 and max 0.4449 gets m8 = 16 + 74 and t8 = 16 + 145, so
// m = L[90], s = (L[161] - L[90]) / 15. Beyond the range the tails (u = 2.23: L[15 - j] =
// -1 - 2.23 2^(j/2) / 16) give -5 the level L[5] = -5.46 (j = 10) and 9 the level L[252] = 10.15
// (j = 12), so both keep their codes; only beyond L[255] = 26.46 is a value clipped.
TEST(KvQuant, Rel8MetadataByHand) {
  const KvRel8Group r = make_kv_rel8_group(-1.0f, 1.23f);
  EXPECT_EQ(r.levels[16], -1.0f);
  EXPECT_EQ(r.levels[239], 1.23f);
  EXPECT_NEAR(r.levels[90], -0.26f, 1e-6f);
  EXPECT_NEAR(r.levels[5], -1.0f - 2.23f * 2.0f, 1e-5f);
  EXPECT_NEAR(r.levels[252], 1.23f + 2.23f * 4.0f, 1e-5f);
  for (int v = 1; v < 256; ++v) EXPECT_LT(r.levels[v - 1], r.levels[v]) << v;
  KvQuantFormat f = make_kv_format(4, 4, 4, true);
  f.rel8_groups = &r;
  const float x[4] = {-0.255f, 0.0f, 0.4449f, 0.2f};
  uint8_t rec[4] = {};
  quantize_token_ref(f, x, rec);
  EXPECT_EQ(rec[0], 90);
  EXPECT_EQ(rec[1], 161);
  const KvGroupParams p = kv_group_params(f, rec, 0);
  EXPECT_EQ(p.min, r.levels[90]);
  EXPECT_EQ(p.scale, (r.levels[161] - r.levels[90]) / 15.0f);
  float back[4];
  const float wide[4] = {-5.0f, 9.0f, 0.0f, 0.0f};  // beyond the range: the tails hold them
  quantize_token_ref(f, wide, rec);
  EXPECT_EQ(rec[0], 5);
  EXPECT_EQ(rec[1], 252);
  dequantize_token_ref(f, rec, back);
  const float s = (r.levels[252] - r.levels[5]) / 15.0f;
  for (int i = 0; i < 4; ++i) EXPECT_LE(std::fabs(back[i] - wide[i]), s / 2 + 1e-5f) << i;
  const float huge[4] = {100.0f, 0.0f, 0.0f, 0.0f};  // beyond the tails: clipped to L[255]
  quantize_token_ref(f, huge, rec);
  EXPECT_EQ(rec[1], 255);
  dequantize_token_ref(f, rec, back);
  EXPECT_EQ(back[0], r.levels[255]);
  const float flat[4] = {0.5f, 0.5f, 0.5f, 0.5f};  // a constant group decodes to a level near it
  quantize_token_ref(f, flat, rec);
  dequantize_token_ref(f, rec, back);
  for (float v : back) EXPECT_NEAR(v, 0.5f, 0.01f);
  const KvRel8Group point = make_kv_rel8_group(2.0f, 2.0f);  // an empty range: tails of |lo|
  EXPECT_EQ(point.levels[16], 2.0f);
  EXPECT_EQ(point.levels[239], 2.0f);
  EXPECT_NEAR(point.levels[255], 2.0f + 2.0f * std::exp2(7.5f) / 16.0f, 1e-4f);
  EXPECT_THROW(make_kv_rel8_group(1.0f, 0.0f), Error);
  EXPECT_THROW(make_kv_rel8_group(0.0f, std::numeric_limits<float>::infinity()), Error);
}

// rel8 round trip within its bound: wherever the levels reach, [L[m8], L[t8]] holds the group, so
// |x - x^| <= s / 2 + f32 rounding, s = (L[t8] - L[m8]) / qmax; and inside the static range s is
// at most (max - min + 2 R / 223) / qmax.
TEST(KvQuant, Rel8RoundTripErrorStaysUnderItsBound) {
  std::mt19937 rng(base_seed() + 11u);
  for (const int bits : kAllBits) {
    for (const int64_t group : {8, 16, 32, 64}) {
      const KvRel8Group r = make_kv_rel8_group(-10.0f, 10.0f);  // random_token's outliers: tails
      KvQuantFormat f = make_kv_format(256, group, bits, true);
      std::vector<KvRel8Group> groups(static_cast<size_t>(f.n_groups), r);
      f.rel8_groups = groups.data();
      for (int rep = 0; rep < 4; ++rep) {
        const std::vector<float> x = random_token(256, rng);
        std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
        std::vector<float> back(256);
        quantize_token_ref(f, x.data(), rec.data());
        dequantize_token_ref(f, rec.data(), back.data());
        for (int64_t g = 0; g < f.n_groups; ++g) {
          const KvGroupParams p = kv_group_params(f, rec.data(), g);
          const auto first = x.begin() + g * group, last = x.begin() + (g + 1) * group;
          const float mn = *std::min_element(first, last), mx = *std::max_element(first, last);
          EXPECT_LE(p.min, mn);
          if (mn >= -10.0f && mx <= 10.0f) {
            EXPECT_LE(p.scale * static_cast<float>((1 << bits) - 1),
                      (mx - mn + 2.0f * 20.0f / 223.0f) * (1.0f + 1e-5f));
          }
          for (int64_t i = g * group; i < (g + 1) * group; ++i) {
            EXPECT_LE(std::fabs(x[static_cast<size_t>(i)] - back[static_cast<size_t>(i)]),
                      kBoundMargin * (p.scale / 2 + 4.0 * kEps * 40.0))
                << "bits=" << bits << " g=" << group << " channel " << i;
          }
        }
      }
    }
  }
}

TEST(KvQuant, PackUnpackIsExactForEveryBitWidth) {
  std::mt19937 rng(base_seed());
  for (const int bits : kAllBits) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    for (const int64_t len : {1, 2, 3, 5, 8, 9, 15, 16, 17, 31, 33, 64, 127, 128}) {
      std::vector<uint8_t> codes(static_cast<size_t>(len));
      for (uint8_t& v : codes) v = static_cast<uint8_t>(code(rng));
      std::vector<uint8_t> packed(static_cast<size_t>(kv_code_bytes(len, bits)));
      pack_kv_group_ref(codes.data(), len, bits, packed.data());
      std::vector<uint8_t> back(codes.size());
      unpack_kv_group_ref(packed.data(), len, bits, back.data());
      EXPECT_EQ(back, codes) << "bits=" << bits << " len=" << len;
    }
  }
  // The 4-bit "planes" layout: byte j = code[j] | code[j + ceil(len / 2)] << 4.
  const std::vector<uint8_t> c4 = {1, 2, 3, 4, 5, 6, 7};  // h = 4
  std::vector<uint8_t> p4(4);
  pack_kv_group_ref(c4.data(), 7, 4, p4.data());
  EXPECT_EQ(p4, (std::vector<uint8_t>{1 | 5 << 4, 2 | 6 << 4, 3 | 7 << 4, 4}));
  // 2 and 3 bits: channel i at bits b i.. of the little-endian bit string, padding bits 0.
  const std::vector<uint8_t> c2 = {1, 2, 3, 0, 1, 2};
  std::vector<uint8_t> p2(2);
  pack_kv_group_ref(c2.data(), 6, 2, p2.data());
  EXPECT_EQ(p2, (std::vector<uint8_t>{1 | 2 << 2 | 3 << 4 | 0 << 6, 1 | 2 << 2}));
  const std::vector<uint8_t> c3 = {5, 3, 7, 1};  // 5 | 3 << 3 | 7 << 6 | 1 << 9 = 0x3dd
  std::vector<uint8_t> p3(2);
  pack_kv_group_ref(c3.data(), 4, 3, p3.data());
  EXPECT_EQ(p3, (std::vector<uint8_t>{0xdd, 0x03}));
}

// x = m + q * s with fp16-exact m, s (m a multiple of s) and codes 0 and qmax in every group:
// quantization recovers m, s and q, and x^ == x bit for bit.
TEST(KvQuant, RepresentableInputHasZeroError) {
  std::mt19937 rng(base_seed() + 1u);
  for (const int bits : kAllBits) {
    const int qmax = (1 << bits) - 1;
    for (const int64_t group : {2, 8, 31, 64, 128}) {
      const KvQuantFormat f = make_kv_format(256, group, bits);
      std::uniform_int_distribution<int> code(0, qmax), mant(1, 15), expo(4, 12), zero(-127, 127);
      std::vector<float> x(256);
      for (int64_t g = 0; g < f.n_groups; ++g) {
        const float s = static_cast<float>(mant(rng)) * std::exp2(-static_cast<float>(expo(rng)));
        const int z = zero(rng);
        for (int64_t i = 0; i < f.group_len(g); ++i) {
          const int q = i == 0 ? 0 : i == 1 ? qmax : code(rng);
          x[static_cast<size_t>(f.group_first(g) + i)] = static_cast<float>(q - z) * s;
        }
      }
      std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
      quantize_token_ref(f, x.data(), rec.data());
      std::vector<float> back(x.size());
      dequantize_token_ref(f, rec.data(), back.data());
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(back[i], x[i]) << "bits=" << bits << " g=" << group << " channel " << i;
      }
    }
  }
}

TEST(KvQuant, RoundTripErrorStaysUnderTheDerivedBound) {
  std::mt19937 rng(base_seed() + 2u);
  for (const int bits : kAllBits) {
    for (const int64_t c : {1, 7, 64, 100, 256}) {
      for (const int64_t group : {0, 8, 32, 64}) {
        const KvQuantFormat f = make_kv_format(c, group, bits);
        const std::vector<float> x = random_token(c, rng);
        std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
        quantize_token_ref(f, x.data(), rec.data());
        std::vector<float> back(x.size());
        dequantize_token_ref(f, rec.data(), back.data());
        for (int64_t g = 0; g < f.n_groups; ++g) {
          const float* xg = x.data() + f.group_first(g);
          const int64_t len = f.group_len(g);
          const double mn = *std::min_element(xg, xg + len);
          double max_abs = 0.0;
          for (int64_t i = 0; i < len; ++i) max_abs = std::max(max_abs, std::fabs(double{xg[i]}));
          const double bound =
              error_bound(bits, kv_group_params(f, rec.data(), g).scale, mn, max_abs);
          for (int64_t i = 0; i < len; ++i) {
            const auto k = static_cast<size_t>(f.group_first(g) + i);
            ASSERT_LE(std::fabs(double{x[k]} - back[k]), bound)
                << "bits=" << bits << " C=" << c << " g=" << group << " channel " << k;
          }
        }
      }
    }
  }
}

TEST(KvQuant, ConstantGroupDecodesExactlyToItsStoredMin) {
  for (const int bits : kAllBits) {
    for (const float v : {0.0f, 1.0f, -3.140625f, 0.1f, 1e-9f}) {
      const KvQuantFormat f = make_kv_format(16, 8, bits);
      const std::vector<float> x(16, v);
      std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
      quantize_token_ref(f, x.data(), rec.data());
      EXPECT_EQ(kv_group_params(f, rec.data(), 0).scale, 0.0f);
      std::vector<float> back(16);
      dequantize_token_ref(f, rec.data(), back.data());
      const float m16 = fp16_to_f32(f32_to_fp16(v));
      for (const float b : back) EXPECT_EQ(b, m16) << "bits=" << bits << " v=" << v;
    }
  }
}

TEST(KvQuant, NonFiniteOrOutOfRangeValuesAreRejected) {
  const KvQuantFormat f = make_kv_format(40, 16, 4);
  std::vector<uint8_t> rec(static_cast<size_t>(f.token_bytes));
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), 1e6f}) {
    std::vector<float> x(40, 0.5f);
    x[37] = bad;
    for (const Isa isa : {Isa::Reference, Isa::Avx2, Isa::Avx512}) {
      if (!isa_supported(isa)) continue;
      try {
        quantize_token(f, x.data(), rec.data(), kernel_table(isa));
        FAIL() << "no error for " << bad << " with " << isa_name(isa);
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("channel"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("37"), std::string::npos) << e.what();
      }
    }
  }
}

// ---- every implementation against the reference ----

class KvCodecTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " not supported";
  }
};

struct Shape {
  int64_t channels, group;
};
constexpr Shape kShapes[] = {{1, 0},    {7, 0},    {8, 8},     {32, 8},   {30, 8},  {33, 16},
                             {64, 64},  {100, 32}, {128, 128}, {256, 64}, {96, 31}, {1024, 128},
                             {256, 16}, {48, 12},  {60, 5},    {72, 24},  {64, 1},  {45, 45}};

// Quantizes `n` random tokens into records `stride` bytes apart, starting `offset` bytes past a
// 64-byte boundary, with the reference.
Bytes make_records(const KvQuantFormat& f, int64_t n, int64_t stride, int64_t offset,
                   std::mt19937& rng) {
  Bytes recs(n * stride, offset);
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<float> x = random_token(f.channels, rng);
    quantize_token_ref(f, x.data(), recs.data + t * stride);
  }
  return recs;
}

TEST_P(KvCodecTest, QuantizeTokenWritesTheReferenceBytes) {
  std::mt19937 rng(base_seed() + 3u);
  for (const bool rel8 : {false, true})
    for (const int bits : kAllBits) {
      for (const Shape sh : kShapes) {
        const TestFormat tf = test_format(sh.channels, sh.group, bits, rel8, rng);
        const KvQuantFormat& f = tf.f;
        for (int rep = 0; rep < 3; ++rep) {
          const std::vector<float> x = random_token(sh.channels, rng);
          Bytes want(f.token_bytes, 0);
          Bytes got(f.token_bytes, 3);
          quantize_token_ref(f, x.data(), want.data);
          quantize_token(f, x.data(), got.data, kernel_table(GetParam()));
          for (int64_t i = 0; i < f.token_bytes; ++i) {
            ASSERT_EQ(got.data[i], want.data[i])
                << "bits=" << bits << " C=" << sh.channels << " g=" << sh.group << " rel8=" << rel8
                << " byte " << i;
          }
          EXPECT_EQ(got.data[f.token_bytes], 0xCD) << "wrote past the record";
        }
      }
    }
}

// Tolerance of q . x^ computed by the split formula in any order, against the dot product of q
// with the dequantized group: each f32 sum over len terms is within gamma(len) of exact (Higham
// §3.1), the two products and the final sum add three roundings, and fl(m + q s) in the
// dequantized values adds eps/2 per term.
double dot_tolerance(const float* q, const float* xh, const uint8_t* codes, int64_t len, int bits,
                     KvGroupParams p) {
  std::vector<uint8_t> c(static_cast<size_t>(len));
  unpack_kv_group_ref(codes, len, bits, c.data());
  double sum_qc = 0.0, sum_q = 0.0, sum_qx = 0.0;
  for (int64_t i = 0; i < len; ++i) {
    sum_qc += std::fabs(double{q[i]}) * c[static_cast<size_t>(i)];
    sum_q += std::fabs(double{q[i]});
    sum_qx += std::fabs(double{q[i]} * xh[i]);
  }
  const double terms = p.scale * sum_qc + std::fabs(p.min) * sum_q;
  return kBoundMargin * (static_cast<double>(len + 3) * kEps * terms + kEps * sum_qx);
}

TEST_P(KvCodecTest, DotAndAxpyMatchDequantizeThenCompute) {
  std::mt19937 rng(base_seed() + 4u);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const bool rel8 : {false, true})
    for (const int bits : kAllBits) {
      for (const Shape sh : kShapes) {
        const TestFormat tf = test_format(sh.channels, sh.group, bits, rel8, rng);
        const KvQuantFormat& f = tf.f;
        const Bytes rec = make_records(f, 1, f.token_bytes, 1, rng);
        std::vector<float> xh(static_cast<size_t>(f.channels));
        dequantize_token_ref(f, rec.data, xh.data());
        std::vector<float> q_store(static_cast<size_t>(f.channels + 1));
        float* q = q_store.data() + 1;  // misaligned by one float
        for (int64_t i = 0; i < f.channels; ++i) q[i] = normal(rng);
        for (int64_t g = 0; g < f.n_groups; ++g) {
          SCOPED_TRACE(::testing::Message() << "bits=" << bits << " C=" << sh.channels << " g="
                                            << sh.group << " rel8=" << rel8 << " group " << g);
          const KvGroupParams p = kv_group_params(f, rec.data, g);
          const uint8_t* codes = rec.data + f.group_code_offset(g);
          const int64_t c0 = f.group_first(g), len = f.group_len(g);
          double want = 0.0;
          for (int64_t i = 0; i < len; ++i)
            want += double{q[c0 + i]} * xh[static_cast<size_t>(c0 + i)];
          const double got =
              kv_dot(q + c0, codes, len, bits, p.scale, p.min, kernel_table(GetParam()));
          EXPECT_LE(std::fabs(got - want),
                    dot_tolerance(q + c0, xh.data() + c0, codes, len, bits, p));
          // axpy: the reference and every SIMD version give the same floats as out + p * x^.
          std::vector<float> out(static_cast<size_t>(len + 2), 0.25f), want_out(out);
          kv_axpy(-0.75f, codes, len, bits, p.scale, p.min, out.data() + 1,
                  kernel_table(GetParam()));
          for (int64_t i = 0; i < len; ++i) {
            want_out[static_cast<size_t>(i + 1)] += -0.75f * xh[static_cast<size_t>(c0 + i)];
          }
          EXPECT_EQ(out, want_out);  // includes the untouched guard elements at both ends
        }
      }
    }
}

TEST_P(KvCodecTest, BatchedTokensMatchPerTokenReference) {
  std::mt19937 rng(base_seed() + 5u);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const bool rel8 : {false, true})
    for (const int bits : kAllBits) {
      for (const Shape sh : kShapes) {
        const TestFormat tf = test_format(sh.channels, sh.group, bits, rel8, rng);
        const KvQuantFormat& f = tf.f;
        for (const int64_t n : {1, 7, 13, 32}) {
          const int64_t stride = f.token_bytes + 3;  // odd stride: records at every alignment
          const Bytes recs = make_records(f, n, stride, 5, rng);
          for (int64_t g = 0; g < f.n_groups; ++g) {
            SCOPED_TRACE(::testing::Message()
                         << "bits=" << bits << " C=" << sh.channels << " g=" << sh.group
                         << " rel8=" << rel8 << " group " << g << " n=" << n);
            const int64_t len = f.group_len(g);
            std::vector<float> q(static_cast<size_t>(len)), p(static_cast<size_t>(n));
            for (float& v : q) v = normal(rng);
            for (float& v : p) v = std::fabs(normal(rng));
            std::vector<float> scores(static_cast<size_t>(n));
            kv_dot_tokens(f, recs.data, stride, n, g, q.data(), scores.data(),
                          kernel_table(GetParam()));
            std::vector<float> out(static_cast<size_t>(len), 0.5f), want_out(out),
                xh(static_cast<size_t>(f.channels));
            kv_axpy_tokens(f, recs.data, stride, n, g, p.data(), out.data(),
                           kernel_table(GetParam()));
            for (int64_t t = 0; t < n; ++t) {
              const uint8_t* rec = recs.data + t * stride;
              const KvGroupParams gp = kv_group_params(f, rec, g);
              const uint8_t* codes = rec + f.group_code_offset(g);
              dequantize_token_ref(f, rec, xh.data());
              const float* xg = xh.data() + f.group_first(g);
              const float want = kv_dot_ref(q.data(), codes, len, bits, gp.scale, gp.min);
              // Both sides are within dot_tolerance of the exact value: twice it between them.
              EXPECT_LE(std::fabs(double{scores[static_cast<size_t>(t)]} - want),
                        2.0 * dot_tolerance(q.data(), xg, codes, len, bits, gp))
                  << "token " << t;
              kv_axpy_ref(p[static_cast<size_t>(t)], codes, len, bits, gp.scale, gp.min,
                          want_out.data());
            }
            EXPECT_EQ(out, want_out);
          }
        }
      }
    }
}

std::string isa_param_name(const ::testing::TestParamInfo<Isa>& info) {
  return isa_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KvCodecTest,
                         ::testing::Values(Isa::Reference, Isa::Avx2, Isa::Avx512), isa_param_name);

}  // namespace
}  // namespace wkvq
