// AVX-512 KV quantization kernels, 4 and 8 bits (compiled with -mavx512f/bw/vl/dq; chosen at run time).
//
// 4-bit groups use the "planes" layout of formats/kv_quant.h: 16 code bytes widened to 16 lanes
// give channels j..j+15 (low nibbles) and h+j..h+j+15 (high nibbles), both contiguous runs of q,
// x or out, so every step is two aligned-in-spirit vector runs and no shuffles. Tails (a run
// shorter than 16) use masked loads and stores: nothing outside the group is read or written.

#include "kernels/kv_quant_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

inline float hmin(__m512 v) {
  v = _mm512_min_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_min_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_min_ps(s, _mm_movehl_ps(s, s));
  s = _mm_min_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m512 v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(v);
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

// 16 codes (bytes, masked) widened to int32 lanes.
inline __m512i load_codes(__mmask16 m, const uint8_t* c) {
  return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, c));
}

inline __m512 low_nibbles(__m512i v) {
  return _mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(15)));
}

inline __m512 high_nibbles(__m512i v) { return _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)); }

// Returns sum_i q_i * code_i over one group as 16 lane sums (and accq += q_i when WithSum). Two
// accumulators halve the FMA dependency chain of a short group.
template <int Bits, bool WithSum>
inline __m512 dot_group(const float* q, const uint8_t* c, int64_t len, __m512& accq) {
  __m512 a0 = _mm512_setzero_ps();
  __m512 a1 = _mm512_setzero_ps();
  if constexpr (Bits == 4) {
    const int64_t h = (len + 1) / 2;
    for (int64_t j = 0; j < h; j += kLanes) {
      const __mmask16 mlo = lane_mask(h - j);
      const __mmask16 mhi = lane_mask(len - h - j);
      const __m512i v = load_codes(mlo, c + j);
      const __m512 qlo = _mm512_maskz_loadu_ps(mlo, q + j);
      const __m512 qhi = _mm512_maskz_loadu_ps(mhi, q + h + j);
      a0 = _mm512_fmadd_ps(qlo, low_nibbles(v), a0);
      a1 = _mm512_fmadd_ps(qhi, high_nibbles(v), a1);
      if constexpr (WithSum) accq = _mm512_add_ps(accq, _mm512_add_ps(qlo, qhi));
    }
  } else {
    for (int64_t j = 0; j < len; j += 2 * kLanes) {
      const __mmask16 m0 = lane_mask(len - j);
      const __mmask16 m1 = lane_mask(len - j - kLanes);
      const __m512 q0 = _mm512_maskz_loadu_ps(m0, q + j);
      const __m512 q1 = _mm512_maskz_loadu_ps(m1, q + j + kLanes);
      a0 = _mm512_fmadd_ps(q0, _mm512_cvtepi32_ps(load_codes(m0, c + j)), a0);
      a1 = _mm512_fmadd_ps(q1, _mm512_cvtepi32_ps(load_codes(m1, c + j + kLanes)), a1);
      if constexpr (WithSum) accq = _mm512_add_ps(accq, _mm512_add_ps(q0, q1));
    }
  }
  return _mm512_add_ps(a0, a1);
}

// out[i] += p * (mn + code_i * scale): code_i * scale is exact, so the fma is the reference's sum.
inline void axpy_run(__m512 p, __m512 scale, __m512 mn, __m512 codes, __mmask16 m, float* out) {
  const __m512 x = _mm512_fmadd_ps(codes, scale, mn);
  const __m512 o = _mm512_maskz_loadu_ps(m, out);
  __m512 px = _mm512_mul_ps(p, x);
  __asm__("" : "+v"(px));  // keep the product rounded: C++ mode lets GCC fuse mul + add
  _mm512_mask_storeu_ps(out, m, _mm512_add_ps(o, px));
}

template <int Bits>
inline void axpy_group(float p, const uint8_t* c, int64_t len, float scale, float mn, float* out) {
  const __m512 vp = _mm512_set1_ps(p);
  const __m512 vs = _mm512_set1_ps(scale);
  const __m512 vm = _mm512_set1_ps(mn);
  if constexpr (Bits == 4) {
    const int64_t h = (len + 1) / 2;
    for (int64_t j = 0; j < h; j += kLanes) {
      const __mmask16 mlo = lane_mask(h - j);
      const __m512i v = load_codes(mlo, c + j);
      axpy_run(vp, vs, vm, low_nibbles(v), mlo, out + j);
      axpy_run(vp, vs, vm, high_nibbles(v), lane_mask(len - h - j), out + h + j);
    }
  } else {
    for (int64_t j = 0; j < len; j += kLanes) {
      const __mmask16 m = lane_mask(len - j);
      axpy_run(vp, vs, vm, _mm512_cvtepi32_ps(load_codes(m, c + j)), m, out + j);
    }
  }
}

// Codes of one run of x: clamp(round((x - m) / s), 0, qmax), 0 when s == 0; masked-off lanes 0.
inline __m512i codes_of(__m512 x, __mmask16 m, __m512 vm, __m512 vs, bool constant, int qmax) {
  if (constant) return _mm512_setzero_si512();
  const __m512i q = _mm512_cvtps_epi32(_mm512_div_ps(_mm512_sub_ps(x, vm), vs));  // half to even
  const __m512i c =
      _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(qmax));
  return _mm512_maskz_mov_epi32(m, c);
}

// Quantizes one group; false when it holds a non-finite value or overflows fp16.
bool quantize_group(const float* x, int64_t len, int bits, uint8_t* params, uint8_t* dst) {
  const int qmax = (1 << bits) - 1;
  __m512 vmin = _mm512_set1_ps(x[0]);
  __m512 vmax = vmin;
  __mmask16 bad = 0;
  for (int64_t j = 0; j < len; j += kLanes) {
    const __mmask16 m = lane_mask(len - j);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
    vmin = _mm512_mask_min_ps(vmin, m, vmin, v);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
    bad = static_cast<__mmask16>(bad | _mm512_mask_fpclass_ps_mask(m, v, 0x99));  // NaN, +-inf
  }
  if (bad != 0) return false;
  const float mn = hmin(vmin);
  const float mx = hmax(vmax);
  const unsigned short s16 =
      _cvtss_sh((mx - mn) / static_cast<float>(qmax), _MM_FROUND_TO_NEAREST_INT);
  const unsigned short m16 = _cvtss_sh(mn, _MM_FROUND_TO_NEAREST_INT);
  if (!fp16_is_finite(s16) || !fp16_is_finite(m16)) return false;
  store_u16(params, s16);
  store_u16(params + 2, m16);
  const float s = _cvtsh_ss(s16);
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 vm = _mm512_set1_ps(_cvtsh_ss(m16));
  const bool constant = !(s > 0.0f);
  if (bits == 4) {
    const int64_t h = (len + 1) / 2;
    for (int64_t j = 0; j < h; j += kLanes) {
      const __mmask16 mlo = lane_mask(h - j);
      const __mmask16 mhi = lane_mask(len - h - j);
      const __m512i lo = codes_of(_mm512_maskz_loadu_ps(mlo, x + j), mlo, vm, vs, constant, qmax);
      const __m512i hi =
          codes_of(_mm512_maskz_loadu_ps(mhi, x + h + j), mhi, vm, vs, constant, qmax);
      const __m512i bytes = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 4));
      _mm_mask_storeu_epi8(dst + j, mlo, _mm512_cvtepi32_epi8(bytes));
    }
  } else {
    for (int64_t j = 0; j < len; j += kLanes) {
      const __mmask16 m = lane_mask(len - j);
      const __m512i c = codes_of(_mm512_maskz_loadu_ps(m, x + j), m, vm, vs, constant, qmax);
      _mm_mask_storeu_epi8(dst + j, m, _mm512_cvtepi32_epi8(c));
    }
  }
  return true;
}

}  // namespace

int64_t kv_quantize_token_avx512(const KvShape& s, const float* x, uint8_t* record) {
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

float kv_dot_avx512(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                    float mn) {
  __m512 accq = _mm512_setzero_ps();
  const __m512 acc =
      bits == 4 ? dot_group<4, true>(q, codes, len, accq) : dot_group<8, true>(q, codes, len, accq);
  return scale * hsum(acc) + mn * hsum(accq);
}

void kv_axpy_avx512(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                    float* out) {
  if (bits == 4) {
    axpy_group<4>(p, codes, len, scale, mn, out);
  } else {
    axpy_group<8>(p, codes, len, scale, mn, out);
  }
}

void kv_dot_tokens_avx512(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                          int64_t len, int bits, const float* q, float* scores) {
  __m512 accq = _mm512_setzero_ps();
  for (int64_t j = 0; j < len; j += kLanes) {
    accq = _mm512_add_ps(accq, _mm512_maskz_loadu_ps(lane_mask(len - j), q + j));
  }
  const float sum_q = hsum(accq);
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* pt = params + t * stride;
    const __m512 acc = bits == 4 ? dot_group<4, false>(q, codes + t * stride, len, accq)
                                 : dot_group<8, false>(q, codes + t * stride, len, accq);
    scores[t] = _cvtsh_ss(load_u16(pt)) * hsum(acc) + _cvtsh_ss(load_u16(pt + 2)) * sum_q;
  }
}

// Channel runs outer, tokens inner: each run of out stays in a register over all n tokens (same
// per-element operations in the same token order as the reference).
void kv_axpy_tokens_avx512(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                           int64_t len, int bits, const float* p, float* out) {
  const int64_t runs = bits == 4 ? (len + 1) / 2 : len;  // bytes of codes per group
  const int64_t h = bits == 4 ? runs : 0;
  for (int64_t j = 0; j < runs; j += kLanes) {
    const __mmask16 m0 = lane_mask(runs - j);
    const __mmask16 m1 = bits == 4 ? lane_mask(len - h - j) : static_cast<__mmask16>(0);
    __m512 o0 = _mm512_maskz_loadu_ps(m0, out + j);
    __m512 o1 = _mm512_maskz_loadu_ps(m1, out + h + j);
    for (int64_t t = 0; t < n; ++t) {
      const uint8_t* pt = params + t * stride;
      const __m512 vs = _mm512_set1_ps(_cvtsh_ss(load_u16(pt)));
      const __m512 vm = _mm512_set1_ps(_cvtsh_ss(load_u16(pt + 2)));
      const __m512 vp = _mm512_set1_ps(p[t]);
      const __m512i v = load_codes(m0, codes + t * stride + j);
      __m512 c0 = bits == 4 ? low_nibbles(v) : _mm512_cvtepi32_ps(v);
      __m512 px0 = _mm512_mul_ps(vp, _mm512_fmadd_ps(c0, vs, vm));
      __asm__("" : "+v"(px0));  // keep the product rounded (no fused multiply-add)
      o0 = _mm512_add_ps(o0, px0);
      if (bits == 4) {
        __m512 px1 = _mm512_mul_ps(vp, _mm512_fmadd_ps(high_nibbles(v), vs, vm));
        __asm__("" : "+v"(px1));
        o1 = _mm512_add_ps(o1, px1);
      }
    }
    _mm512_mask_storeu_ps(out + j, m0, o0);
    if (bits == 4) _mm512_mask_storeu_ps(out + h + j, m1, o1);
  }
}

}  // namespace wkvq::detail
