// Internal to the attention kernels (kernels/kv_attend.h): one ISA's kernels, an entry of the
// kernel table. kv_attend.cpp checks arguments and picks reference or SIMD; the SIMD files
// (kv_attend_kernels.h instantiated in kv_attend_avx2.cpp / kv_attend_avx512.cpp) only compute.
#pragma once

#include <cstdint>

#include "kernels/kv_quant_impl.h"

namespace wkvq::detail {

struct KvAttendOps {
  int64_t lanes;  // floats per vector (8: AVX2, 16: AVX-512)
  // fp16 records: channels [c0, c0 + hd) of n records `stride` bytes apart -> x (n, hd).
  void (*decode_fp16)(const uint8_t* records, int64_t stride, int64_t n, int64_t c0, int64_t hd,
                      float* x);
  // int records (2, 3, 4 or 8 bits) whose groups lie inside the head (c0, hd multiples of
  // s.group), or whose head lies inside one group (s.group a multiple of hd, the head's run of
  // codes whole bytes in one 4-bit plane or in channel order: kv_attend.cpp checks).
  void (*decode_int)(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                     int64_t c0, int64_t hd, float* x);
  // int records as above: the codes as floats (n, hd) and group k's scale and minimum of record j
  // at sc[k * n + j], mn[k * n + j] (one group, k = 0, when the head lies inside it).
  void (*decode_codes)(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                       int64_t c0, int64_t hd, float* codes, float* sc, float* mn);
  void (*scores)(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                 float scale, float* scores, int64_t ld);
  // gqa_scores_int on the output of decode_codes.
  void (*scores_int)(const KvShape& s, const float* q, int64_t g, int64_t hd, const float* codes,
                     const float* sc, const float* mn, int64_t n, float scale, float* scores,
                     int64_t ld);
  // gqa_scores_q8 (kv_attend.h) for 4-bit records whose groups of s.group (a multiple of 32)
  // lie inside the head: `codes` (n * hd bytes), `sc` and `mn` (n * hd / s.group floats each) are
  // scratch.
  void (*scores_q8)(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n, int64_t c0,
                    const int8_t* q8, const float* d, const float* qsum, int64_t g, int64_t hd,
                    float scale, float* scores, int64_t ld, uint8_t* codes, float* sc, float* mn);
  void (*values)(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                 int64_t n, float* acc);
  // softmax_inplace (kernels/vec_ops.h) on one row of n floats, bit for bit.
  void (*softmax)(float* x, int64_t n);
};

// Defined in kv_attend_avx2.cpp / kv_attend_avx512.cpp (compiled with those ISA flags).
const KvAttendOps& kv_attend_ops_avx2();
const KvAttendOps& kv_attend_ops_avx512();

}  // namespace wkvq::detail
