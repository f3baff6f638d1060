// Fast KV quantization kernels: quantize a token, and the two products POQ attention needs over the
// quantized cache without dequantizing it to memory (layouts and reference: formats/kv_quant.h).
//
//   kv_dot:  q . x^  = scale * sum_i q_i code_i + mn * sum_i q_i     (one key group)
//   kv_axpy: out    += p * x^,   x^_i = mn + code_i * scale          (one value group)
// and their batched forms over consecutive token records (one call per head and cache block).
//
// The kernels come from a kernel table (kernels/kernel_table.h).
// SIMD versions exist for 2, 3, 4 and 8 bits (Isa::Reference runs the reference). Guarantees
// against the reference:
//  - quantize_token: the same bytes (same f32 operations in the same order, per element);
//  - kv_axpy: the same floats (x^ is exact, then one rounded product and one rounded sum);
//  - kv_dot: the same sums in another order (lanes, then a tree): within the f32 reordering
//    bound of the two sums.
#pragma once

#include <cstdint>

#include "formats/kv_quant.h"
#include "kernels/kernel_table.h"

namespace wkvq {

// Each function runs the kernels of table t: the process's by default, kernel_table(isa) to pick
// an ISA (tests, benchmarks).

// x[0:C] -> record. Throws wkvq::Error as quantize_token_ref does (non-finite or beyond fp16).
void quantize_token(const KvQuantFormat& f, const float* x, uint8_t* record,
                    const KernelTable& t = kernel_table());

// One group: codes of len channels at `bits` bits (group layout of formats/kv_quant.h).
float kv_dot(const float* q, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             const KernelTable& t = kernel_table());
void kv_axpy(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
             float* out, const KernelTable& t = kernel_table());

// Group g of n tokens whose records start at records + t * stride (stride >= f.token_bytes):
//   scores[t] = q[0:len] . x^_t                   (len = f.group_len(g), q indexed from 0)
void kv_dot_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                   int64_t g, const float* q, float* scores, const KernelTable& t = kernel_table());
//   out[0:len] += sum_t p[t] * x^_t              (tokens added in order t = 0, 1, ...)
void kv_axpy_tokens(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t g, const float* p, float* out, const KernelTable& t = kernel_table());

}  // namespace wkvq
