// Conversion between QuantizedMatrix (4-bit) and the GPTQ tensor layout.
#include "formats/gptq.h"

#include <cstring>

#include "core/error.h"

namespace wkvq {
namespace {

constexpr int64_t kPerWord = 8;  // 4-bit values per int32

int64_t words(int64_t n) { return (n + kPerWord - 1) / kPerWord; }

int32_t as_int32(uint32_t bits) {
  int32_t v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

uint32_t as_uint32(int32_t v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

uint32_t nibble(uint32_t word, int64_t k) { return (word >> (4 * k)) & 15u; }

}  // namespace

GptqTensors to_gptq(const QuantizedMatrix& m, GptqZeros zeros) {
  validate(m, "to_gptq");
  WKVQ_REQUIRE(m.bits == 4, "to_gptq: GPTQ tensors hold 4-bit weights, this matrix has ", m.bits,
               " bits");
  GptqTensors t;
  t.in = m.cols;
  t.out = m.rows;
  t.group = m.group;
  t.n_groups = m.n_groups;
  t.qweight.assign(static_cast<size_t>(words(t.in) * t.out), 0);
  t.qzeros.assign(static_cast<size_t>(t.n_groups * words(t.out)), 0);
  t.scales.assign(static_cast<size_t>(t.n_groups * t.out), 0);
  t.g_idx.resize(static_cast<size_t>(t.in));
  for (int64_t i = 0; i < t.in; ++i)
    t.g_idx[static_cast<size_t>(i)] = static_cast<int32_t>(i / t.group);

  std::vector<uint8_t> row(static_cast<size_t>(m.cols));
  std::vector<uint32_t> qweight(t.qweight.size(), 0);
  for (int64_t o = 0; o < t.out; ++o) {
    unpack_row_codes_ref(m.row_codes(o), m.cols, 4, row.data());
    for (int64_t i = 0; i < t.in; ++i) {
      qweight[static_cast<size_t>((i / kPerWord) * t.out + o)] |=
          static_cast<uint32_t>(row[static_cast<size_t>(i)]) << (4 * (i % kPerWord));
    }
  }
  for (size_t j = 0; j < qweight.size(); ++j) t.qweight[j] = as_int32(qweight[j]);

  const int64_t zero_words = words(t.out);
  std::vector<uint32_t> qzeros(t.qzeros.size(), 0);
  for (int64_t o = 0; o < t.out; ++o) {
    for (int64_t g = 0; g < t.n_groups; ++g) {
      const auto pi = static_cast<size_t>(o * m.n_groups + g);
      uint32_t z = m.zeros[pi];
      if (zeros == GptqZeros::kMinusOne) {
        WKVQ_REQUIRE(z >= 1, "to_gptq: row ", o, ", group ", g,
                     " has zero point 0, which the GPTQ v1 layout (stored zero - 1) cannot hold; "
                     "export with the gptq_v2 layout (zeros stored as is)");
        z -= 1;
      }
      qzeros[static_cast<size_t>(g * zero_words + o / kPerWord)] |= z << (4 * (o % kPerWord));
      t.scales[static_cast<size_t>(g * t.out + o)] = m.scales[pi];
    }
  }
  for (size_t j = 0; j < qzeros.size(); ++j) t.qzeros[j] = as_int32(qzeros[j]);
  return t;
}

QuantizedMatrix from_gptq(const GptqTensors& t, GptqZeros zeros) {
  WKVQ_REQUIRE(t.in >= 1 && t.out >= 0, "from_gptq: bad shape in=", t.in, ", out=", t.out);
  WKVQ_REQUIRE(t.group >= 1 && t.group <= t.in, "from_gptq: group size ", t.group,
               " outside [1, in=", t.in, "]");
  QuantizedMatrix m = make_quantized_matrix(t.out, t.in, 4, t.group);
  WKVQ_REQUIRE(t.n_groups == m.n_groups, "from_gptq: n_groups ", t.n_groups, ", expected ",
               m.n_groups, " = ceil(", t.in, " / ", t.group, ")");
  const int64_t zero_words = words(t.out);
  WKVQ_REQUIRE(t.qweight.size() == static_cast<size_t>(words(t.in) * t.out),
               "from_gptq: qweight has ", t.qweight.size(), " elements, expected (", words(t.in),
               ", ", t.out, ")");
  WKVQ_REQUIRE(t.qzeros.size() == static_cast<size_t>(t.n_groups * zero_words),
               "from_gptq: qzeros has ", t.qzeros.size(), " elements, expected (", t.n_groups, ", ",
               zero_words, ")");
  WKVQ_REQUIRE(t.scales.size() == static_cast<size_t>(t.n_groups * t.out), "from_gptq: scales has ",
               t.scales.size(), " elements, expected (", t.n_groups, ", ", t.out, ")");
  WKVQ_REQUIRE(t.g_idx.size() == static_cast<size_t>(t.in), "from_gptq: g_idx has ", t.g_idx.size(),
               " elements, expected ", t.in);
  for (int64_t i = 0; i < t.in; ++i) {
    WKVQ_REQUIRE(t.g_idx[static_cast<size_t>(i)] == i / t.group, "from_gptq: g_idx[", i,
                 "] = ", t.g_idx[static_cast<size_t>(i)], ", expected ", i / t.group,
                 " (act-order / permuted groups are not supported)");
  }

  std::vector<uint8_t> row(static_cast<size_t>(t.in));
  for (int64_t o = 0; o < t.out; ++o) {
    for (int64_t i = 0; i < t.in; ++i) {
      const uint32_t word = as_uint32(t.qweight[static_cast<size_t>((i / kPerWord) * t.out + o)]);
      row[static_cast<size_t>(i)] = static_cast<uint8_t>(nibble(word, i % kPerWord));
    }
    pack_row_codes_ref(row.data(), t.in, 4, m.codes.data() + o * m.row_bytes);
    for (int64_t g = 0; g < t.n_groups; ++g) {
      const uint32_t word = as_uint32(t.qzeros[static_cast<size_t>(g * zero_words + o / kPerWord)]);
      uint32_t z = nibble(word, o % kPerWord);
      if (zeros == GptqZeros::kMinusOne) {
        WKVQ_REQUIRE(z <= 14, "from_gptq: qzeros of row ", o, ", group ", g,
                     " stores 15, i.e. zero point 16 in the v1 layout: out of the 4-bit range");
        z += 1;
      }
      const auto pi = static_cast<size_t>(o * m.n_groups + g);
      m.zeros[pi] = static_cast<uint8_t>(z);
      m.scales[pi] = t.scales[static_cast<size_t>(g * t.out + o)];
    }
  }
  validate(m, "from_gptq");
  return m;
}

}  // namespace wkvq
