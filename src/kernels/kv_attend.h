// Attention kernels over a KV cache, grouped-query: one KV head is read once for the G query
// heads that share it (runtime/attention.h runs them per tile: a run of consecutive positions
// within one cache block). The operations:
//
//   kv_decode_head: the head's channels [c0, c0 + hd) of n stored records -> f32 rows x (n, hd):
//                   fp16 widened, int records dequantized (x^ = m + code * s, formats/kv_quant.h);
//   gqa_scores:     scores[h * ld + j] = scale * dot(q_h, x_j, hd)                 h < G, j < n
//   gqa_scores_int: the same over int records, each group's product as kv_dot_tokens computes it
//   gqa_values:     acc[h * hd + i] += sum_j p[h * ld + j] * x_j[i]        j in order 0, 1, ...
//   gqa_softmax:    each row h of scores (ld apart) over [0, n) -> softmax_inplace of it
//
// where q_h = q + h * hd and x_j = x + j * ldx (so the scores and values kernels also run on f32
// storage and on the chunk's own k, v in place). The kernels come from the kernel table
// (kernels/kernel_table.h); each has a scalar reference (`*_ref`, also Isa::Reference) they are
// tested against (tests/kernel/kv_attend_test.cpp). They compute the same floats as attention
// did one query head at a time before GQA (vec_ops.h's dot, axpy and softmax_inplace, and
// kv_quant.h's kv_dot_tokens / kv_axpy_tokens), so grouping the heads changes no result:
//  - kv_decode_head: the same floats as the reference (code * s is exact in f32, then one
//    rounding: kv_axpy_tokens' x^ as well);
//  - gqa_scores: bit-identical to the reference, scale * vec_ops.h's dot (8 partial sums of
//    rounded products, added pairwise): the SIMD kernels hold dot's 8 partials in the 8 lanes of
//    a 256-bit vector, whatever the ISA;
//  - gqa_scores_int: bit-identical to gqa_scores_int_ref under the same table, which runs
//    kv_dot_tokens per query head and group (the SIMD kernels repeat that table's lanes, fused
//    sums and horizontal-sum order on codes decoded once for the G heads);
//  - gqa_values: bit-identical to the reference (each product rounded, then added: axpy's floats);
//  - gqa_softmax: bit-identical to softmax_inplace (exp_f32, the double sum's 16 partials).
// SIMD decoding covers fp16, and int8 / int4 / int3 / int2 when the head holds whole groups (c0 and
// hd multiples of the group, the default group = head_dim); other groupings decode with the
// reference (kv_attend_kernel names which runs).
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
// Scores of the G query heads over n int records (formats/kv_quant.h; the head's channels
// [c0, c0 + hd)): scores[h * ld + j] = scale * the sum, over the groups holding the head's channels
// in order, of kv_dot_tokens(q_h on that group, 0 outside the head; record j) under table t.
// `work`: gqa_scores_int_work(f, n, hd) floats.
void gqa_scores_int(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                    int64_t c0, const float* q, int64_t g, int64_t hd, float scale, float* scores,
                    int64_t ld, float* work, const KernelTable& t = kernel_table());
int64_t gqa_scores_int_work(const KvQuantFormat& f, int64_t n, int64_t hd);
// softmax_inplace (kernels/vec_ops.h) on each row, bit for bit: the SIMD kernels compute
// exp_f32 in double lanes (kernels/exp_f32.h) and the double sum's partials in vector lanes.
void gqa_softmax(float* scores, int64_t g, int64_t n, int64_t ld,
                 const KernelTable& t = kernel_table());

// The scalar references.
void kv_decode_head_ref(const KvRecordFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                        int64_t c0, int64_t hd, float* x);
void gqa_scores_ref(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                    float scale, float* scores, int64_t ld);
void gqa_values_ref(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                    int64_t n, float* acc);
// kv_dot_tokens per query head and group under `dot_table` (the SIMD kernels equal this with
// their own table).
void gqa_scores_int_ref(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                        int64_t c0, const float* q, int64_t g, int64_t hd, float scale,
                        float* scores, int64_t ld, float* work, const KernelTable& dot_table);

// Int8 key scores (KernelTable::kv_scores Int8, WKVQ_KV_SCORES / --kv-scores): the G query heads
// quantized once per position to int8 per group of the keys' format, then scored against 4-bit
// key codes in integer arithmetic, without decoding the keys to floats. Per head h and group k of
// the head's channels (group length L, channels k L .. k L + L - 1 of the head):
//   d = max_i |q_i| / 127, q8_i = round_half_even(q_i * (1 / d)) in [-127, 127] (d = 0: all 0;
//   a non-finite q: d = NaN, so the scores are NaN as in f32): the int8 GEMM's block quantizer
//   (kernels/qmatmul_q8.h, quantize_block_q8_ref); qsum = the f32 sum of the q_i in order;
//   score_j = scale * (sum over k in order of part_k), part_k = fma(s_jk, float(I_jk) * d, m_jk *
//   qsum), I_jk = sum_i q8_i code_jki exactly in int32,
// s_jk, m_jk record j's group scale and minimum (formats/kv_quant.h). Against the f32 scores the
// only error is q's rounding: |score - exact| <= scale * sum_k s_jk (d_k / 2) sum_i code_jki
// (plus f32 rounding of the epilogue); kernel tests hold the SIMD kernels bit for bit to the
// reference and the reference to that bound. Applies to 4-bit keys whose groups lie inside the
// head (gqa_scores_q8_applies); elsewhere attention scores as gqa_scores_int.
struct QueryQ8 {
  const int8_t* q8 = nullptr;   // q8[h * hd + i]
  const float* d = nullptr;     // d[h * groups + k], groups = hd / L
  const float* qsum = nullptr;  // likewise
};
// q (g, hd) -> q8 (g * hd), d and qsum (g * hd / group each) as above.
void quantize_query_q8(const float* q, int64_t g, int64_t hd, int64_t group, int8_t* q8, float* d,
                       float* qsum);
bool gqa_scores_q8_applies(const KvQuantFormat& f, int64_t c0, int64_t hd);
// scores[h * ld + j] for h < g, j < n. `work`: gqa_scores_q8_work(f, n, hd) floats.
void gqa_scores_q8(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                   int64_t c0, const QueryQ8& q, int64_t g, int64_t hd, float scale, float* scores,
                   int64_t ld, float* work, const KernelTable& t = kernel_table());
int64_t gqa_scores_q8_work(const KvQuantFormat& f, int64_t n, int64_t hd);
void gqa_scores_q8_ref(const KvQuantFormat& f, const uint8_t* records, int64_t stride, int64_t n,
                       int64_t c0, const QueryQ8& q, int64_t g, int64_t hd, float scale,
                       float* scores, int64_t ld);

// Which kernels attention runs for heads of hd channels stored as `f` under table t, e.g.
// "avx512: int3 decode, GQA tiles" or "reference int4 decode, avx512 GQA tiles" (groups across
// heads).
std::string kv_attend_kernel(const KvRecordFormat& f, int64_t hd,
                             const KernelTable& t = kernel_table());

}  // namespace wkvq
