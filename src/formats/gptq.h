// GPTQ-convention tensors for a 2-, 4- or 8-bit QuantizedMatrix: the layout other engines load
// (AutoGPTQ, exllama, vLLM, GPTQModel). 3-bit is not supported: GPTQ packs 3-bit codes across
// int32 boundaries, a layout wkvq does not read or write.
//
// With in = QuantizedMatrix::cols, out = QuantizedMatrix::rows, G = n_groups, b = bits and
// P = 32 / b values per int32 (8 for b = 4):
//   qweight int32 (ceil(in / P), out): bits b*k..b*k+b-1 of qweight[i, o] = code of W[o, P*i + k]
//   qzeros  int32 (G, ceil(out / P)):  bits b*k..b*k+b-1 of qzeros[g, j]  = stored zero of row
//                                      P*j + k
//   scales  fp16  (G, out):            scales[g, o] = scale of row o, group g
//   g_idx   int32 (in):                g_idx[i] = group of input column i: i / group, or with
//                                      act-order (desc_act) any assignment that gives every group
//                                      `group` columns (the last one the rest)
// Act-order: the QuantizedMatrix holds the columns sorted by group, column j being input column
// order[j] (gptq_column_order); the runtime gathers its input in that order (Linear::in_order).
// Lowest bits first. Padding (in or out not a multiple of P) is filled with code 0 / stored zero
// 0 and ignored. Bits are packed into uint32 and stored as int32 with the same bits (two's
// complement).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/weight_quant.h"

namespace wkvq {

// How the zero point is stored in qzeros.
enum class GptqZeros {
  // "gptq" (v1): the stored field is zero - 1; loaders add 1 back. The form AutoGPTQ, exllama
  // and vLLM's gptq kernels read by default. A zero point of 0 cannot be stored (the field
  // 2^b - 1 reads back as 2^b): to_gptq rejects it with an error that names the row and group.
  kMinusOne,
  // "gptq_v2" (GPTQModel's checkpoint_format = "gptq_v2"): the stored field is the zero point.
  kAsIs,
};

// Values packed per int32 at `bits` bits (2 -> 16, 4 -> 8, 8 -> 4). Throws for other widths.
int64_t gptq_pack_factor(int bits);

struct GptqTensors {
  int bits = 4;                  // 2, 4 or 8
  int64_t in = 0;                // input features (QuantizedMatrix::cols)
  int64_t out = 0;               // output features (QuantizedMatrix::rows)
  int64_t group = 0;             // group size in input features (QuantizedMatrix::group)
  int64_t n_groups = 0;          // ceil(in / group)
  std::vector<int32_t> qweight;  // (ceil(in / P), out)
  std::vector<int32_t> qzeros;   // (n_groups, ceil(out / P))
  std::vector<uint16_t> scales;  // (n_groups, out) fp16 bits
  std::vector<int32_t> g_idx;    // (in)
};

// Throws wkvq::Error unless m.bits == bits and bits is 2, 4 or 8 (and, for kMinusOne, every zero
// point is >= 1). The default asks for the common 4-bit layout. `order` (act-order): column j of
// m is input column order[j]; empty: the identity.
GptqTensors to_gptq(const QuantizedMatrix& m, GptqZeros zeros, int bits = 4,
                    const std::vector<int32_t>& order = {});
// The column order that groups g_idx: order[j] = the input column that becomes column j, sorted
// by group (stable). Empty when g_idx[i] == i / group everywhere. Throws wkvq::Error naming g_idx
// unless every g_idx value is in [0, n_groups) and group k holds exactly min(group, in - k*group)
// columns.
std::vector<int32_t> gptq_column_order(const std::vector<int32_t>& g_idx, int64_t in,
                                       int64_t group);
// Validates every size and g_idx and throws wkvq::Error naming the field. Bits in the padding of
// qweight and qzeros (beyond in / out) must be zero: a non-zero one is reported as a code or zero
// point of a row or column that does not exist. With act-order, the result's columns follow
// gptq_column_order(t.g_idx, ...), returned in *order (empty: the identity); order may be null
// only when g_idx is the identity grouping.
QuantizedMatrix from_gptq(const GptqTensors& t, GptqZeros zeros,
                          std::vector<int32_t>* order = nullptr);

}  // namespace wkvq
