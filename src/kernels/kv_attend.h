// Attention kernels over a KV cache, grouped-query: one KV head is read once for the G query
// heads that share it (runtime/attention.h runs them per tile: a run of consecutive positions
// within one cache block). Three operations:
//
//   kv_decode_head: the head's channels [c0, c0 + hd) of n stored records -> f32 rows x (n, hd):
//                   fp16 widened, int records dequantized (x^ = m + code * s, formats/kv_quant.h);
//   gqa_scores:     scores[h * ld + j] = scale * (q_h . x_j)              h < G, j < n
//   gqa_values:     acc[h * hd + i] += sum_j p[h * ld + j] * x_j[i]        j in order 0, 1, ...
//   gqa_softmax:    each row h of scores (ld apart) over [0, n) -> its softmax
//
// where q_h = q + h * hd and x_j = x + j * ldx (so the scores and values kernels also run on f32
// storage and on the chunk's own k, v in place). The kernels come from the kernel table
// (kernels/kernel_table.h); each has a scalar reference (`*_ref`, also Isa::Reference) they are
// tested against (tests/kernel/kv_attend_test.cpp). Guarantees against the reference:
//  - kv_decode_head: the same floats (the product code * s is exact in f32, then one rounding);
//  - gqa_scores: the same dot products summed in another order (lanes, then a tree);
//  - gqa_values: each term p * x added with one rounding (a fused multiply-add) instead of two;
//  - gqa_softmax: exp by a degree-7 polynomial on [-ln2/2, ln2/2] times 2^k (within 4 ulp of
//    std::exp; inputs below -87.3 give ~1e-38 instead of 0 or a denormal), sums of 16 or 8
//    values in f32 added in double, as the reference's double sum.
// SIMD decoding covers fp16, and int8 / int4 when the head holds whole groups (c0 and hd multiples
// of the group, the default group = head_dim); int2 / int3 and other groupings decode with the
// reference (kv_decode_kernel names which runs).
#pragma once

#include <cstdint>
#include <string>

#include "formats/kv_quant.h"
#include "kernels/kernel_table.h"

namespace wkvq {

// How the records of one KV layer are stored: bits 32 (f32), 16 (fp16) or 2/3/4/8 (int records of
// `format`).
struct KvRecordFormat {
  int bits = 32;
  KvQuantFormat format{};  // int only
};

void kv_decode_head(const KvRecordFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t c0, int64_t hd, float* x, const KernelTable& t = kernel_table());
void gqa_scores(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                float scale, float* scores, int64_t ld, const KernelTable& t = kernel_table());
void gqa_values(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                int64_t n, float* acc, const KernelTable& t = kernel_table());
void gqa_softmax(float* scores, int64_t g, int64_t n, int64_t ld,
                 const KernelTable& t = kernel_table());

// The scalar references.
void kv_decode_head_ref(const KvRecordFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                        int64_t c0, int64_t hd, float* x);
void gqa_scores_ref(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                    float scale, float* scores, int64_t ld);
void gqa_values_ref(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                    int64_t n, float* acc);
void gqa_softmax_ref(float* scores, int64_t g, int64_t n, int64_t ld);  // softmax_inplace per row

// Which kernels attention runs for heads of hd channels stored as `f` under table t, e.g.
// "avx512: int4 decode, GQA tiles" or "reference int3 decode, avx512 GQA tiles".
std::string kv_attend_kernel(const KvRecordFormat& f, int64_t hd,
                             const KernelTable& t = kernel_table());

}  // namespace wkvq
