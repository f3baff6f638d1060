// Small AVX-512 helpers shared by the *_avx512.cpp kernels: lane count, tail masks, horizontal
// sum.
// Only for files compiled with these ISA flags (*_avx512.cpp): everything here has internal
// linkage, so no ISA-flagged copy can be picked by the linker for baseline code
// (kernels/qmatmul_impl.h).
#pragma once

// GCC 12's AVX-512 intrinsics trip -Wuninitialized inside their own header (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

namespace wkvq::detail {
namespace {

constexpr int64_t kLanes = 16;

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Lanes [0, count) set, count clamped to [0, 16].
inline __mmask16 lane_mask(int64_t count) {
  if (count >= kLanes) return static_cast<__mmask16>(0xFFFF);
  if (count <= 0) return 0;
  return static_cast<__mmask16>((1u << count) - 1u);
}

// 16 weights from f32 or fp16 (uint16_t bits) storage as f32 (the conversion is exact).
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// Lanes outside m are 0 and not read.
inline __m512 maskz_load16(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 maskz_load16(__mmask16 m, const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t h) { return _cvtsh_ss(h); }

// Sum of the 16 lanes, pairwise: halves, then quarters, then within 128 bits.
inline float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace wkvq::detail
