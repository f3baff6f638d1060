// Weight quantization (formats/weight_quant.h, formats/gptq.h), tested by property: packing is
// exact, representable input gives zero error, the round-trip error stays under the derived bound
// per bit width, odd shapes and g = 0 work, NaN/Inf are rejected, the tile layout
// is the documented one (GPTQ tensors: weight_quant_gptq_test.cpp). All randomness is seeded; set
// WKVQ_TEST_SEED to replay another seed.
#include "formats/weight_quant.h"

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
#include "unit/weight_quant_support.h"

namespace wkvq {
namespace {

using wqtest::base_seed;
using wqtest::random_weights;

constexpr int kAllBits[] = {2, 3, 4, 8};
constexpr int64_t kOddCols[] = {1, 3, 4, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 200};

// The fp16 rounding of the scale: |s - scale| <= 2^-11 s (fp16 has an 11-bit significand).
constexpr double kFp16Rounding = 0.00048828125;  // 2^-11
// Slack for the f32 rounding of W / s before round(): relative 2^-24 of |W / s| <= 2^b, and of the
// final f32 values; far below the terms it is added to.
constexpr double kF32Slack = 1e-6;

// Round-trip bound of one element in units of its group's stored scale s (header of
// formats/weight_quant.h): half a step, plus the fp16 rounding of the scale moving the top of the
// range by up to (2^b - 1) |s - scale|.
double error_bound_in_steps(int bits) {
  const double qmax = (1 << bits) - 1;
  return 0.5 + qmax * kFp16Rounding + kF32Slack * qmax;
}

float stored_scale(const QuantizedMatrix& m, int64_t r, int64_t g) {
  return fp16_to_f32(m.scales[static_cast<size_t>(r * m.n_groups + g)]);
}

TEST(WeightQuant, PackUnpackIsExactForEveryBitWidth) {
  std::mt19937 rng(base_seed());
  for (const int bits : kAllBits) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    for (const int64_t cols : kOddCols) {
      SCOPED_TRACE(::testing::Message() << "bits=" << bits << " cols=" << cols);
      std::vector<uint8_t> codes(static_cast<size_t>(cols));
      for (uint8_t& c : codes) c = static_cast<uint8_t>(code(rng));
      const int64_t nbytes = weight_row_bytes(cols, bits);
      const int64_t unit = weight_pack_unit_cols(bits);
      ASSERT_EQ(nbytes, (cols + unit - 1) / unit * weight_pack_unit_bytes(bits));
      std::vector<uint8_t> packed(static_cast<size_t>(nbytes), 0xAB);
      pack_row_codes_ref(codes.data(), cols, bits, packed.data());
      std::vector<uint8_t> back(static_cast<size_t>(cols));
      unpack_row_codes_ref(packed.data(), cols, bits, back.data());
      EXPECT_EQ(back, codes);
      // The padding columns hold code 0.
      const int64_t padded = (cols + unit - 1) / unit * unit;
      std::vector<uint8_t> all(static_cast<size_t>(padded));
      unpack_row_codes_ref(packed.data(), padded, bits, all.data());
      for (int64_t c = cols; c < padded; ++c) EXPECT_EQ(all[static_cast<size_t>(c)], 0) << c;
    }
  }
  std::vector<uint8_t> bad = {4};
  std::vector<uint8_t> out(1);
  EXPECT_THROW(pack_row_codes_ref(bad.data(), 1, 2, out.data()), Error);
}

// The documented byte layouts, spelled out.
TEST(WeightQuant, PackedLayoutsAreTheDocumentedOnes) {
  std::vector<uint8_t> codes(64);
  for (size_t c = 0; c < codes.size(); ++c) codes[c] = static_cast<uint8_t>(c % 16);
  std::vector<uint8_t> p4(32);
  pack_row_codes_ref(codes.data(), 64, 4, p4.data());
  for (int b = 0; b < 2; ++b) {
    for (int j = 0; j < 16; ++j) {
      const int lo = codes[static_cast<size_t>(32 * b + j)];
      const int hi = codes[static_cast<size_t>(32 * b + j + 16)];
      EXPECT_EQ(p4[static_cast<size_t>(16 * b + j)], lo | (hi << 4))
          << "block " << b << " byte " << j;
    }
  }
  const std::vector<uint8_t> c3 = {1, 2, 3, 4, 5, 6, 7, 0};
  std::vector<uint8_t> p3(3);
  pack_row_codes_ref(c3.data(), 8, 3, p3.data());
  uint32_t word = 0;
  for (int i = 0; i < 8; ++i) word |= static_cast<uint32_t>(c3[static_cast<size_t>(i)]) << (3 * i);
  EXPECT_EQ(p3[0] | (p3[1] << 8) | (p3[2] << 16), static_cast<int>(word));
  const std::vector<uint8_t> c2 = {1, 2, 3, 0, 2};
  std::vector<uint8_t> p2(2);
  pack_row_codes_ref(c2.data(), 5, 2, p2.data());
  EXPECT_EQ(p2[0], 1 | (2 << 2) | (3 << 4));
  EXPECT_EQ(p2[1], 2);
}

TEST(WeightQuant, ShapeFieldsFollowTheGroupRules) {
  const QuantizedMatrix a = make_quantized_matrix(3, 200, 4, 128);
  EXPECT_EQ(a.group, 128);
  EXPECT_EQ(a.n_groups, 2);  // 128 + a shorter group of 72
  EXPECT_EQ(a.padded_cols, 224);
  EXPECT_EQ(a.row_bytes, 112);
  EXPECT_EQ(a.codes.size(), 3u * 112u);
  EXPECT_EQ(a.scales.size(), 6u);
  const QuantizedMatrix b = make_quantized_matrix(2, 200, 4, 0);  // one group per row
  EXPECT_EQ(b.group, 200);
  EXPECT_EQ(b.n_groups, 1);
  const QuantizedMatrix c = make_quantized_matrix(2, 100, 3, 128);  // row shorter than g
  EXPECT_EQ(c.group, 100);
  EXPECT_EQ(c.n_groups, 1);
  EXPECT_EQ(c.padded_cols, 104);
  EXPECT_EQ(c.row_bytes, 39);
  EXPECT_EQ(make_quantized_matrix(1, 9, 8, 4).row_bytes, 9);
  EXPECT_EQ(make_quantized_matrix(1, 9, 2, 4).row_bytes, 3);
  EXPECT_THROW(make_quantized_matrix(1, 8, 5, 4), Error);
  EXPECT_THROW(make_quantized_matrix(1, 0, 4, 4), Error);
  EXPECT_THROW(make_quantized_matrix(1, 8, 4, -1), Error);
}

// W = (q - z) * s with fp16 s, every group holding codes 0 and 2^b - 1: the quantizer recovers
// s, z and q exactly, so W^ == W bit for bit.
TEST(WeightQuant, RepresentableInputHasZeroError) {
  std::mt19937 rng(base_seed() + 1u);
  for (const int bits : kAllBits) {
    const int qmax = (1 << bits) - 1;
    for (const int64_t group : {int64_t{0}, int64_t{8}, int64_t{32}, int64_t{128}}) {
      for (const int64_t cols : {int64_t{2}, int64_t{33}, int64_t{200}, int64_t{1000}}) {
        SCOPED_TRACE(::testing::Message() << "bits=" << bits << " g=" << group << " cols=" << cols);
        const int64_t rows = 3;
        const QuantizedMatrix shape = make_quantized_matrix(rows, cols, bits, group);
        std::vector<float> w(static_cast<size_t>(rows * cols), 0.0f);
        std::uniform_int_distribution<int> code(0, qmax);
        std::uniform_real_distribution<float> log_scale(-9.0f, -1.0f);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t g = 0; g < shape.n_groups; ++g) {
            const int64_t c0 = g * shape.group;
            const int64_t len = std::min(shape.group, cols - c0);
            if (len < 2) continue;  // a 1-element group cannot hold both ends: leave it 0
            const float s = fp16_to_f32(f32_to_fp16(std::exp2(log_scale(rng))));
            const int z = code(rng);
            for (int64_t i = 0; i < len; ++i) {
              const int q = i == 0 ? 0 : i == 1 ? qmax : code(rng);
              w[static_cast<size_t>(r * cols + c0 + i)] = static_cast<float>(q - z) * s;
            }
          }
        }
        const QuantizedMatrix m = quantize_weights_ref(w.data(), rows, cols, bits, group);
        std::vector<float> back(w.size());
        dequantize_weights_ref(m, back.data());
        for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(back[i], w[i]) << "element " << i;
      }
    }
  }
}

TEST(WeightQuant, RoundTripErrorStaysUnderHalfAStepPerBitWidth) {
  std::mt19937 rng(base_seed() + 2u);
  for (const int bits : kAllBits) {
    for (const int64_t group : {int64_t{0}, int64_t{32}, int64_t{128}}) {
      for (const int64_t cols : {int64_t{1}, int64_t{33}, int64_t{200}, int64_t{1000}}) {
        SCOPED_TRACE(::testing::Message() << "bits=" << bits << " g=" << group << " cols=" << cols);
        const int64_t rows = 5;
        const std::vector<float> w = random_weights(rows * cols, rng);
        const QuantizedMatrix m = quantize_weights_ref(w.data(), rows, cols, bits, group);
        validate(m, "test");
        std::vector<float> back(w.size());
        dequantize_weights_ref(m, back.data());
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            const double s = stored_scale(m, r, c / m.group);
            const auto i = static_cast<size_t>(r * cols + c);
            ASSERT_LE(std::fabs(static_cast<double>(w[i]) - back[i]),
                      s * error_bound_in_steps(bits))
                << "row " << r << " col " << c << " w=" << w[i] << " w^=" << back[i];
          }
        }
      }
    }
  }
}

// Constant groups (positive, negative, zero) and one-sign groups: the range is widened to
// include 0, so the bound still holds; a zero group is exact.
TEST(WeightQuant, ConstantAndOneSignGroupsStayInBound) {
  for (const int bits : kAllBits) {
    for (const float c : {0.0f, 0.37f, -2.5f, 1e-7f, 300.0f}) {
      SCOPED_TRACE(::testing::Message() << "bits=" << bits << " value=" << c);
      const std::vector<float> w(64, c);
      const QuantizedMatrix m = quantize_weights_ref(w.data(), 1, 64, bits, 32);
      std::vector<float> back(64);
      dequantize_weights_ref(m, back.data());
      for (size_t i = 0; i < back.size(); ++i) {
        EXPECT_LE(std::fabs(back[i] - c), stored_scale(m, 0, 0) * error_bound_in_steps(bits));
        if (c == 0.0f) {
          EXPECT_EQ(back[i], 0.0f);
        }
      }
    }
    std::vector<float> positive(40);
    for (size_t i = 0; i < positive.size(); ++i) positive[i] = 0.5f + 0.01f * static_cast<float>(i);
    const QuantizedMatrix m = quantize_weights_ref(positive.data(), 1, 40, bits, 0);
    EXPECT_EQ(m.zeros[0], 0);  // range [0, max]: zero point 0
    std::vector<float> back(40);
    dequantize_weights_ref(m, back.data());
    for (size_t i = 0; i < back.size(); ++i) {
      EXPECT_LE(std::fabs(back[i] - positive[i]),
                stored_scale(m, 0, 0) * error_bound_in_steps(bits));
    }
  }
}

// LWC clipping: hi and lo shrink; every W^ stays within half a step of [lo, hi].
TEST(WeightQuant, ClippingFactorsShrinkTheRange) {
  std::mt19937 rng(base_seed() + 3u);
  const int64_t rows = 4, cols = 96, group = 32;
  const std::vector<float> w = random_weights(rows * cols, rng, 0.05f);
  const std::vector<float> clip_hi(12, 0.7f), clip_lo(12, 0.9f);
  const QuantizedMatrix m =
      quantize_weights_ref(w.data(), rows, cols, 4, group, clip_hi.data(), clip_lo.data());
  std::vector<float> back(w.size());
  dequantize_weights_ref(m, back.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < 3; ++g) {
      float mx = 0.0f, mn = 0.0f;
      for (int64_t i = 0; i < group; ++i) {
        mx = std::max(mx, w[static_cast<size_t>(r * cols + g * group + i)]);
        mn = std::min(mn, w[static_cast<size_t>(r * cols + g * group + i)]);
      }
      const double slack = stored_scale(m, r, g) * error_bound_in_steps(4);
      for (int64_t i = 0; i < group; ++i) {
        const double v = back[static_cast<size_t>(r * cols + g * group + i)];
        EXPECT_LE(v, 0.7 * mx + slack);
        EXPECT_GE(v, 0.9 * mn - slack);
      }
    }
  }
  const std::vector<float> bad(12, 1.5f);
  EXPECT_THROW(quantize_weights_ref(w.data(), rows, cols, 4, group, bad.data()), Error);
}

TEST(WeightQuant, GroupZeroQuantizesEachRowAsOneGroup) {
  std::mt19937 rng(base_seed() + 4u);
  const std::vector<float> w = random_weights(3 * 77, rng);
  const QuantizedMatrix m = quantize_weights_ref(w.data(), 3, 77, 4, 0);
  ASSERT_EQ(m.n_groups, 1);
  for (int64_t r = 0; r < 3; ++r) {
    const WeightGroupParams p = weight_group_params_ref(w.data() + r * 77, 77, 4, 1.0f, 1.0f);
    EXPECT_EQ(m.scales[static_cast<size_t>(r)], p.scale_fp16);
    EXPECT_EQ(m.zeros[static_cast<size_t>(r)], p.zero);
  }
  // The stored codes are the ones weight_code reads back, and the padding is zero.
  for (int64_t c = 0; c < 77; ++c) EXPECT_LE(weight_code(m, 1, c), 15);
  std::vector<uint8_t> padded(static_cast<size_t>(m.padded_cols));
  unpack_row_codes_ref(m.row_codes(2), m.padded_cols, 4, padded.data());
  for (int64_t c = 77; c < m.padded_cols; ++c) EXPECT_EQ(padded[static_cast<size_t>(c)], 0);
}

// The tile layout holds every (row, group) parameter and every code byte at its documented place,
// 0 in the rows that pad the last tile and the bytes that pad the last block; the codes moved
// there (bytes() unchanged, tile_bytes() the parameters' copy and the padding) read back the same
// through copy_row_codes, weight_code and dequantize_row_ref.
TEST(WeightQuant, TileLayoutIsTheDocumentedOne) {
  std::mt19937 rng(base_seed() + 6u);
  const int64_t rows = 37;  // two whole tiles of 16 and 5 rows of a third
  const int64_t cols = 300;
  const std::vector<float> w = random_weights(rows * cols, rng);
  QuantizedMatrix m = quantize_weights_ref(w.data(), rows, cols, 4, 128);
  const QuantizedMatrix plain = m;
  add_tile_layout(m);
  ASSERT_EQ(m.n_groups, 3);
  ASSERT_EQ(m.tile_scales.size(), static_cast<size_t>(3 * 3 * kParamTileRows));
  ASSERT_EQ(m.tile_zeros.size(), m.tile_scales.size());
  const int64_t blocks = 3;  // 160 code bytes per row: two blocks of 64 and one of 32 + padding
  ASSERT_EQ(m.row_bytes, 160);
  ASSERT_EQ(m.tile_codes.size(), static_cast<size_t>(3 * blocks * kParamTileRows * 64));
  EXPECT_TRUE(m.codes.empty());
  EXPECT_EQ(m.bytes(), plain.bytes());
  EXPECT_EQ(m.tile_bytes(), 3 * static_cast<int64_t>(m.tile_scales.size()) +
                                static_cast<int64_t>(m.tile_codes.size() - plain.codes.size()));
  EXPECT_NO_THROW(validate(m, "tiled"));
  EXPECT_EQ(row_major_codes(m), plain.codes);
  std::vector<uint8_t> some(static_cast<size_t>(5 * m.row_bytes));
  copy_row_codes(m, 17, 5, some.data());
  EXPECT_TRUE(std::equal(some.begin(), some.end(), plain.row_codes(17)));
  std::vector<float> from_rows(static_cast<size_t>(cols)), from_tiles(static_cast<size_t>(cols));
  for (const int64_t r : {int64_t{0}, int64_t{16}, rows - 1}) {
    dequantize_row_ref(plain, r, from_rows.data());
    dequantize_row_ref(m, r, from_tiles.data());
    EXPECT_EQ(from_tiles, from_rows) << "row " << r;
    for (const int64_t c : {int64_t{0}, int64_t{31}, int64_t{32}, cols - 1}) {
      EXPECT_EQ(weight_code(m, r, c), weight_code(plain, r, c)) << r << " " << c;
    }
  }
  size_t next = 0;  // the copy in storage order: tile, block, line, row of the tile, byte
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t b = 0; b < blocks; ++b) {
      for (int64_t line = 0; line < kParamTileRows; ++line) {
        for (int64_t r = 0; r < kParamTileRows; ++r) {
          for (int64_t j = 0; j < 4; ++j, ++next) {
            const int64_t row = t * kParamTileRows + r;
            const int64_t byte = b * 64 + line * 4 + j;
            const uint8_t want = row < rows && byte < m.row_bytes ? plain.row_codes(row)[byte] : 0;
            ASSERT_EQ(m.tile_codes[next], want) << "row " << row << " byte " << byte;
          }
        }
      }
    }
  }
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t g = 0; g < m.n_groups; ++g) {
      for (int64_t r = 0; r < kParamTileRows; ++r) {
        const auto at = static_cast<size_t>((t * m.n_groups + g) * kParamTileRows + r);
        const int64_t row = t * kParamTileRows + r;
        const auto from = static_cast<size_t>(row * m.n_groups + g);
        EXPECT_EQ(m.tile_scales[at], row < rows ? m.scales[from] : 0) << row << " " << g;
        EXPECT_EQ(m.tile_zeros[at], row < rows ? m.zeros[from] : 0) << row << " " << g;
      }
    }
  }
}

// 8-bit W: two 64-byte chunks per 128 columns (a row of 130 codes: 4 chunks, the last lane of
// its codes partial), its codes read back the same.
TEST(WeightQuant, TileLayoutOf8BitW) {
  std::mt19937 rng(base_seed() + 7u);
  const int64_t rows = 20;
  const int64_t cols = 130;
  const std::vector<float> w = random_weights(rows * cols, rng);
  QuantizedMatrix m = quantize_weights_ref(w.data(), rows, cols, 8, 128);
  const QuantizedMatrix plain = m;
  add_tile_layout(m);
  EXPECT_EQ(m.tile_scales.size(), static_cast<size_t>(2 * 2 * kParamTileRows));
  const int64_t chunks = 4;
  ASSERT_EQ(m.tile_codes.size(), static_cast<size_t>(2 * chunks * kParamTileRows * 64));
  EXPECT_TRUE(m.codes.empty());
  EXPECT_EQ(m.bytes(), plain.bytes());
  EXPECT_EQ(row_major_codes(m), plain.codes);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < chunks * 64; ++j) {
      const auto at = static_cast<size_t>(((r / 16 * chunks + j / 64) * 16 + j % 64 / 4) * 64 +
                                          r % 16 * 4 + j % 4);
      ASSERT_EQ(m.tile_codes[at], j < cols ? plain.row_codes(r)[j] : 0) << r << " " << j;
    }
  }
  EXPECT_NO_THROW(validate(m, "tiled 8-bit"));
}

TEST(WeightQuant, NonFiniteWeightsAreRejectedWithTheirPosition) {
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity()}) {
    std::vector<float> w(4 * 10, 0.1f);
    w[2 * 10 + 5] = bad;
    try {
      quantize_weights_ref(w.data(), 4, 10, 4, 0);
      FAIL() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("row 2, column 5"), std::string::npos) << e.what();
    }
  }
  const std::vector<float> huge = {1e30f, -1e30f};  // the scale would overflow fp16
  EXPECT_THROW(quantize_weights_ref(huge.data(), 1, 2, 4, 0), Error);
}

TEST(WeightQuant, ValidateRejectsInconsistentMatrices) {
  QuantizedMatrix m = make_quantized_matrix(2, 40, 4, 32);
  validate(m, "ok");
  m.zeros[1] = 16;
  EXPECT_THROW(validate(m, "zeros"), Error);
  m = make_quantized_matrix(2, 40, 4, 32);
  m.codes.pop_back();
  EXPECT_THROW(validate(m, "codes"), Error);
  m = make_quantized_matrix(2, 40, 4, 32);
  m.n_groups = 1;
  EXPECT_THROW(validate(m, "groups"), Error);
}

}  // namespace
}  // namespace wkvq
