// Group-wise asymmetric int-b weight quantization (design.md §2.1) and its packed storage.
//
// W[rows, cols] is row-major like nn.Linear (rows = output features, cols = input features). Each
// row is cut into groups of `group` consecutive columns (the last group of a row may be shorter);
// each group has an fp16 scale s and an integer zero point z, and every weight a b-bit code q:
//   W^ = (q - z) * s
// The scalar `_ref` functions here define the truth; kernels/qmatmul.h reads the same storage.
//
// Quantization of one group (RTN when clip_hi = clip_lo = 1; LWC passes sigmoid(gamma),
// sigmoid(beta)):
//   hi = clip_hi * max(W_group)        lo = clip_lo * min(W_group)
//   lo = min(lo, 0), hi = max(hi, 0)   (see "groups of one sign" below)
//   scale = max((hi - lo) / (2^b - 1), 1e-5);  s = fp16(scale) (round to nearest even)
//   z = clamp(round(-lo / s), 0, 2^b - 1)
//   q = clamp(round(W / s) + z, 0, 2^b - 1)          round = std::nearbyint (half to even)
// The fp16-rounded s is used for z and q, so dequantization is exactly what was quantized.
//
// Groups of one sign: OmniQuant takes max and min as they are. For the usual group
// (max >= 0 >= min) that is what happens here too, and z lands in [0, 2^b - 1]. When the whole
// group is positive (or negative), OmniQuant's z = round(-lo / s) is negative (or > 2^b - 1) and
// unbounded (a constant group 1.0 has s = 1e-5 and z = -1e5): it fits neither the uint8 zero
// point here nor GPTQ's 4-bit qzeros, and OmniQuant's own clamp to +-1e4 decodes such a group
// wrongly. So the range is widened to include 0 (as GPTQ does): such a group is quantized over
// [0, hi] (or [lo, 0]). Every element then still satisfies the error bound below. With g >= 32
// and real weights, one-sign groups essentially never occur.
//
// Error bound (no clipping): |W - W^| <= s * (1/2 + (2^b - 1) * 2^-11) + f32 rounding. The second
// term is the fp16 rounding of the scale, which can move the top of the range by up to
// (2^b - 1) * |s - scale|. Clipped elements (clip < 1) additionally lose their distance to hi/lo.
#pragma once

#include <cstdint>
#include <vector>

namespace wkvq {

// One 32-column block of a 4-bit row: byte j (0..15) holds the code of column j in bits 0-3 and
// the code of column j + 16 in bits 4-7. Unpacking 16 bytes gives columns 0..15 with a mask and
// columns 16..31 with a shift, both in column order: what the SIMD kernels want.
struct Q4Block {
  uint8_t nibbles[16];
};
static_assert(sizeof(Q4Block) == 16, "a 4-bit block is 32 codes in 16 bytes, no padding");
inline constexpr int64_t kQ4BlockCols = 32;

// Packed codes of one row, by bit width (each row starts on its own byte boundary):
//   b = 8: one byte per column.                                     unit: 1 column  = 1 byte
//   b = 4: Q4Block per 32 columns (above).                          unit: 32 columns = 16 bytes
//   b = 3: 8 codes per 3 bytes, little-endian bit order: code of column c at bits 3 * (c % 8) ..
//          3 * (c % 8) + 2 of the 24-bit word bytes[0] | bytes[1] << 8 | bytes[2] << 16.
//                                                                   unit: 8 columns  = 3 bytes
//   b = 2: 4 codes per byte, column c at bits 2 * (c % 4).          unit: 4 columns  = 1 byte
// A row whose length is not a multiple of the unit is padded with code 0 up to `padded_cols`.
// Padding codes are not weights: readers stop at `cols`.
int64_t weight_pack_unit_cols(int bits);
int64_t weight_pack_unit_bytes(int bits);
int64_t weight_row_bytes(int64_t cols, int bits);

// Columns per group for a requested g: g, or cols when g = 0 or g >= cols (one group per row).
int64_t weight_group_size(int64_t cols, int64_t group);

struct QuantizedMatrix {
  int64_t rows = 0;              // output features
  int64_t cols = 0;              // input features
  int bits = 4;                  // 2, 3, 4 or 8
  int64_t group = 0;             // columns per group, in [1, cols] (weight_group_size)
  int64_t n_groups = 0;          // ceil(cols / group); group k of a row is columns [k*group, ...)
  int64_t padded_cols = 0;       // cols rounded up to the packing unit (zero codes beyond cols)
  int64_t row_bytes = 0;         // bytes of packed codes per row (weight_row_bytes)
  std::vector<uint8_t> codes;    // (rows, row_bytes)  layout above; empty in tile_codes' place
  std::vector<uint16_t> scales;  // (rows, n_groups)   fp16 bits
  std::vector<uint8_t> zeros;    // (rows, n_groups)   in [0, 2^bits - 1]
  // Optional, for inference only (add_tile_layout; never stored in a file), the same numbers in
  // tiles of kParamTileRows rows, so that a kernel reads one vector over a tile's rows:
  //  - tile_scales, tile_zeros: a copy of scales and zeros, tile t, group g, row r at
  //    [(t * n_groups + g) * kParamTileRows + r], rows padded to a multiple of kParamTileRows
  //    with 0.
  //  - tile_codes (4- and 8-bit W): the codes, moved out of `codes` (which is then empty): per
  //    tile t and 64-byte chunk b of a row's codes kParamTileRows lines of kTileLineBytes; line k
  //    holds bytes 4k .. 4k + 3 of chunk b of each of the tile's rows, row r at 4r .. 4r + 3: byte
  //    j of row r at [((t * chunks + j / 64) * kParamTileRows + j % 64 / 4) * 64 + 4 (r %
  //    kParamTileRows) + j % 4]. chunks = ceil(cols / kTileBlockCols) * bits / 4 (a 128-column
  //    block is one chunk at 4 bits, two at 8); bytes past a row's end and padding rows are 0. An
  //    int8 GEMV reads W as one sequential stream and finds in each 32-bit lane of a line 4 codes
  //    of one row: 4 consecutive columns at 8 bits, at 4 bits 4 consecutive columns in the low
  //    nibbles and the 4 columns 16 further on in the high ones (Q4Block order). Readers of rows
  //    use copy_row_codes, which reads either layout.
  // Empty when not built.
  std::vector<uint16_t> tile_scales;
  std::vector<uint8_t> tile_zeros;
  std::vector<uint8_t> tile_codes;

  // Row r's packed codes in `codes`; asserts that it holds them (copy_row_codes and
  // row_codes_of read either layout).
  const uint8_t* row_codes(int64_t r) const;
  // Whether the tile layout holds the codes (add_tile_layout moved them; `codes` is empty).
  bool codes_in_tiles() const { return codes.empty() && !tile_codes.empty(); }
  // Bytes of the quantized storage: codes (rows * row_bytes, in either layout) + scales + zeros
  // (what a product reads).
  int64_t bytes() const;
  // Bytes the tile layout holds besides bytes() (0 when not built): the tile-major scales and
  // zeros (read instead of the row-major ones) and the tile codes' padding rows and blocks.
  int64_t tile_bytes() const;
};

// Rows per tile of QuantizedMatrix's tile layout (one AVX-512 vector of floats or int32).
inline constexpr int64_t kParamTileRows = 16;
// Bytes of a line of QuantizedMatrix::tile_codes (4 code bytes of each row of a tile).
inline constexpr int64_t kTileLineBytes = 64;
// Columns of the blocks QuantizedMatrix::tile_codes pads rows to (the int8 GEMV's x blocks).
inline constexpr int64_t kTileBlockCols = 128;
// Bytes of QuantizedMatrix::tile_codes for m (4 or 8 bits; rows and blocks padded).
int64_t tile_codes_bytes(const QuantizedMatrix& m);
// Fills m.tile_scales and m.tile_zeros (3 bytes more per group of kParamTileRows-padded rows) and,
// for 4- and 8-bit W, moves the codes into m.tile_codes (m.codes is left empty). Inference code
// calls it where the kernel table reads the tile layout (kernels/kernel_table.h,
// reads_tile_layout).
void add_tile_layout(QuantizedMatrix& m);
// Rows [r0, r0 + rows) of m's packed codes, row-major (rows * row_bytes bytes) into dst, from
// `codes` or from the tile layout.
void copy_row_codes(const QuantizedMatrix& m, int64_t r0, int64_t rows, uint8_t* dst);
// Row r's packed codes, row-major: in m.codes where m holds them there (no copy), else copied from
// the tile layout into `buf` (resized to row_bytes).
const uint8_t* row_codes_of(const QuantizedMatrix& m, int64_t r, std::vector<uint8_t>& buf);
// All of m's codes row-major (as `codes` holds them without the tile layout).
std::vector<uint8_t> row_major_codes(const QuantizedMatrix& m);

// An empty matrix of the given shape with every size field filled in and storage allocated
// (codes, scales and zeros all 0). Throws wkvq::Error on a bad shape or bit width.
QuantizedMatrix make_quantized_matrix(int64_t rows, int64_t cols, int bits, int64_t group);

// Throws wkvq::Error (naming `what` and the field) unless the sizes are consistent and every zero
// point is in range. Readers of stored matrices call it before use.
void validate(const QuantizedMatrix& m, const char* what);

// Packs codes[0:cols] (each < 2^bits) into weight_row_bytes(cols, bits) bytes, padding with 0.
void pack_row_codes_ref(const uint8_t* codes, int64_t cols, int bits, uint8_t* dst);
// Inverse of pack_row_codes_ref: codes[0:cols] from a packed row.
void unpack_row_codes_ref(const uint8_t* src, int64_t cols, int bits, uint8_t* codes);
// Code of one element.
uint8_t weight_code(const QuantizedMatrix& m, int64_t r, int64_t c);

// Scale (fp16 bits) and zero point of one group of `len` values, by the formulas above.
struct WeightGroupParams {
  uint16_t scale_fp16 = 0;
  uint8_t zero = 0;
};
WeightGroupParams weight_group_params_ref(const float* w, int64_t len, int bits, float clip_hi,
                                          float clip_lo);

// Quantizes W (rows, cols), row-major. clip_hi / clip_lo hold one factor per group,
// (rows, n_groups) row-major, each in [0, 1]; nullptr means 1 (RTN). Throws wkvq::Error naming
// the row and column of the first NaN/Inf, or the group whose scale overflows fp16.
QuantizedMatrix quantize_weights_ref(const float* w, int64_t rows, int64_t cols, int bits,
                                     int64_t group, const float* clip_hi = nullptr,
                                     const float* clip_lo = nullptr);

// W^ of row r into out[0:cols].
void dequantize_row_ref(const QuantizedMatrix& m, int64_t r, float* out);
// W^ (rows, cols) row-major.
void dequantize_weights_ref(const QuantizedMatrix& m, float* out);

}  // namespace wkvq
