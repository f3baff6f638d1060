// The GPTQ tensor layout of quantized weights (formats/gptq.h): both zero conventions round-trip
// exactly, bits sit where the convention says, what it cannot represent is rejected, mutated
// tensors give a matrix or an error. All randomness is seeded; set WKVQ_TEST_SEED to replay
// another seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/gptq.h"
#include "formats/weight_quant.h"
#include "unit/weight_quant_support.h"

namespace wkvq {
namespace {

using wqtest::base_seed;
using wqtest::random_weights;

TEST(WeightQuantGptq, RoundTripsExactlyInBothZeroConventions) {
  std::mt19937 rng(base_seed() + 5u);
  for (const int64_t in : {int64_t{8}, int64_t{33}, int64_t{200}}) {
    for (const int64_t out : {int64_t{1}, int64_t{5}, int64_t{8}, int64_t{17}}) {
      for (const int64_t group : {int64_t{0}, int64_t{32}, int64_t{128}}) {
        SCOPED_TRACE(::testing::Message() << "in=" << in << " out=" << out << " g=" << group);
        const std::vector<float> w = random_weights(out * in, rng, 0.0f);
        const QuantizedMatrix m = quantize_weights_ref(w.data(), out, in, 4, group);
        for (const GptqZeros z : {GptqZeros::kAsIs, GptqZeros::kMinusOne}) {
          bool has_zero_0 = false;
          for (const uint8_t v : m.zeros) has_zero_0 = has_zero_0 || v == 0;
          if (z == GptqZeros::kMinusOne && has_zero_0) continue;  // unrepresentable in v1
          const GptqTensors t = to_gptq(m, z);
          EXPECT_EQ(t.qweight.size(), static_cast<size_t>((in + 7) / 8 * out));
          EXPECT_EQ(t.qzeros.size(), static_cast<size_t>(m.n_groups * ((out + 7) / 8)));
          EXPECT_EQ(t.scales.size(), static_cast<size_t>(m.n_groups * out));
          const QuantizedMatrix back = from_gptq(t, z);
          EXPECT_EQ(back.codes, m.codes);
          EXPECT_EQ(back.scales, m.scales);
          EXPECT_EQ(back.zeros, m.zeros);
          EXPECT_EQ(back.group, m.group);
        }
      }
    }
  }
}

TEST(WeightQuantGptq, BitsSitWhereTheConventionSays) {
  QuantizedMatrix m = make_quantized_matrix(9, 10, 4, 0);  // out = 9, in = 10
  std::vector<uint8_t> row(10);
  for (int64_t o = 0; o < 9; ++o) {
    for (int64_t i = 0; i < 10; ++i)
      row[static_cast<size_t>(i)] = static_cast<uint8_t>((o + 3 * i) % 16);
    pack_row_codes_ref(row.data(), 10, 4, m.codes.data() + o * m.row_bytes);
    m.zeros[static_cast<size_t>(o)] = static_cast<uint8_t>(o + 1);
    m.scales[static_cast<size_t>(o)] = f32_to_fp16(0.01f * static_cast<float>(o + 1));
  }
  const GptqTensors t = to_gptq(m, GptqZeros::kMinusOne);
  for (int64_t o = 0; o < 9; ++o) {
    for (int64_t i = 0; i < 10; ++i) {
      const auto word = static_cast<uint32_t>(t.qweight[static_cast<size_t>((i / 8) * 9 + o)]);
      EXPECT_EQ((word >> (4 * (i % 8))) & 15u, static_cast<uint32_t>((o + 3 * i) % 16));
    }
    const auto zword = static_cast<uint32_t>(t.qzeros[static_cast<size_t>(o / 8)]);
    EXPECT_EQ((zword >> (4 * (o % 8))) & 15u, static_cast<uint32_t>(o));  // zero - 1
    EXPECT_EQ(t.scales[static_cast<size_t>(o)], m.scales[static_cast<size_t>(o)]);
  }
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(t.g_idx[static_cast<size_t>(i)], 0);
}

TEST(WeightQuantGptq, RejectsWhatItCannotRepresent) {
  const QuantizedMatrix m8 = make_quantized_matrix(8, 8, 8, 0);
  EXPECT_THROW(to_gptq(m8, GptqZeros::kAsIs), Error);
  const QuantizedMatrix zero0 = make_quantized_matrix(8, 8, 4, 0);  // all zero points 0
  EXPECT_THROW(to_gptq(zero0, GptqZeros::kMinusOne), Error);
  GptqTensors t = to_gptq(zero0, GptqZeros::kAsIs);
  t.qweight.pop_back();
  EXPECT_THROW(from_gptq(t, GptqZeros::kAsIs), Error);
  t = to_gptq(zero0, GptqZeros::kAsIs);
  t.g_idx[3] = 1;
  EXPECT_THROW(from_gptq(t, GptqZeros::kAsIs), Error);
  t = to_gptq(zero0, GptqZeros::kAsIs);
  t.qzeros[0] = 0xF;  // v1: stored 15 = zero point 16
  EXPECT_THROW(from_gptq(t, GptqZeros::kMinusOne), Error);
}

// 1-3 edits of t: a bit flip or a random value in qweight, qzeros, scales or g_idx, a vector cut
// to half or extended by one, or a size field set to a small, zero, negative or huge value.
void mutate(GptqTensors& t, std::mt19937& rng) {
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    auto poke = [&rng](auto& v) {
      if (v.empty()) return;
      auto& x = v[rng() % v.size()];
      using T = std::remove_reference_t<decltype(x)>;
      x = rng() % 2 == 0 ? static_cast<T>(x ^ static_cast<T>(1u << (rng() % (8 * sizeof(T)))))
                         : static_cast<T>(rng());
    };
    auto resize = [&rng](auto& v) { v.resize(rng() % 2 == 0 ? v.size() / 2 : v.size() + 1); };
    auto field = [&rng]() -> int64_t {
      const int64_t vals[] = {-1, 0, 1, 3, 17, 64, int64_t{1} << 40};
      return vals[rng() % 7];
    };
    switch (rng() % 9) {
      case 0:
        poke(t.qweight);
        break;
      case 1:
        poke(t.qzeros);
        break;
      case 2:
        poke(t.scales);
        break;
      case 3:
        poke(t.g_idx);
        break;
      case 4:
        resize(rng() % 2 == 0 ? t.qweight : t.g_idx);
        break;
      case 5:
        resize(rng() % 2 == 0 ? t.qzeros : t.g_idx);
        break;
      case 6:
        t.in = field();
        break;
      case 7:
        t.out = field();
        break;
      default:
        (rng() % 2 == 0 ? t.group : t.n_groups) = field();
        break;
    }
  }
}

// The GPTQ tensors' reader never trusts them (issue 15: corrupt qzeros / g_idx, wrong shapes):
// seeded mutations of valid tensors (bit flips and random values in qweight, qzeros, scales and
// g_idx, vectors cut or extended, the size fields changed, up to 2^40) each give a valid matrix of
// the stated shape with a column order that is a permutation, or a wkvq::Error; nothing else
// (another exception, a crash, a sanitizer report in the ASan build). A unit-level sweep beside the
// libFuzzer targets (fuzz_gptq_config fuzzes the config beside fixed tensors): ~3000 cases, ms.
TEST(WeightQuantGptq, MutatedTensorsGiveAMatrixOrAnError) {
  std::mt19937 rng(base_seed() + 11u);
  int accepted = 0, refused = 0;
  for (int c = 0; c < 3000; ++c) {
    const int bits = c % 3 == 0 ? 2 : c % 3 == 1 ? 4 : 8;
    const int64_t p = 32 / bits, out = p * (1 + static_cast<int64_t>(rng() % 3));
    const int64_t group = 16, in = group * (1 + static_cast<int64_t>(rng() % 4));
    const std::vector<float> w = random_weights(out * in, rng, 0.0f);
    QuantizedMatrix m = quantize_weights_ref(w.data(), out, in, bits, group);
    for (uint8_t& z : m.zeros) z = static_cast<uint8_t>(std::max<int>(z, 1));  // v1-storable
    std::vector<int32_t> order(static_cast<size_t>(in));
    for (int64_t j = 0; j < in; ++j) order[static_cast<size_t>(j)] = static_cast<int32_t>(j);
    if (rng() % 2 == 0) std::shuffle(order.begin(), order.end(), rng);
    const GptqZeros zc = rng() % 2 == 0 ? GptqZeros::kMinusOne : GptqZeros::kAsIs;
    GptqTensors t = to_gptq(m, zc, bits, order);
    mutate(t, rng);
    try {
      std::vector<int32_t> got_order;
      const QuantizedMatrix r = from_gptq(t, zc, &got_order);
      validate(r, "mutated");
      EXPECT_EQ(r.rows, t.out);
      EXPECT_EQ(r.cols, t.in);
      if (!got_order.empty()) {
        std::vector<int32_t> sorted = got_order;
        std::sort(sorted.begin(), sorted.end());
        for (size_t j = 0; j < sorted.size(); ++j) {
          ASSERT_EQ(sorted[j], static_cast<int32_t>(j)) << "case " << c;
        }
      }
      ++accepted;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(accepted, 0) << "no mutation left a valid matrix: the sweep would test only refusals";
  EXPECT_GT(refused, 0);
  std::printf("[ info ] %d mutated GPTQ tensor sets: %d read, %d refused\n", accepted + refused,
              accepted, refused);
}

}  // namespace
}  // namespace wkvq
