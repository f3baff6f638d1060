// Group scales and zero points of a quantized matrix for the AVX2 quantized kernels
// (qmatmul_avx2.cpp, qmatmul_gemv_avx2.cpp). Internal linkage: only for files compiled with the
// AVX2 flags (kernels/simd_avx2.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx2.h"

namespace wkvq::detail {
namespace {

// Groups whose scales and zero points are converted together.
constexpr int64_t kCoderChunk = kLanes;

// Scales and zero points of groups [g0, g0 + count) of a row (count <= 8) into s[0:8], z[0:8].
inline void load_group_params(const QMatView& w, int64_t row, int64_t g0, int64_t count, float* s,
                              int32_t* z) {
  const int64_t i = row * w.n_groups + g0;
  __m128i sh;
  __m128i zb;
  if (count >= kCoderChunk) {
    sh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales + i));
    zb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.zeros + i));
  } else {
    alignas(16) uint16_t sbuf[kCoderChunk] = {};
    alignas(16) uint8_t zbuf[16] = {};
    for (int64_t k = 0; k < count; ++k) {
      sbuf[k] = w.scales[i + k];
      zbuf[k] = w.zeros[i + k];
    }
    sh = _mm_load_si128(reinterpret_cast<const __m128i*>(sbuf));
    zb = _mm_load_si128(reinterpret_cast<const __m128i*>(zbuf));
  }
  _mm256_store_ps(s, _mm256_cvtph_ps(sh));
  _mm256_store_si256(reinterpret_cast<__m256i*>(z), _mm256_cvtepu8_epi32(zb));
}

}  // namespace
}  // namespace wkvq::detail
