// Small AVX2 helpers shared by the *_avx2.cpp kernels: lane count, tail masks, horizontal sum.
// Only for files compiled with these ISA flags (*_avx2.cpp): everything here has internal linkage,
// so no ISA-flagged copy can be picked by the linker for baseline code (kernels/qmatmul_impl.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace wkvq::detail {
namespace {

constexpr int64_t kLanes = 8;

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Lanes [0, count) set (all bits of the lane), count clamped to [0, 8].
inline __m256i lane_mask(int64_t count) {
  const int c = count >= kLanes ? 8 : count <= 0 ? 0 : static_cast<int>(count);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 weights from f32 or fp16 (uint16_t bits) storage as f32 (the conversion is exact).
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// The first `count` (< 8) of them, the other lanes 0 and not read (m = lane_mask(count)).
inline __m256 load8_first(const float* p, __m256i m, int64_t /*count*/) {
  return _mm256_maskload_ps(p, m);
}
inline __m256 load8_first(const uint16_t* p, __m256i /*m*/, int64_t count) {
  alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < count; ++i) tmp[i] = p[i];
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}
inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace wkvq::detail
