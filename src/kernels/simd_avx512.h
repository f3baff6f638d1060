// The AVX-512 vector traits: the one place that names AVX-512 intrinsics for the kernels written
// once over an ISA (kernels/gemm_driver.h, matmul_kernels.h, kv_quant_kernels.h). The
// *_avx512.cpp files instantiate those templates with `Avx512` and add the kernels that are
// AVX-512-only (the table-decoding quantized kernels).
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

inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t h) { return _cvtsh_ss(h); }

// min / max / sum of the 16 lanes, pairwise: halves, then quarters, then within 128 bits.
template <class Op512, class Op128>
inline float hreduce(__m512 v, Op512 op, Op128 op128) {
  v = op(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = op(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(v);
  s = op128(s, _mm_movehl_ps(s, s));
  s = op128(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hsum(__m512 v) {
  return hreduce(
      v, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); },
      [](__m128 a, __m128 b) { return _mm_add_ps(a, b); });
}

struct Avx512 {
  using F = __m512;        // 16 floats
  using I = __m512i;       // 16 int32
  using Mask = __mmask16;  // one bit per lane
  static constexpr int64_t kLanes = 16;

  static Mask mask(int64_t count) { return lane_mask(count); }
  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static F loadu(const float* p) { return _mm512_loadu_ps(p); }
  static F load(const float* p) { return _mm512_load_ps(p); }  // 64-byte aligned
  static void storeu(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, F v) { _mm512_store_ps(p, v); }
  // 16 weights from f32 or fp16 (uint16_t bits) storage as f32 (the conversion is exact).
  static F loadu(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  // The first `count` values (m = mask(count)), other lanes 0 and not read.
  static F load_first(const float* p, Mask m, int64_t /*count*/) {
    return _mm512_maskz_loadu_ps(m, p);
  }
  static F load_first(const uint16_t* p, Mask m, int64_t /*count*/) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
  // The first `count` values, other lanes `fill`.
  static F load_fill(const float* p, int64_t count, F fill) {
    return _mm512_mask_loadu_ps(fill, lane_mask(count), p);
  }
  static F maskz_load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void mask_store(float* p, Mask m, F v) { _mm512_mask_storeu_ps(p, m, v); }
  static void store_first(float* p, Mask m, int64_t /*count*/, F v) {
    _mm512_mask_storeu_ps(p, m, v);
  }

  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  // Keeps a product rounded: C++ mode lets GCC fuse a following add into an FMA.
  static void keep_rounded(F& v) { __asm__("" : "+v"(v)); }
  static float hsum(F v) { return detail::hsum(v); }
  static float hmin(F v) {
    return hreduce(
        v, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); },
        [](__m128 a, __m128 b) { return _mm_min_ps(a, b); });
  }
  static float hmax(F v) {
    return hreduce(
        v, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); },
        [](__m128 a, __m128 b) { return _mm_max_ps(a, b); });
  }
  // Lanes that are finite (not NaN or +-inf).
  static Mask finite(F v) { return static_cast<Mask>(~_mm512_fpclass_ps_mask(v, 0x99) & 0xFFFF); }
  static Mask all_lanes() { return static_cast<Mask>(0xFFFF); }
  static Mask mask_and(Mask a, Mask b) { return static_cast<Mask>(a & b); }
  static bool all_set(Mask m) { return m == 0xFFFF; }

  // In-register transpose of a 16 x 16 block: t[r] lane c -> t[c] lane r. Three rounds of
  // shuffles (32-bit pairs, 64-bit pairs, 128-bit lanes), 64 shuffles for 256 floats.
  static void transpose(F (&t)[16]) {
    F a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 8; ++i) {
      a[2 * i] = _mm512_unpacklo_ps(t[2 * i], t[2 * i + 1]);
      a[2 * i + 1] = _mm512_unpackhi_ps(t[2 * i], t[2 * i + 1]);
    }
    F b[16];  // b[4i + m], 128-bit lane L: column 4L + m of rows 4i..4i+3
#pragma GCC unroll 16
    for (int i = 0; i < 4; ++i) {
      const __m512d a0 = _mm512_castps_pd(a[4 * i]);
      const __m512d a1 = _mm512_castps_pd(a[4 * i + 1]);
      const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]);
      const __m512d a3 = _mm512_castps_pd(a[4 * i + 3]);
      b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
      b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
      b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
      b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {  // column 4L + m = lane L of b[m], b[4 + m], b[8 + m], b[12 + m]
      const F u0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44);  // L0 L1 of each
      const F u1 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
      const F v0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);  // L2 L3 of each
      const F v1 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
      t[m] = _mm512_shuffle_f32x4(u0, u1, 0x88);
      t[4 + m] = _mm512_shuffle_f32x4(u0, u1, 0xDD);
      t[8 + m] = _mm512_shuffle_f32x4(v0, v1, 0x88);
      t[12 + m] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
    }
  }

  // ---- int32 lanes (quantization codes) ----
  static I zero_i() { return _mm512_setzero_si512(); }
  static I set1_i(int v) { return _mm512_set1_epi32(v); }
  static F to_float(I v) { return _mm512_cvtepi32_ps(v); }
  static I round_to_int(F v) { return _mm512_cvtps_epi32(v); }  // current mode: half to even
  static I and_i(I a, I b) { return _mm512_and_si512(a, b); }
  static I or_i(I a, I b) { return _mm512_or_si512(a, b); }
  static I min_i(I a, I b) { return _mm512_min_epi32(a, b); }
  static I max_i(I a, I b) { return _mm512_max_epi32(a, b); }
  static I shl4(I v) { return _mm512_slli_epi32(v, 4); }
  static I shr4(I v) { return _mm512_srli_epi32(v, 4); }
  static I keep(Mask m, I v) { return _mm512_maskz_mov_epi32(m, v); }  // lanes outside m set to 0
  // B-bit codes (B = 2, 3) of 16 channels, bit-packed from p in channel order (code l at bits
  // B l of the little-endian bytes: formats/kv_quant.h's groups): lane l = code l. Bytes at or past
  // `avail` (<= 2 B) are not read (a masked load) and count as 0. The 2 B bytes go to every 128-bit
  // block, a byte shuffle gives lanes 0..7 bytes 0..B-1 and lanes 8..15 bytes B..2B-1, then each
  // lane shifts by B (l % 8).
  template <int B>
  static I unpack_codes(const uint8_t* p, int64_t avail) {
    const __m128i bytes = _mm_maskz_loadu_epi8(lane_mask(avail < 2 * B ? avail : 2 * B), p);
    // per dword: byte indices (0x80: zero), lanes 0..7 then 8..15
    const int lo = B == 3 ? static_cast<int>(0x80020100u) : static_cast<int>(0x80800100u);
    const int hi = B == 3 ? static_cast<int>(0x80050403u) : static_cast<int>(0x80800302u);
    const __m512i idx =
        _mm512_setr_epi32(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi);
    const __m512i shift = _mm512_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B, 0, B,
                                            2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    const __m512i w = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(bytes), idx);
    return _mm512_and_si512(_mm512_srlv_epi32(w, shift), _mm512_set1_epi32((1 << B) - 1));
  }
  // The inverse for codes < 2^B: w0 = sum_{l < 8} lane l << B l, w1 the same of lanes 8..15.
  template <int B>
  static void pack_codes(I codes, uint32_t* w0, uint32_t* w1) {
    const __m512i shift = _mm512_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B, 0, B,
                                            2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    const __m512i v = _mm512_sllv_epi32(codes, shift);
    const __m256i a = _mm512_castsi512_si256(v), b = _mm512_extracti64x4_epi64(v, 1);
    // 128-bit half 0: lanes 0..3 | 4..7 of a, half 1: those of b
    __m256i x = _mm256_or_si256(_mm256_permute2x128_si256(a, b, 0x20),
                                _mm256_permute2x128_si256(a, b, 0x31));
    x = _mm256_or_si256(x, _mm256_shuffle_epi32(x, 0x4e));
    x = _mm256_or_si256(x, _mm256_shuffle_epi32(x, 0xb1));
    *w0 = static_cast<uint32_t>(_mm256_extract_epi32(x, 0));
    *w1 = static_cast<uint32_t>(_mm256_extract_epi32(x, 4));
  }
  // min(count, 16) code bytes widened to int32 lanes (missing lanes 0 and not read).
  static I load_bytes(const uint8_t* c, int64_t count) {
    return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lane_mask(count), c));
  }
  // The low byte of lanes [0, min(count, 16)) to dst[0:count].
  static void store_bytes(uint8_t* dst, I v, int64_t count) {
    _mm_mask_storeu_epi8(dst, lane_mask(count), _mm512_cvtepi32_epi8(v));
  }
};

}  // namespace
}  // namespace wkvq::detail
