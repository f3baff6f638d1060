// The int8-query key scores of kernels/kv_attend.h (gqa_scores_q8) for the SIMD tables, and the
// 256-bit lane helpers they share with kv_attend_kernels.h's dot8 scores (both ISAs run 8 rows at a
// time in 256-bit vectors). Integer vectors only; the same code in kv_attend_avx2.cpp and
// kv_attend_avx512.cpp. Internal linkage: only for *_avx2.cpp / *_avx512.cpp, after their traits.
#pragma once

#include <cstdint>

#include "kernels/kv_quant_kernels.h"

namespace wkvq::detail {
namespace {

// Lanes [0, min(count, 8)) of a 256-bit vector.
inline __m256i dot8_mask(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count < 8 ? count : 8)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline void dot8_store(float* p, int64_t count, __m256 v) {
  if (count >= 8) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, dot8_mask(count), v);
  }
}

// gqa_scores_q8 (kv_attend.h), in 256-bit integer vectors whatever the ISA. The tile's 4-bit
// codes are widened once to bytes in channel order (a group's low-nibble plane, then its high
// one) and its scales and minima gathered; then per head and 8 records: for 64 channels at a
// time (a group's last 32 alone), maddubs multiplies code bytes (u8, <= 15) by q8 (s8, |q8| <=
// 127) and adds pairs (<= 3810 in int16), two of those are added (<= 7620), madd with ones
// widens them to int32: the sums are exact, so their order is free. An int hadd tree gives the 8
// records' I, then the reference's epilogue in 8 float lanes: t = float(I) * d, part = fma(s, t,
// m * qsum).
inline void scores_q8(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                      int64_t c0, const int8_t* q8, const float* d, const float* qsum, int64_t g,
                      int64_t hd, float scale, float* out, int64_t ld, uint8_t* codes, float* sc,
                      float* mn) {
  const int64_t len = s.group, half = len / 2, groups = hd / len, g0 = c0 / len;
  const __m256i low4 = _mm256_set1_epi8(15);
  for (int64_t j = 0; j < n; ++j) {
    const uint8_t* rec = records + j * stride;
    for (int64_t k = 0; k < groups; ++k) {
      const int64_t gk = g0 + k;
      const ScaleMin p =
          params_at(rec + gk * s.group_param_bytes, s.rel8 ? s.rel8 + gk : nullptr, 15);
      sc[k * n + j] = p.s;
      mn[k * n + j] = p.m;
      const uint8_t* c = rec + s.params_bytes + gk * s.group_code_bytes;
      uint8_t* dst = codes + j * hd + k * len;
      for (int64_t b = 0; b < half; b += 16) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + b));
        const __m128i low = _mm256_castsi256_si128(low4);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + b), _mm_and_si128(x, low));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + half + b),
                         _mm_and_si128(_mm_srli_epi16(x, 4), low));
      }
    }
  }
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int64_t h = 0; h < g; ++h) {
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
      const uint8_t* rows[8];  // rows past n repeat the last (not stored)
      for (int64_t r = 0; r < 8; ++r) rows[r] = codes + (j0 + r < n ? j0 + r : n - 1) * hd;
      const int64_t count = n - j0 < 8 ? n - j0 : 8;
      const __m256i m = dot8_mask(count);
      __m256 total = _mm256_setzero_ps();
      for (int64_t k = 0; k < groups; ++k) {
        const int8_t* qk = q8 + h * hd + k * len;
        __m256i acc[8];
        for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_si256();
        int64_t i = 0;
        for (; i + 64 <= len; i += 64) {
          const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qk + i));
          const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qk + i + 32));
          for (int r = 0; r < 8; ++r) {
            const uint8_t* x = rows[r] + k * len + i;
            const __m256i xa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
            const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
            const __m256i pairs =
                _mm256_add_epi16(_mm256_maddubs_epi16(xa, qa), _mm256_maddubs_epi16(xb, qb));
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(pairs, ones));
          }
        }
        if (i < len) {  // the last 32 channels
          const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qk + i));
          for (int r = 0; r < 8; ++r) {
            const __m256i xa =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r] + k * len + i));
            acc[r] =
                _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(xa, qa), ones));
          }
        }
        const __m256i a =
            _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
        const __m256i b =
            _mm256_hadd_epi32(_mm256_hadd_epi32(acc[4], acc[5]), _mm256_hadd_epi32(acc[6], acc[7]));
        const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                                              _mm256_permute2x128_si256(a, b, 0x31));
        const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(d[h * groups + k]));
        const __m256 mq = _mm256_mul_ps(_mm256_maskload_ps(mn + k * n + j0, m),
                                        _mm256_set1_ps(qsum[h * groups + k]));
        const __m256 part = _mm256_fmadd_ps(_mm256_maskload_ps(sc + k * n + j0, m), t, mq);
        total = k == 0 ? part : _mm256_add_ps(total, part);
      }
      dot8_store(out + h * ld + j0, count, _mm256_mul_ps(total, vscale));
    }
  }
}

}  // namespace
}  // namespace wkvq::detail
