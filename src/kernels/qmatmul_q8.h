// The int8-activation GEMM for 4-bit weights (prefill): y[n, out] = x[n, in] . W^T with x
// quantized to int8 first, as llama.cpp's Q8 activations, and integer dot products
// (AVX512_VNNI vpdpbusd, qmatmul_q8_avx512vnni.cpp; AVX2 vpmaddubsw, qmatmul_q8_avx2.cpp, the same
// numbers). The same arithmetic defines the int8 GEMV for 8-bit weights (the q8 output head under
// WKVQ_DECODE_GEMV=int8: AVX2, or AVX512_VNNI kernels, the same numbers), codes q in [0, 255]
// instead of [0, 15].
//
// The arithmetic (this reference is its definition):
//   x: each row in blocks of kQ8BlockCols = 128 columns (the last one shorter), per block
//      d = max|x| / 127 and xq = round_half_even(x * (1 / d)) in [-127, 127] (xq = 0 when d = 0),
//      dsum = d * sum(xq); a block holding a NaN or an infinity gets d = NaN and xq = 0, so that
//      every output of its row is NaN (as the f32 product's would be NaN or infinite);
//   y[i, o] = the sum over the x blocks, in column order, of
//      d * (s * sum_k q_k xq_k) - dsum * (z * s)
//   with W's codes q, scale s and zero point z of the group holding the block (the groups are
//   multiples of 128 columns, or one per row, so a block never straddles two). The integer sums
//   are exact; the floats round differently from the f32 kernels.
// Error against the f32 product: |x_k - d xq_k| <= d / 2, so |y - x . W^| <= sum_k (d_k / 2)
// |W^_k| plus f32 rounding (tests/kernel/qmatmul_q8_test.cpp derives the bounds).
// Which GEMM a process runs for n > the dot kernels' limit is the kernel table's choice
// (kernels/kernel_table.h: WKVQ_PREFILL_GEMM); for n <= that limit (decode) the same arithmetic
// runs, bit for bit, in the int8 GEMV (qmatmul_q8_gemv_avx512vnni.cpp) where WKVQ_DECODE_GEMV=int8
// chose it, else the f32 kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/weight_quant.h"

namespace wkvq {

inline constexpr int64_t kQ8BlockCols = 128;

// Whether this arithmetic takes W: 4 or 8 bits, groups of a multiple of 128 columns or one per
// row. The kernels: the GEMM and GEMV at 4 bits, the GEMV alone at 8 (qmatmul.cpp's plan).
bool qmatmul_q8_applies(const QuantizedMatrix& w);

// x (rows, cols) quantized as above: q (rows, stride) with stride = cols rounded up to 32 and
// zeros past cols; d and dsum (rows, blocks).
struct Q8Activations {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;
  int64_t blocks = 0;
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<float> dsum;
  // Sizes the storage for rows x cols (keeps the capacity).
  void resize(int64_t n_rows, int64_t n_cols);
};

// One block of len floats as above: writes q[0:len), returns d (NaN when the block holds a NaN
// or an infinity, q then all 0) and sets *sum to the sum of q. Also the int8 query of attention's
// int8 key scores (kernels/kv_attend.h), one block per key group.
float quantize_block_q8_ref(const float* x, int64_t len, int8_t* q, int64_t* sum);

// The scalar quantizer (the definition; the SIMD one matches it bit for bit).
void quantize_activations_q8_ref(const float* x, int64_t n, int64_t cols, Q8Activations& out);

// The scalar int8 GEMM: the definition of its result. Throws unless qmatmul_q8_applies(w).
void qmatmul_q8_ref(const float* x, int64_t n, const QuantizedMatrix& w, float* y);

}  // namespace wkvq
