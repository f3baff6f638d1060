// Group scales and zero points of a quantized matrix as AVX-512 vectors, shared by the AVX-512
// quantized kernels (qmatmul_avx512.cpp, qmatmul_gemv_avx512.cpp). Internal linkage, no standard
// library: only for files compiled with the AVX-512 flags (kernels/simd_avx512.h).
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

}  // namespace
}  // namespace wkvq::detail
