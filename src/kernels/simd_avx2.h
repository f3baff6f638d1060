// The AVX2 (+ FMA, F16C) vector traits: the one place that names AVX2 intrinsics for the kernels
// written once over an ISA (kernels/gemm_driver.h, matmul_kernels.h, kv_quant_kernels.h). The
// *_avx2.cpp files instantiate those templates with `Avx2` and add the kernels that are
// AVX2-only (the convert-decoding quantized kernels).
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

inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t h) { return _cvtsh_ss(h); }

// min / max / sum of the 8 lanes: halves, then within 128 bits.
template <class Op>
inline float hreduce(__m256 v, Op op) {
  __m128 s = op(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = op(s, _mm_movehl_ps(s, s));
  s = op(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hsum(__m256 v) {
  return hreduce(v, [](__m128 a, __m128 b) { return _mm_add_ps(a, b); });
}

struct Avx2 {
  using F = __m256;      // 8 floats
  using I = __m256i;     // 8 int32
  using Mask = __m256i;  // lanes all-ones or zero
  static constexpr int64_t kLanes = 8;

  static Mask mask(int64_t count) { return lane_mask(count); }
  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static F loadu(const float* p) { return _mm256_loadu_ps(p); }
  static F load(const float* p) { return _mm256_load_ps(p); }  // 32-byte aligned
  static void storeu(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, F v) { _mm256_store_ps(p, v); }
  // 8 weights from f32 or fp16 (uint16_t bits) storage as f32 (the conversion is exact).
  static F loadu(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // The first `count` values (m = mask(count)), other lanes 0 and not read.
  static F load_first(const float* p, Mask m, int64_t count) {
    return count >= kLanes ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
  }
  static F load_first(const uint16_t* p, Mask /*m*/, int64_t count) {
    alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < count && i < kLanes; ++i) tmp[i] = p[i];
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
  }
  // The first `count` values, other lanes `fill`.
  static F load_fill(const float* p, int64_t count, F fill) {
    if (count >= kLanes) return _mm256_loadu_ps(p);
    const __m256i m = lane_mask(count);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static F maskz_load(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static void mask_store(float* p, Mask m, F v) { _mm256_maskstore_ps(p, m, v); }
  // Stores lanes [0, count) (m = mask(count)); vmaskmovps stores are slow on some CPUs: only for
  // tails.
  static void store_first(float* p, Mask m, int64_t count, F v) {
    if (count >= kLanes) {
      _mm256_storeu_ps(p, v);
    } else if (count > 0) {
      _mm256_maskstore_ps(p, m, v);
    }
  }

  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  // Keeps a product rounded: C++ mode lets GCC fuse a following add into an FMA.
  static void keep_rounded(F& v) { __asm__("" : "+x"(v)); }
  static float hsum(F v) { return detail::hsum(v); }
  static float hmin(F v) {
    return hreduce(v, [](__m128 a, __m128 b) { return _mm_min_ps(a, b); });
  }
  static float hmax(F v) {
    return hreduce(v, [](__m128 a, __m128 b) { return _mm_max_ps(a, b); });
  }
  // Lanes that are finite (not NaN or +-inf).
  static Mask finite(F v) {
    const F abs = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    return _mm256_castps_si256(_mm256_cmp_ps(abs, _mm256_set1_ps(__builtin_inff()), _CMP_LT_OQ));
  }
  static Mask all_lanes() { return _mm256_set1_epi32(-1); }
  static Mask mask_and(Mask a, Mask b) { return _mm256_and_si256(a, b); }
  static bool all_set(Mask m) { return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xff; }

  // In-register transpose of an 8 x 8 block: t[r] lane c -> t[c] lane r. Interleave 32-bit pairs,
  // 64-bit pairs, then 128-bit halves.
  static void transpose(F (&t)[8]) {
    F a[8];
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {  // rows 2h, 2h+1 interleaved
      a[2 * h] = _mm256_unpacklo_ps(t[2 * h], t[2 * h + 1]);
      a[2 * h + 1] = _mm256_unpackhi_ps(t[2 * h], t[2 * h + 1]);
    }
    F b[8];  // b[4g + j]: half L holds column 4L + j of rows 4g .. 4g + 3
#pragma GCC unroll 2
    for (int g = 0; g < 2; ++g) {
      const __m256d a0 = _mm256_castps_pd(a[4 * g]);
      const __m256d a1 = _mm256_castps_pd(a[4 * g + 1]);
      const __m256d a2 = _mm256_castps_pd(a[4 * g + 2]);
      const __m256d a3 = _mm256_castps_pd(a[4 * g + 3]);
      b[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(a0, a2));
      b[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a0, a2));
      b[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(a1, a3));
      b[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(a1, a3));
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {  // column 4L + j = half L of b[j] (rows 0-3), b[4 + j] (4-7)
      t[j] = _mm256_permute2f128_ps(b[j], b[4 + j], 0x20);
      t[4 + j] = _mm256_permute2f128_ps(b[j], b[4 + j], 0x31);
    }
  }

  // ---- int32 lanes (quantization codes) ----
  static I zero_i() { return _mm256_setzero_si256(); }
  static I set1_i(int v) { return _mm256_set1_epi32(v); }
  static F to_float(I v) { return _mm256_cvtepi32_ps(v); }
  static I round_to_int(F v) { return _mm256_cvtps_epi32(v); }  // current mode: half to even
  static I and_i(I a, I b) { return _mm256_and_si256(a, b); }
  static I or_i(I a, I b) { return _mm256_or_si256(a, b); }
  static I min_i(I a, I b) { return _mm256_min_epi32(a, b); }
  static I max_i(I a, I b) { return _mm256_max_epi32(a, b); }
  static I shl4(I v) { return _mm256_slli_epi32(v, 4); }
  static I shr4(I v) { return _mm256_srli_epi32(v, 4); }
  static I keep(Mask m, I v) { return _mm256_and_si256(v, m); }  // lanes outside m set to 0
  // B-bit codes (B = 2, 3) of 8 channels, bit-packed from p in channel order (code l at bits
  // B l of the little-endian bytes: formats/kv_quant.h's groups): lane l = code l. Bytes at or past
  // `avail` (<= B) are not read and count as 0.
  template <int B>
  static I unpack_codes(const uint8_t* p, int64_t avail) {
    uint32_t w = 0;
    if (avail >= 4) {
      __builtin_memcpy(&w, p, 4);  // (B = 3: the 4th byte is shifted out)
    } else if (avail >= B) {
      __builtin_memcpy(&w, p, B);
    } else {
      for (int64_t i = 0; i < avail && i < B; ++i) w |= static_cast<uint32_t>(p[i]) << (8 * i);
    }
    const __m256i shift = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(w)), shift),
                            _mm256_set1_epi32((1 << B) - 1));
  }
  // The inverse for codes < 2^B: w0 = sum_l lane l << B l (w1 = 0).
  template <int B>
  static void pack_codes(I codes, uint32_t* w0, uint32_t* w1) {
    const __m256i shift = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    const __m256i v = _mm256_sllv_epi32(codes, shift);
    __m128i x = _mm_or_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_or_si128(x, _mm_shuffle_epi32(x, 0x4e));
    x = _mm_or_si128(x, _mm_shuffle_epi32(x, 0xb1));
    *w0 = static_cast<uint32_t>(_mm_cvtsi128_si32(x));
    *w1 = 0;
  }
  // min(count, 8) code bytes widened to int32 lanes (missing lanes 0). No byte-masked loads in
  // AVX2: a short tail goes through a stack buffer.
  static I load_bytes(const uint8_t* c, int64_t count) {
    if (count >= kLanes) {
      return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c)));
    }
    alignas(16) uint8_t buf[16] = {};
    for (int64_t i = 0; i < count; ++i) buf[i] = c[i];
    return _mm256_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)));
  }
  // The low byte of lanes [0, min(count, 8)) to dst[0:count].
  static void store_bytes(uint8_t* dst, I v, int64_t count) {
    const __m256i w = _mm256_packus_epi32(v, v);  // per 128-bit half: v0..3 v0..3 (u16)
    const __m256i b = _mm256_packus_epi16(w, w);  // per half: v0..3 four times (u8)
    const __m128i bytes =
        _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    if (count >= kLanes) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), bytes);
      return;
    }
    alignas(16) uint8_t buf[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(buf), bytes);
    for (int64_t i = 0; i < count; ++i) dst[i] = buf[i];
  }
};

}  // namespace
}  // namespace wkvq::detail
