// Scalar reference weight quantizer: the definition the kernels and exporters are tested against.
#include "formats/weight_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace wkvq {
namespace {

constexpr float kMinScale = 1e-5f;  // design.md §2.1: scale = max(range / (2^b - 1), 1e-5)

void require_bits(int bits) {
  WKVQ_REQUIRE(bits == 2 || bits == 3 || bits == 4 || bits == 8,
               "weight quantization: bits must be 2, 3, 4 or 8, got ", bits);
}

int max_code(int bits) { return (1 << bits) - 1; }

// Rounds half to even and clamps into [0, qmax], all in float (no int conversion of +-inf).
uint8_t to_code(float v, int qmax) {
  v = std::nearbyint(v);
  v = std::min(std::max(v, 0.0f), static_cast<float>(qmax));
  return static_cast<uint8_t>(v);
}

}  // namespace

int64_t weight_pack_unit_cols(int bits) {
  require_bits(bits);
  switch (bits) {
    case 2:
      return 4;
    case 3:
      return 8;
    case 4:
      return kQ4BlockCols;
    default:
      return 1;
  }
}

int64_t weight_pack_unit_bytes(int bits) {
  require_bits(bits);
  switch (bits) {
    case 3:
      return 3;
    case 4:
      return static_cast<int64_t>(sizeof(Q4Block));
    default:
      return 1;
  }
}

int64_t weight_row_bytes(int64_t cols, int bits) {
  const int64_t unit = weight_pack_unit_cols(bits);
  return (cols + unit - 1) / unit * weight_pack_unit_bytes(bits);
}

int64_t weight_group_size(int64_t cols, int64_t group) {
  WKVQ_REQUIRE(group >= 0, "weight quantization: group size must be >= 0, got ", group);
  return (group == 0 || group >= cols) ? cols : group;
}

int64_t QuantizedMatrix::bytes() const {
  return rows * row_bytes + static_cast<int64_t>(scales.size() * sizeof(uint16_t) + zeros.size());
}

int64_t QuantizedMatrix::tile_bytes() const {
  const int64_t padding =
      tile_codes.empty() ? 0 : static_cast<int64_t>(tile_codes.size()) - rows * row_bytes;
  return static_cast<int64_t>(tile_scales.size() * sizeof(uint16_t) + tile_zeros.size()) + padding;
}

const uint8_t* QuantizedMatrix::row_codes(int64_t r) const {
  WKVQ_ASSERT(r >= 0 && r < rows && codes.size() == static_cast<size_t>(rows * row_bytes));
  return codes.data() + r * row_bytes;
}

namespace {

// 64-byte chunks per row in QuantizedMatrix::tile_codes: 1 (4 bits) or 2 (8 bits) per 128 columns.
int64_t tile_chunks(const QuantizedMatrix& m) {
  return (m.cols + kTileBlockCols - 1) / kTileBlockCols * (m.bits / 4);
}

}  // namespace

int64_t tile_codes_bytes(const QuantizedMatrix& m) {
  const int64_t tiles = (m.rows + kParamTileRows - 1) / kParamTileRows;
  return tiles * tile_chunks(m) * kParamTileRows * kTileLineBytes;
}

namespace {

constexpr int64_t kTileLaneBytes = kTileLineBytes / kParamTileRows;  // a row's bytes per line

// Where byte j of row r of the packed codes lies in QuantizedMatrix::tile_codes (weight_quant.h),
// for rows of `blocks` chunks.
size_t tile_code_offset(int64_t r, int64_t j, int64_t blocks) {
  const int64_t t = r / kParamTileRows;
  const int64_t b = j / kTileLineBytes;
  const int64_t k = j % kTileLineBytes / kTileLaneBytes;
  return static_cast<size_t>(((t * blocks + b) * kParamTileRows + k) * kTileLineBytes +
                             r % kParamTileRows * kTileLaneBytes + j % kTileLaneBytes);
}

// Bytes of a lane that hold row bytes from j on (the last lane of an 8-bit row may be partial).
size_t lane_bytes(const QuantizedMatrix& m, int64_t j) {
  return static_cast<size_t>(std::min(kTileLaneBytes, m.row_bytes - j));
}

// QuantizedMatrix::tile_codes of a 4- or 8-bit m with row-major codes.
std::vector<uint8_t> tile_codes_of(const QuantizedMatrix& m) {
  const int64_t blocks = tile_chunks(m);
  std::vector<uint8_t> out(static_cast<size_t>(tile_codes_bytes(m)), 0);
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* row = m.row_codes(r);
    for (int64_t j = 0; j < m.row_bytes; j += kTileLaneBytes) {
      std::memcpy(out.data() + tile_code_offset(r, j, blocks), row + j, lane_bytes(m, j));
    }
  }
  return out;
}

}  // namespace

void copy_row_codes(const QuantizedMatrix& m, int64_t r0, int64_t rows, uint8_t* dst) {
  WKVQ_ASSERT(r0 >= 0 && rows >= 0 && r0 + rows <= m.rows);
  if (m.codes.size() == static_cast<size_t>(m.rows * m.row_bytes)) {
    std::memcpy(dst, m.codes.data() + r0 * m.row_bytes, static_cast<size_t>(rows * m.row_bytes));
    return;
  }
  WKVQ_ASSERT((m.bits == 4 || m.bits == 8) &&
              m.tile_codes.size() == static_cast<size_t>(tile_codes_bytes(m)));
  const int64_t blocks = tile_chunks(m);
  for (int64_t r = r0; r < r0 + rows; ++r) {
    uint8_t* out = dst + (r - r0) * m.row_bytes;
    for (int64_t j = 0; j < m.row_bytes; j += kTileLaneBytes) {
      std::memcpy(out + j, m.tile_codes.data() + tile_code_offset(r, j, blocks), lane_bytes(m, j));
    }
  }
}

const uint8_t* row_codes_of(const QuantizedMatrix& m, int64_t r, std::vector<uint8_t>& buf) {
  if (!m.codes_in_tiles()) return m.row_codes(r);
  buf.resize(static_cast<size_t>(m.row_bytes));
  copy_row_codes(m, r, 1, buf.data());
  return buf.data();
}

std::vector<uint8_t> row_major_codes(const QuantizedMatrix& m) {
  std::vector<uint8_t> out(static_cast<size_t>(m.rows * m.row_bytes));
  copy_row_codes(m, 0, m.rows, out.data());
  return out;
}

void add_tile_layout(QuantizedMatrix& m) {
  WKVQ_REQUIRE(m.scales.size() == static_cast<size_t>(m.rows * m.n_groups) &&
                   m.zeros.size() == m.scales.size(),
               "add_tile_layout: ", m.scales.size(), " scales and ", m.zeros.size(), " zeros for ",
               m.rows, " rows of ", m.n_groups, " groups");
  const int64_t tiles = (m.rows + kParamTileRows - 1) / kParamTileRows;
  const auto n = static_cast<size_t>(tiles * m.n_groups * kParamTileRows);
  m.tile_scales.assign(n, 0);
  m.tile_zeros.assign(n, 0);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t g = 0; g < m.n_groups; ++g) {
      const auto to = static_cast<size_t>(((r / kParamTileRows) * m.n_groups + g) * kParamTileRows +
                                          r % kParamTileRows);
      const auto from = static_cast<size_t>(r * m.n_groups + g);
      m.tile_scales[to] = m.scales[from];
      m.tile_zeros[to] = m.zeros[from];
    }
  }
  if ((m.bits == 4 || m.bits == 8) && m.tile_codes.empty()) {
    m.tile_codes = tile_codes_of(m);
    std::vector<uint8_t>().swap(m.codes);  // the tile layout holds them now
  }
}

QuantizedMatrix make_quantized_matrix(int64_t rows, int64_t cols, int bits, int64_t group) {
  require_bits(bits);
  WKVQ_REQUIRE(rows >= 0 && cols >= 1, "weight quantization: bad shape (", rows, ", ", cols,
               "): need rows >= 0 and cols >= 1");
  QuantizedMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.bits = bits;
  m.group = weight_group_size(cols, group);
  m.n_groups = (cols + m.group - 1) / m.group;
  const int64_t unit = weight_pack_unit_cols(bits);
  m.padded_cols = (cols + unit - 1) / unit * unit;
  m.row_bytes = weight_row_bytes(cols, bits);
  m.codes.assign(static_cast<size_t>(rows * m.row_bytes), 0);
  m.scales.assign(static_cast<size_t>(rows * m.n_groups), 0);
  m.zeros.assign(static_cast<size_t>(rows * m.n_groups), 0);
  return m;
}

void validate(const QuantizedMatrix& m, const char* what) {
  WKVQ_REQUIRE(m.bits == 2 || m.bits == 3 || m.bits == 4 || m.bits == 8, what,
               ": bits must be 2, 3, 4 or 8, got ", m.bits);
  WKVQ_REQUIRE(m.rows >= 0 && m.cols >= 1, what, ": bad shape (", m.rows, ", ", m.cols, ")");
  WKVQ_REQUIRE(m.group >= 1 && m.group <= m.cols, what, ": group size ", m.group, " outside [1, ",
               m.cols, "]");
  const QuantizedMatrix shape = make_quantized_matrix(0, m.cols, m.bits, m.group);
  WKVQ_REQUIRE(m.n_groups == shape.n_groups, what, ": n_groups ", m.n_groups, ", expected ",
               shape.n_groups);
  WKVQ_REQUIRE(m.padded_cols == shape.padded_cols && m.row_bytes == shape.row_bytes, what,
               ": padded_cols/row_bytes ", m.padded_cols, "/", m.row_bytes, ", expected ",
               shape.padded_cols, "/", shape.row_bytes);
  const auto n_params = static_cast<size_t>(m.rows * m.n_groups);
  const bool tiled = m.codes_in_tiles();
  WKVQ_REQUIRE(tiled || m.codes.size() == static_cast<size_t>(m.rows * m.row_bytes), what,
               ": codes hold ", m.codes.size(), " bytes, expected ", m.rows * m.row_bytes);
  const bool tile_bits = m.bits == 4 || m.bits == 8;
  WKVQ_REQUIRE(
      !tiled || (tile_bits && m.tile_codes.size() == static_cast<size_t>(tile_codes_bytes(m))),
      what, ": tile layout of ", m.tile_codes.size(), " code bytes, expected 4 or 8 ", "bits and ",
      tile_bits ? tile_codes_bytes(m) : 0);
  WKVQ_REQUIRE(m.scales.size() == n_params && m.zeros.size() == n_params, what, ": ",
               m.scales.size(), " scales and ", m.zeros.size(), " zeros, expected ", n_params);
  for (size_t i = 0; i < n_params; ++i) {
    WKVQ_REQUIRE(m.zeros[i] <= max_code(m.bits), what, ": zero point ", int{m.zeros[i]}, " of row ",
                 static_cast<int64_t>(i) / m.n_groups, " group ",
                 static_cast<int64_t>(i) % m.n_groups, " exceeds ", max_code(m.bits));
    WKVQ_REQUIRE(std::isfinite(fp16_to_f32(m.scales[i])), what, ": scale of row ",
                 static_cast<int64_t>(i) / m.n_groups, " group ",
                 static_cast<int64_t>(i) % m.n_groups, " is not finite");
  }
}

void pack_row_codes_ref(const uint8_t* codes, int64_t cols, int bits, uint8_t* dst) {
  const int64_t nbytes = weight_row_bytes(cols, bits);
  std::fill(dst, dst + nbytes, uint8_t{0});
  for (int64_t c = 0; c < cols; ++c) {
    const auto q = static_cast<uint32_t>(codes[c]);
    WKVQ_REQUIRE(q <= static_cast<uint32_t>(max_code(bits)), "pack_row_codes_ref: code ", q,
                 " at column ", c, " does not fit in ", bits, " bits");
    switch (bits) {
      case 8:
        dst[c] = static_cast<uint8_t>(q);
        break;
      case 4: {
        const int64_t block = c / kQ4BlockCols;
        const int64_t j = c % kQ4BlockCols;
        uint8_t& byte = dst[block * 16 + (j & 15)];
        byte = static_cast<uint8_t>(byte | (j < 16 ? q : q << 4));
        break;
      }
      case 3: {
        const int64_t bit = (c / 8) * 24 + (c % 8) * 3;  // may straddle two bytes
        const uint32_t v = q << (bit % 8);
        dst[bit / 8] = static_cast<uint8_t>(dst[bit / 8] | (v & 0xffu));
        if (v > 0xffu) dst[bit / 8 + 1] = static_cast<uint8_t>(dst[bit / 8 + 1] | (v >> 8));
        break;
      }
      default:  // 2
        dst[c / 4] = static_cast<uint8_t>(dst[c / 4] | (q << (2 * (c % 4))));
        break;
    }
  }
}

void unpack_row_codes_ref(const uint8_t* src, int64_t cols, int bits, uint8_t* codes) {
  require_bits(bits);
  for (int64_t c = 0; c < cols; ++c) {
    uint32_t q = 0;
    switch (bits) {
      case 8:
        q = src[c];
        break;
      case 4: {
        const int64_t j = c % kQ4BlockCols;
        const uint32_t byte = src[(c / kQ4BlockCols) * 16 + (j & 15)];
        q = j < 16 ? (byte & 15u) : (byte >> 4);
        break;
      }
      case 3: {
        const int64_t bit = (c / 8) * 24 + (c % 8) * 3;
        uint32_t v = src[bit / 8];
        if (bit % 8 > 5) v |= static_cast<uint32_t>(src[bit / 8 + 1]) << 8;
        q = (v >> (bit % 8)) & 7u;
        break;
      }
      default:
        q = (static_cast<uint32_t>(src[c / 4]) >> (2 * (c % 4))) & 3u;
        break;
    }
    codes[c] = static_cast<uint8_t>(q);
  }
}

uint8_t weight_code(const QuantizedMatrix& m, int64_t r, int64_t c) {
  WKVQ_ASSERT(r >= 0 && r < m.rows && c >= 0 && c < m.cols);
  const int64_t unit = weight_pack_unit_cols(m.bits);
  const int64_t first = c / unit * unit;  // unpack the one packing unit holding c
  uint8_t unit_codes[kQ4BlockCols];
  std::vector<uint8_t> buf;  // used only when the tile layout holds the codes
  unpack_row_codes_ref(row_codes_of(m, r, buf) + c / unit * weight_pack_unit_bytes(m.bits), unit,
                       m.bits, unit_codes);
  return unit_codes[c - first];
}

WeightGroupParams weight_group_params_ref(const float* w, int64_t len, int bits, float clip_hi,
                                          float clip_lo) {
  require_bits(bits);
  WKVQ_ASSERT(len >= 1);
  float mx = w[0];
  float mn = w[0];
  for (int64_t i = 1; i < len; ++i) {
    mx = std::max(mx, w[i]);
    mn = std::min(mn, w[i]);
  }
  const int qmax = max_code(bits);
  // One-sign groups are widened to include 0 (header comment): z stays in [0, qmax].
  const float hi = std::max(clip_hi * mx, 0.0f);
  const float lo = std::min(clip_lo * mn, 0.0f);
  const float scale = std::max((hi - lo) / static_cast<float>(qmax), kMinScale);
  WeightGroupParams p;
  p.scale_fp16 = f32_to_fp16(scale);
  const float s = fp16_to_f32(p.scale_fp16);
  WKVQ_REQUIRE(std::isfinite(s), "weight quantization: group scale ", scale,
               " overflows fp16 (weights of magnitude ~", std::max(hi, -lo), ")");
  p.zero = to_code(-lo / s, qmax);
  return p;
}

QuantizedMatrix quantize_weights_ref(const float* w, int64_t rows, int64_t cols, int bits,
                                     int64_t group, const float* clip_hi, const float* clip_lo) {
  QuantizedMatrix m = make_quantized_matrix(rows, cols, bits, group);
  const int qmax = max_code(bits);
  std::vector<uint8_t> row_codes(static_cast<size_t>(m.padded_cols), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      WKVQ_REQUIRE(std::isfinite(wr[c]), "weight quantization: non-finite weight ", wr[c],
                   " at row ", r, ", column ", c);
    }
    for (int64_t g = 0; g < m.n_groups; ++g) {
      const int64_t c0 = g * m.group;
      const int64_t len = std::min(m.group, cols - c0);
      const int64_t pi = r * m.n_groups + g;
      const float chi = clip_hi != nullptr ? clip_hi[pi] : 1.0f;
      const float clo = clip_lo != nullptr ? clip_lo[pi] : 1.0f;
      WKVQ_REQUIRE(chi >= 0.0f && chi <= 1.0f && clo >= 0.0f && clo <= 1.0f,
                   "weight quantization: clipping factors of row ", r, ", group ", g,
                   " must be in [0, 1], got ", chi, " and ", clo);
      const WeightGroupParams p = weight_group_params_ref(wr + c0, len, bits, chi, clo);
      m.scales[static_cast<size_t>(pi)] = p.scale_fp16;
      m.zeros[static_cast<size_t>(pi)] = p.zero;
      const float s = fp16_to_f32(p.scale_fp16);
      const float z = static_cast<float>(p.zero);
      for (int64_t c = c0; c < c0 + len; ++c) {
        row_codes[static_cast<size_t>(c)] = to_code(std::nearbyint(wr[c] / s) + z, qmax);
      }
    }
    pack_row_codes_ref(row_codes.data(), cols, bits, m.codes.data() + r * m.row_bytes);
  }
  return m;
}

void dequantize_row_ref(const QuantizedMatrix& m, int64_t r, float* out) {
  WKVQ_ASSERT(r >= 0 && r < m.rows);
  std::vector<uint8_t> buf;  // used only when the tile layout holds the codes
  std::vector<uint8_t> row_codes(static_cast<size_t>(m.cols));
  unpack_row_codes_ref(row_codes_of(m, r, buf), m.cols, m.bits, row_codes.data());
  for (int64_t c = 0; c < m.cols; ++c) {
    const int64_t pi = r * m.n_groups + c / m.group;
    const float s = fp16_to_f32(m.scales[static_cast<size_t>(pi)]);
    const int q_minus_z =
        int{row_codes[static_cast<size_t>(c)]} - int{m.zeros[static_cast<size_t>(pi)]};
    out[c] = static_cast<float>(q_minus_z) * s;  // exact: |q - z| < 2^8, s has 11 bits
  }
}

void dequantize_weights_ref(const QuantizedMatrix& m, float* out) {
  for (int64_t r = 0; r < m.rows; ++r) dequantize_row_ref(m, r, out + r * m.cols);
}

}  // namespace wkvq
