// AVX2 + FMA + F16C KV quantization kernels, 4 and 8 bits (compiled with -mavx2 -mfma -mf16c).
//
// Same structure as kv_quant_avx512.cpp with 8 lanes. AVX2 has no byte-masked loads or stores,
// so a tail of fewer than 8 code bytes goes through a small stack buffer; float tails use
// maskload / maskstore. Nothing outside the group is read or written.
#include <immintrin.h>

#include "kernels/kv_quant_impl.h"
#include "kernels/simd_avx2.h"

namespace wkvq::detail {
namespace {

inline float hmin(__m256 v) {
  __m128 s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_min_ps(s, _mm_movehl_ps(s, s));
  s = _mm_min_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline unsigned short load_u16(const uint8_t* p) {
  return static_cast<unsigned short>(p[0] | (p[1] << 8));
}

inline void store_u16(uint8_t* p, unsigned short v) {
  p[0] = static_cast<uint8_t>(v & 0xffu);
  p[1] = static_cast<uint8_t>(v >> 8);
}

inline bool fp16_is_finite(unsigned short h) { return (h & 0x7c00u) != 0x7c00u; }

// min(count, 8) code bytes widened to int32 lanes (missing lanes 0).
inline __m256i load_codes(const uint8_t* c, int64_t count) {
  if (count >= kLanes)
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c)));
  alignas(16) uint8_t buf[16] = {};
  for (int64_t i = 0; i < count; ++i) buf[i] = c[i];
  return _mm256_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)));
}

// The low byte of each int32 lane, in lane order, in bytes 0..7.
inline __m128i narrow_to_bytes(__m256i v) {
  const __m256i w = _mm256_packus_epi32(v, v);  // per 128-bit half: v0..3 v0..3 (u16)
  const __m256i b = _mm256_packus_epi16(w, w);  // per half: v0..3 four times (u8)
  return _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
}

inline void store_bytes(uint8_t* dst, __m128i bytes, int64_t count) {
  if (count >= kLanes) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), bytes);
    return;
  }
  alignas(16) uint8_t buf[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(buf), bytes);
  for (int64_t i = 0; i < count; ++i) dst[i] = buf[i];
}

inline __m256 low_nibbles(__m256i v) {
  return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
}

inline __m256 high_nibbles(__m256i v) { return _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)); }

// sum_i q_i * code_i over one group as 8 lane sums (and accq += q_i when WithSum).
template <int Bits, bool WithSum>
inline __m256 dot_group(const float* q, const uint8_t* c, int64_t len, __m256& accq) {
  __m256 a0 = _mm256_setzero_ps();
  __m256 a1 = _mm256_setzero_ps();
  if constexpr (Bits == 4) {
    const int64_t h = (len + 1) / 2;
    for (int64_t j = 0; j < h; j += kLanes) {
      const __m256i v = load_codes(c + j, h - j);
      const __m256 qlo = _mm256_maskload_ps(q + j, lane_mask(h - j));
      const __m256 qhi = _mm256_maskload_ps(q + h + j, lane_mask(len - h - j));
      a0 = _mm256_fmadd_ps(qlo, low_nibbles(v), a0);
      a1 = _mm256_fmadd_ps(qhi, high_nibbles(v), a1);
      if constexpr (WithSum) accq = _mm256_add_ps(accq, _mm256_add_ps(qlo, qhi));
    }
  } else {
    for (int64_t j = 0; j < len; j += 2 * kLanes) {
      const __m256 q0 = _mm256_maskload_ps(q + j, lane_mask(len - j));
      const __m256 q1 = _mm256_maskload_ps(q + j + kLanes, lane_mask(len - j - kLanes));
      a0 = _mm256_fmadd_ps(q0, _mm256_cvtepi32_ps(load_codes(c + j, len - j)), a0);
      a1 =
          _mm256_fmadd_ps(q1, _mm256_cvtepi32_ps(load_codes(c + j + kLanes, len - j - kLanes)), a1);
      if constexpr (WithSum) accq = _mm256_add_ps(accq, _mm256_add_ps(q0, q1));
    }
  }
  return _mm256_add_ps(a0, a1);
}

// out[i] += p * (mn + code_i * scale) on min(count, 8) lanes; code_i * scale is exact, so the fma
// is the reference's sum.
inline void axpy_run(__m256 p, __m256 scale, __m256 mn, __m256 codes, int64_t count, float* out) {
  if (count <= 0) return;
  const __m256 x = _mm256_fmadd_ps(codes, scale, mn);
  __m256 px = _mm256_mul_ps(p, x);
  __asm__("" : "+x"(px));  // keep the product rounded: C++ mode lets GCC fuse mul + add
  if (count >= kLanes) {   // vmaskmovps stores are slow on some CPUs: only for tails
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), px));
  } else {
    const __m256i m = lane_mask(count);
    _mm256_maskstore_ps(out, m, _mm256_add_ps(_mm256_maskload_ps(out, m), px));
  }
}

template <int Bits>
inline void axpy_group(float p, const uint8_t* c, int64_t len, float scale, float mn, float* out) {
  const __m256 vp = _mm256_set1_ps(p);
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 vm = _mm256_set1_ps(mn);
  if constexpr (Bits == 4) {
    const int64_t h = (len + 1) / 2;
    for (int64_t j = 0; j < h; j += kLanes) {
      const __m256i v = load_codes(c + j, h - j);
      axpy_run(vp, vs, vm, low_nibbles(v), h - j, out + j);
      axpy_run(vp, vs, vm, high_nibbles(v), len - h - j, out + h + j);
    }
  } else {
    for (int64_t j = 0; j < len; j += kLanes) {
      axpy_run(vp, vs, vm, _mm256_cvtepi32_ps(load_codes(c + j, len - j)), len - j, out + j);
    }
  }
}

// min(count, 8) values of x; missing lanes get `fill` (a value of the group).
inline __m256 load_values(const float* x, int64_t count, __m256 fill) {
  if (count >= kLanes) return _mm256_loadu_ps(x);
  const __m256i m = lane_mask(count);
  return _mm256_blendv_ps(fill, _mm256_maskload_ps(x, m), _mm256_castsi256_ps(m));
}

// Codes of one run: clamp(round((x - m) / s), 0, qmax), 0 when s == 0; lanes >= count 0.
inline __m256i codes_of(const float* x, int64_t count, __m256 vm, __m256 vs, bool constant,
                        int qmax) {
  if (constant || count <= 0) return _mm256_setzero_si256();
  const __m256 v = load_values(x, count, vm);
  const __m256i q = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_sub_ps(v, vm), vs));  // half to even
  const __m256i c =
      _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(qmax));
  return _mm256_and_si256(c, lane_mask(count));
}

// Quantizes one group; false when it holds a non-finite value or overflows fp16.
bool quantize_group(const float* x, int64_t len, int bits, uint8_t* params, uint8_t* dst) {
  const int qmax = (1 << bits) - 1;
  const __m256 first = _mm256_set1_ps(x[0]);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  __m256 vmin = first;
  __m256 vmax = first;
  __m256 finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int64_t j = 0; j < len; j += kLanes) {
    const __m256 v = load_values(x + j, len - j, first);
    vmin = _mm256_min_ps(vmin, v);
    vmax = _mm256_max_ps(vmax, v);
    finite = _mm256_and_ps(finite, _mm256_cmp_ps(_mm256_and_ps(v, abs_mask), inf, _CMP_LT_OQ));
  }
  if (_mm256_movemask_ps(finite) != 0xff) return false;
  const float mn = hmin(vmin);
  const float mx = hmax(vmax);
  const unsigned short s16 =
      _cvtss_sh((mx - mn) / static_cast<float>(qmax), _MM_FROUND_TO_NEAREST_INT);
  const unsigned short m16 = _cvtss_sh(mn, _MM_FROUND_TO_NEAREST_INT);
  if (!fp16_is_finite(s16) || !fp16_is_finite(m16)) return false;
  store_u16(params, s16);
  store_u16(params + 2, m16);
  const float s = _cvtsh_ss(s16);
  const __m256 vs = _mm256_set1_ps(s);
  const __m256 vm = _mm256_set1_ps(_cvtsh_ss(m16));
  const bool constant = !(s > 0.0f);
  if (bits == 4) {
    const int64_t h = (len + 1) / 2;
    for (int64_t j = 0; j < h; j += kLanes) {
      const __m256i lo = codes_of(x + j, h - j, vm, vs, constant, qmax);
      const __m256i hi = codes_of(x + h + j, len - h - j, vm, vs, constant, qmax);
      store_bytes(dst + j, narrow_to_bytes(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4))), h - j);
    }
  } else {
    for (int64_t j = 0; j < len; j += kLanes) {
      store_bytes(dst + j, narrow_to_bytes(codes_of(x + j, len - j, vm, vs, constant, qmax)),
                  len - j);
    }
  }
  return true;
}

}  // namespace

int64_t kv_quantize_token_avx2(const KvShape& s, const float* x, uint8_t* record) {
  for (int64_t g = 0; g < s.n_groups; ++g) {
    const int64_t c0 = g * s.group;
    const int64_t len = g + 1 < s.n_groups ? s.group : s.channels - c0;
    if (!quantize_group(x + c0, len, s.bits, record + 4 * g,
                        record + s.params_bytes + g * s.group_code_bytes)) {
      return g;
    }
  }
  return -1;
}

float kv_dot_avx2(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                  float mn) {
  __m256 accq = _mm256_setzero_ps();
  const __m256 acc =
      bits == 4 ? dot_group<4, true>(q, codes, len, accq) : dot_group<8, true>(q, codes, len, accq);
  return scale * hsum(acc) + mn * hsum(accq);
}

void kv_axpy_avx2(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                  float* out) {
  if (bits == 4) {
    axpy_group<4>(p, codes, len, scale, mn, out);
  } else {
    axpy_group<8>(p, codes, len, scale, mn, out);
  }
}

void kv_dot_tokens_avx2(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                        int64_t len, int bits, const float* q, float* scores) {
  __m256 accq = _mm256_setzero_ps();
  for (int64_t j = 0; j < len; j += kLanes) {
    accq = _mm256_add_ps(accq, _mm256_maskload_ps(q + j, lane_mask(len - j)));
  }
  const float sum_q = hsum(accq);
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* pt = params + t * stride;
    const __m256 acc = bits == 4 ? dot_group<4, false>(q, codes + t * stride, len, accq)
                                 : dot_group<8, false>(q, codes + t * stride, len, accq);
    scores[t] = _cvtsh_ss(load_u16(pt)) * hsum(acc) + _cvtsh_ss(load_u16(pt + 2)) * sum_q;
  }
}

// Channel runs outer, tokens inner: each run of out stays in a register over all n tokens (same
// per-element operations in the same token order as the reference).
void kv_axpy_tokens_avx2(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                         int64_t len, int bits, const float* p, float* out) {
  const int64_t runs = bits == 4 ? (len + 1) / 2 : len;  // bytes of codes per group
  const int64_t h = bits == 4 ? runs : 0;
  for (int64_t j = 0; j < runs; j += kLanes) {
    const int64_t n0 = runs - j;
    const int64_t n1 = bits == 4 ? len - h - j : 0;
    const __m256i m0 = lane_mask(n0);
    const __m256i m1 = lane_mask(n1);
    __m256 o0 = _mm256_maskload_ps(out + j, m0);
    __m256 o1 = _mm256_maskload_ps(out + h + j, m1);
    for (int64_t t = 0; t < n; ++t) {
      const uint8_t* pt = params + t * stride;
      const __m256 vs = _mm256_set1_ps(_cvtsh_ss(load_u16(pt)));
      const __m256 vm = _mm256_set1_ps(_cvtsh_ss(load_u16(pt + 2)));
      const __m256 vp = _mm256_set1_ps(p[t]);
      const __m256i v = load_codes(codes + t * stride + j, n0);
      __m256 px0 = _mm256_mul_ps(
          vp, _mm256_fmadd_ps(bits == 4 ? low_nibbles(v) : _mm256_cvtepi32_ps(v), vs, vm));
      __asm__("" : "+x"(px0));  // keep the product rounded (no fused multiply-add)
      o0 = _mm256_add_ps(o0, px0);
      if (bits == 4) {
        __m256 px1 = _mm256_mul_ps(vp, _mm256_fmadd_ps(high_nibbles(v), vs, vm));
        __asm__("" : "+x"(px1));
        o1 = _mm256_add_ps(o1, px1);
      }
    }
    if (n0 >= kLanes) {
      _mm256_storeu_ps(out + j, o0);
    } else {
      _mm256_maskstore_ps(out + j, m0, o0);
    }
    if (n1 >= kLanes) {
      _mm256_storeu_ps(out + h + j, o1);
    } else if (n1 > 0) {
      _mm256_maskstore_ps(out + h + j, m1, o1);
    }
  }
}

}  // namespace wkvq::detail
