// Group scales and zero points of a quantized matrix as AVX-512 vectors, shared by the AVX-512
// quantized kernels (qmatmul_avx512.cpp, qmatmul_gemv_avx512.cpp, the int8 GEMV and the AMX GEMM).
// Internal linkage, no standard library: only for files compiled with the AVX-512 flags
// (kernels/simd_avx512.h).
#pragma once

#include <cstdint>

#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

// Groups whose s and -z s are converted together (one vector of fp16 scales and of zeros).
constexpr int64_t kCoderChunk = kLanes;

// s and -z s of groups [g0, g0 + count) of a row (count <= 16) into s[0:count], neg_zs[0:count].
inline void load_group_params(const QMatView& w, int64_t row, int64_t g0, int64_t count, float* s,
                              float* neg_zs) {
  const __mmask16 m = lane_mask(count);
  const int64_t i = row * w.n_groups + g0;
  const __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w.scales + i));
  const __m512 zv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, w.zeros + i)));
  _mm512_store_ps(s, sv);
  _mm512_store_ps(neg_zs, _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(zv, sv)));
}

// The 4-bit lookup table of one (row, group): T[k] = (k - z) s for k = 0..15, exact (k s and z s
// are 4-bit integers times an fp16 scale), from s and -z s. vpermps with a code in an index's low
// 4 bits gives W^ (the dot kernel, qmatmul_avx512.cpp, and the table GEMV,
// qmatmul_gemv_avx512.cpp).
inline __m512 group_table(float s, float neg_zs) {
  const __m512 k = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_fmadd_ps(k, _mm512_set1_ps(s), _mm512_set1_ps(neg_zs));
}

// Per group g of W rows [o, o + rows): s at params[g * 32 + r], z * s at params[g * 32 + 16 + r]
// (rows >= `rows`: zero). z * s is exact (z < 16, s fp16), as in the int8 GEMM's panels. Shared
// by the int8 GEMV (qmatmul_q8_gemv_avx512vnni.cpp) and the AMX int8 GEMM (qmatmul_q8_amx.cpp).
inline void tile_params(const QMatView& w, int64_t o, int64_t rows, float* params) {
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += kLanes) {
    const __mmask16 m = lane_mask(w.n_groups - g0);
    __m512 s[16];
    __m512 zs[16];
#pragma GCC unroll 16
    for (int r = 0; r < kLanes; ++r) {
      if (r < rows) {
        const int64_t at = (o + r) * w.n_groups + g0;
        s[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w.scales + at));
        const __m512 z =
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, w.zeros + at)));
        zs[r] = _mm512_mul_ps(z, s[r]);
      } else {
        s[r] = _mm512_setzero_ps();
        zs[r] = _mm512_setzero_ps();
      }
    }
    Avx512::transpose(s);
    Avx512::transpose(zs);
    for (int64_t g = g0; g < min64(w.n_groups, g0 + kLanes); ++g) {
      _mm512_store_ps(params + g * 2 * kLanes, s[g - g0]);
      _mm512_store_ps(params + g * 2 * kLanes + kLanes, zs[g - g0]);
    }
  }
}

// Prefetch (into L2) the scales and zeros of W rows [o, o + rows), clamped to the matrix: the
// GEMVs call it a few tiles ahead of tile_params, whose loads would otherwise wait on memory (they
// are a stream of their own beside the codes').
inline void prefetch_params(const QMatView& w, int64_t o, int64_t rows) {
  const int64_t end = min64(o + rows, w.rows);
  if (o >= end) return;
  const auto* s0 = reinterpret_cast<const char*>(w.scales + o * w.n_groups);
  const auto* s1 = reinterpret_cast<const char*>(w.scales + end * w.n_groups);
  for (const char* p = s0; p < s1; p += 64) _mm_prefetch(p, _MM_HINT_T1);
  const auto* z0 = reinterpret_cast<const char*>(w.zeros + o * w.n_groups);
  const auto* z1 = reinterpret_cast<const char*>(w.zeros + end * w.n_groups);
  for (const char* p = z0; p < z1; p += 64) _mm_prefetch(p, _MM_HINT_T1);
}

}  // namespace
}  // namespace wkvq::detail
