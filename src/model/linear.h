// Linear: one weight matrix of a block, y = x . W^T, whatever its storage: f32, fp16 or bf16
// row-major W[out, in] (in place from the file or owned), or packed int-b groups
// (formats/weight_quant.h). The block forward never needs to know which.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "formats/weight_quant.h"
#include "kernels/kernel_table.h"

namespace wkvq {

struct Linear {
  int64_t out = 0;                           // rows of W (output features)
  int64_t in = 0;                            // columns of W (input features)
  const float* w = nullptr;                  // (out, in) row-major, when stored in f32
  std::shared_ptr<const QuantizedMatrix> q;  // when quantized (then w may be null)
  const uint16_t* w16 = nullptr;             // (out, in) fp16 bits, when stored in fp16
  const uint16_t* wbf16 = nullptr;           // (out, in) bfloat16 bits, when stored in bf16
  const float* bias = nullptr;               // (out) added after the product (f32), or null
  // Act-order GPTQ weights (formats/gptq.h): column j of q is input feature (*in_order)[j], so
  // forward multiplies q with the input gathered in that order. Null: the identity.
  std::shared_ptr<const std::vector<int32_t>> in_order;

  bool quantized() const { return q != nullptr; }
  // True when W is held in floating point (f32, fp16 or bf16), whether or not it is quantized.
  bool has_float() const { return w != nullptr || w16 != nullptr || wbf16 != nullptr; }
  // y[n, out] = x[n, in] . W^T (+ bias); `use` picks a quantized W's GEMM for many rows
  // (kernels/kernel_table.h, GemmUse).
  void forward(const float* x, int64_t n, float* y, GemmUse use = GemmUse::Exact) const;
  // The f32 values of rows [r0, r0 + rows) of a floating-point W into dst (rows x in); exact.
  void rows_f32(int64_t r0, int64_t rows, float* dst) const;
  // Row r of W as f32 into dst (in values), whatever the storage: the float values (exact) or
  // the dequantized row (dequantize_row_ref; columns in input-feature order). Serial: for
  // single-row reads such as an embedding lookup.
  void row(int64_t r, float* dst) const;
  // W (out, in) as f32 in input-feature order, whatever the storage: the dequantized q (columns
  // put back through in_order) or the float values; exact.
  std::vector<float> dense_f32() const;
  // W as f32: `w` itself when stored in f32, else its values converted into `scratch`.
  const float* f32_view(std::vector<float>& scratch) const;
  // The f32 value of element i (row-major) of a floating-point W; exact.
  float weight_f32(int64_t i) const;
  // The floating-point W's storage: its address and size in bytes (nullptr, 0 when none).
  const void* float_data() const;
  int64_t float_bytes() const;
  // Bytes of the weight (and bias) as stored for inference.
  int64_t bytes() const;
  // Bytes held besides bytes() in layouts the kernels read instead of it (the tile layout of
  // codes, scales and zeros, inference_matrix), 0 when none.
  int64_t layout_copy_bytes() const { return q ? q->tile_bytes() : 0; }
};

// m shared for inference (Linear::q), with what the process's kernels read besides the stored
// layout: the tile layout (codes, scales, zeros) where kernel_table() reads it (reads_tile_layout)
// and the int8 GEMV takes m (qmatmul_q8_applies).
std::shared_ptr<const QuantizedMatrix> inference_matrix(QuantizedMatrix m);

// ys[k][n, ls[k]->out] = x[n, in] . W_k^T (+ bias) for Linears of the same `in` reading the same x
// (q, k and v; gate and up). Quantized ones without act-order run in one parallel pass
// (qmatmul_many: one synchronisation instead of one each), with the results Linear::forward gives;
// any other mix runs each forward in turn.
void forward_group(std::span<const Linear* const> ls, const float* x, int64_t n,
                   std::span<float* const> ys, GemmUse use = GemmUse::Exact);

}  // namespace wkvq
