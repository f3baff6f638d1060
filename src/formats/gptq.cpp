// Conversion between QuantizedMatrix (2, 4 or 8 bits) and the GPTQ tensor layout.
#include "formats/gptq.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace wkvq {
namespace {

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

// Packing of b-bit fields into 32-bit words, lowest bits first.
struct Packing {
  int bits;
  int64_t per_word;
  uint32_t mask;
  explicit Packing(int b)
      : bits(b), per_word(gptq_pack_factor(b)), mask(static_cast<uint32_t>((1u << b) - 1u)) {}
  int64_t words(int64_t n) const { return (n + per_word - 1) / per_word; }
  int shift(int64_t k) const { return static_cast<int>(bits * (k % per_word)); }
  uint32_t field(uint32_t word, int64_t k) const { return (word >> shift(k)) & mask; }
};

// Throws unless the fields of `word` at positions [valid, per_word) are zero.
void require_zero_padding(const Packing& p, uint32_t word, int64_t valid, const char* tensor,
                          const char* what, int64_t first_missing) {
  for (int64_t k = valid; k < p.per_word; ++k) {
    WKVQ_REQUIRE(p.field(word, k) == 0, "from_gptq: ", tensor, " holds ", p.field(word, k),
                 " in its padding, as the ", what, " ", first_missing + (k - valid),
                 ", which does not exist (padding must be 0)");
  }
}

}  // namespace

int64_t gptq_pack_factor(int bits) {
  WKVQ_REQUIRE(bits == 2 || bits == 4 || bits == 8, "GPTQ layout: ", bits,
               "-bit weights are not supported (2, 4 or 8 bits; 3-bit codes would straddle "
               "int32 words)");
  return 32 / bits;
}

GptqTensors to_gptq(const QuantizedMatrix& m, GptqZeros zeros, int bits,
                    const std::vector<int32_t>& order) {
  validate(m, "to_gptq");
  WKVQ_REQUIRE(m.bits == bits, "to_gptq: expected ", bits, "-bit weights, this matrix has ", m.bits,
               " bits");
  WKVQ_REQUIRE(order.empty() || static_cast<int64_t>(order.size()) == m.cols,
               "to_gptq: ", order.size(), " column indices for ", m.cols, " columns");
  const Packing p(bits);
  GptqTensors t;
  t.bits = bits;
  t.in = m.cols;
  t.out = m.rows;
  t.group = m.group;
  t.n_groups = m.n_groups;
  t.qweight.assign(static_cast<size_t>(p.words(t.in) * t.out), 0);
  t.qzeros.assign(static_cast<size_t>(t.n_groups * p.words(t.out)), 0);
  t.scales.assign(static_cast<size_t>(t.n_groups * t.out), 0);
  t.g_idx.resize(static_cast<size_t>(t.in));
  // src[i]: the column of m that holds input column i.
  std::vector<int64_t> src(static_cast<size_t>(t.in));
  for (int64_t j = 0; j < t.in; ++j) {
    const int64_t i = order.empty() ? j : order[static_cast<size_t>(j)];
    WKVQ_REQUIRE(i >= 0 && i < t.in, "to_gptq: column index ", i, " out of range");
    src[static_cast<size_t>(i)] = j;
  }
  for (int64_t i = 0; i < t.in; ++i) {
    t.g_idx[static_cast<size_t>(i)] = static_cast<int32_t>(src[static_cast<size_t>(i)] / t.group);
  }

  std::vector<uint8_t> row(static_cast<size_t>(m.cols));
  std::vector<uint8_t> buf;  // a loaded model's codes may be in the tile layout
  std::vector<uint32_t> qweight(t.qweight.size(), 0);
  for (int64_t o = 0; o < t.out; ++o) {
    unpack_row_codes_ref(row_codes_of(m, o, buf), m.cols, bits, row.data());
    for (int64_t i = 0; i < t.in; ++i) {
      qweight[static_cast<size_t>((i / p.per_word) * t.out + o)] |=
          static_cast<uint32_t>(row[static_cast<size_t>(src[static_cast<size_t>(i)])])
          << p.shift(i);
    }
  }
  for (size_t j = 0; j < qweight.size(); ++j) t.qweight[j] = as_int32(qweight[j]);

  const int64_t zero_words = p.words(t.out);
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
      qzeros[static_cast<size_t>(g * zero_words + o / p.per_word)] |= z << p.shift(o);
      t.scales[static_cast<size_t>(g * t.out + o)] = m.scales[pi];
    }
  }
  for (size_t j = 0; j < qzeros.size(); ++j) t.qzeros[j] = as_int32(qzeros[j]);
  return t;
}

std::vector<int32_t> gptq_column_order(const std::vector<int32_t>& g_idx, int64_t in,
                                       int64_t group) {
  WKVQ_REQUIRE(static_cast<int64_t>(g_idx.size()) == in && group >= 1, "g_idx: ", g_idx.size(),
               " entries for ", in, " input columns");
  const int64_t n_groups = (in + group - 1) / group;
  bool identity = true;
  std::vector<int64_t> count(static_cast<size_t>(n_groups), 0);
  for (int64_t i = 0; i < in; ++i) {
    const int32_t g = g_idx[static_cast<size_t>(i)];
    WKVQ_REQUIRE(g >= 0 && g < n_groups, "g_idx[", i, "] = ", g, ": outside [0, ", n_groups, ") (",
                 n_groups, " groups of ", group, " columns)");
    identity = identity && g == i / group;
    ++count[static_cast<size_t>(g)];
  }
  if (identity) return {};
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t want = std::min(group, in - g * group);
    WKVQ_REQUIRE(count[static_cast<size_t>(g)] == want, "g_idx: group ", g, " has ",
                 count[static_cast<size_t>(g)], " columns, expected ", want,
                 " (every group of an act-order checkpoint holds group_size columns)");
  }
  std::vector<int32_t> order(static_cast<size_t>(in));
  std::vector<int64_t> next(static_cast<size_t>(n_groups));
  for (int64_t g = 0; g < n_groups; ++g) next[static_cast<size_t>(g)] = g * group;
  for (int64_t i = 0; i < in; ++i) {
    order[static_cast<size_t>(next[static_cast<size_t>(g_idx[static_cast<size_t>(i)])]++)] =
        static_cast<int32_t>(i);
  }
  return order;
}

namespace {

// True when a tensor of n elements has the shape (a, b), a, b >= 0, without overflow.
bool holds(size_t n, int64_t a, int64_t b) {
  if (a < 0 || b < 0) return false;
  if (a == 0 || b == 0) return n == 0;
  return b <= std::numeric_limits<int64_t>::max() / a && n == static_cast<size_t>(a * b);
}

}  // namespace

QuantizedMatrix from_gptq(const GptqTensors& t, GptqZeros zeros, std::vector<int32_t>* order) {
  const Packing p(t.bits);
  WKVQ_REQUIRE(t.in >= 1 && t.out >= 0, "from_gptq: bad shape in=", t.in, ", out=", t.out);
  WKVQ_REQUIRE(t.group >= 1 && t.group <= t.in, "from_gptq: group size ", t.group,
               " outside [1, in=", t.in, "]");
  const int64_t n_groups = (t.in - 1) / t.group + 1;  // in >= 1; no overflow
  WKVQ_REQUIRE(t.n_groups == n_groups, "from_gptq: n_groups ", t.n_groups, ", expected ", n_groups,
               " = ceil(", t.in, " / ", t.group, ")");
  // Every size against the tensors before anything is allocated (the shape fields are not
  // trusted: a product that overflows is no tensor's size either).
  const int64_t in_words = p.words(t.in), zero_words = p.words(t.out);
  WKVQ_REQUIRE(holds(t.qweight.size(), in_words, t.out), "from_gptq: qweight has ",
               t.qweight.size(), " elements, expected (", in_words, ", ", t.out, ")");
  WKVQ_REQUIRE(holds(t.qzeros.size(), t.n_groups, zero_words), "from_gptq: qzeros has ",
               t.qzeros.size(), " elements, expected (", t.n_groups, ", ", zero_words, ")");
  WKVQ_REQUIRE(holds(t.scales.size(), t.n_groups, t.out), "from_gptq: scales has ", t.scales.size(),
               " elements, expected (", t.n_groups, ", ", t.out, ")");
  WKVQ_REQUIRE(t.g_idx.size() == static_cast<size_t>(t.in), "from_gptq: g_idx has ", t.g_idx.size(),
               " elements, expected ", t.in);
  QuantizedMatrix m = make_quantized_matrix(t.out, t.in, t.bits, t.group);
  std::vector<int32_t> cols = gptq_column_order(t.g_idx, t.in, t.group);
  WKVQ_REQUIRE(cols.empty() || order != nullptr, "from_gptq: g_idx is not i / group ",
               "(act-order), which this reader does not take");
  const int64_t in_valid = t.in - (in_words - 1) * p.per_word;  // fields used in the last word
  const int64_t out_valid = t.out - (zero_words - 1) * p.per_word;
  const uint32_t max_stored = zeros == GptqZeros::kMinusOne ? p.mask - 1 : p.mask;

  std::vector<uint8_t> row(static_cast<size_t>(t.in));
  for (int64_t o = 0; o < t.out; ++o) {
    for (int64_t i = 0; i < t.in; ++i) {
      const int64_t src = cols.empty() ? i : cols[static_cast<size_t>(i)];
      const uint32_t word =
          as_uint32(t.qweight[static_cast<size_t>((src / p.per_word) * t.out + o)]);
      row[static_cast<size_t>(i)] = static_cast<uint8_t>(p.field(word, src));
    }
    const uint32_t last = as_uint32(t.qweight[static_cast<size_t>((in_words - 1) * t.out + o)]);
    require_zero_padding(p, last, in_valid, "qweight", "input column", t.in);
    pack_row_codes_ref(row.data(), t.in, t.bits, m.codes.data() + o * m.row_bytes);
    for (int64_t g = 0; g < t.n_groups; ++g) {
      const uint32_t word =
          as_uint32(t.qzeros[static_cast<size_t>(g * zero_words + o / p.per_word)]);
      uint32_t z = p.field(word, o);
      if (zeros == GptqZeros::kMinusOne) {
        WKVQ_REQUIRE(z <= max_stored, "from_gptq: qzeros of row ", o, ", group ", g, " stores ", z,
                     ", i.e. zero point ", z + 1, " in the v1 layout: out of the ", t.bits,
                     "-bit range");
        z += 1;
      }
      const auto pi = static_cast<size_t>(o * m.n_groups + g);
      m.zeros[pi] = static_cast<uint8_t>(z);
      m.scales[pi] = t.scales[static_cast<size_t>(g * t.out + o)];
    }
  }
  if (t.out > 0) {
    for (int64_t g = 0; g < t.n_groups; ++g) {
      const uint32_t last =
          as_uint32(t.qzeros[static_cast<size_t>(g * zero_words + zero_words - 1)]);
      require_zero_padding(p, last, out_valid, "qzeros", "zero point of row", t.out);
    }
  }
  validate(m, "from_gptq");
  if (order != nullptr) *order = std::move(cols);
  return m;
}

}  // namespace wkvq
