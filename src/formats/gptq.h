// GPTQ-convention tensors for a 4-bit QuantizedMatrix: the layout other engines load
// (AutoGPTQ, exllama, vLLM, GPTQModel). Only b = 4, no act-order (g_idx[i] = i / group).
//
// With in = QuantizedMatrix::cols, out = QuantizedMatrix::rows, G = n_groups:
//   qweight int32 (ceil(in / 8), out): bits 4k..4k+3 of qweight[i, o] = code of W[o, 8i + k]
//   qzeros  int32 (G, ceil(out / 8)):  bits 4k..4k+3 of qzeros[g, j]  = stored zero of row 8j + k
//   scales  fp16  (G, out):            scales[g, o] = scale of row o, group g
//   g_idx   int32 (in):                g_idx[i] = i / group
// Padding (in or out not a multiple of 8) is filled with code 0 / stored zero 0 and ignored.
// Bits are packed into uint32 and stored as int32 with the same bits (two's complement).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/weight_quant.h"

namespace wkvq {

// How the zero point is stored in qzeros.
enum class GptqZeros {
  // "gptq" (v1): the stored nibble is zero - 1; loaders add 1 back. The form AutoGPTQ, exllama
  // and vLLM's gptq kernels read by default. A zero point of 0 cannot be stored (the nibble
  // 0xF reads back as 16): to_gptq rejects it with an error that names the row and group.
  kMinusOne,
  // "gptq_v2" (GPTQModel's checkpoint_format = "gptq_v2"): the stored nibble is the zero point.
  kAsIs,
};

struct GptqTensors {
  int64_t in = 0;                // input features (QuantizedMatrix::cols)
  int64_t out = 0;               // output features (QuantizedMatrix::rows)
  int64_t group = 0;             // group size in input features (QuantizedMatrix::group)
  int64_t n_groups = 0;          // ceil(in / group)
  std::vector<int32_t> qweight;  // (ceil(in / 8), out)
  std::vector<int32_t> qzeros;   // (n_groups, ceil(out / 8))
  std::vector<uint16_t> scales;  // (n_groups, out) fp16 bits
  std::vector<int32_t> g_idx;    // (in)
};

// Throws wkvq::Error unless m.bits == 4 (and, for kMinusOne, every zero point is >= 1).
GptqTensors to_gptq(const QuantizedMatrix& m, GptqZeros zeros);
// Validates every size (and g_idx == i / group) and throws wkvq::Error naming the field.
QuantizedMatrix from_gptq(const GptqTensors& t, GptqZeros zeros);

}  // namespace wkvq
