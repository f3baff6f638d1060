// The KV quantization kernels, 4 and 8 bits, written once over the vector traits S (simd_avx2.h,
// simd_avx512.h) and instantiated by kv_quant_avx2.cpp / kv_quant_avx512.cpp.
//
// 4-bit groups use the "planes" layout of formats/kv_quant.h: L code bytes widened to L lanes
// (L = S::kLanes) give channels j..j+L-1 (low nibbles) and h+j..h+j+L-1 (high nibbles), both
// contiguous runs of q, x or out, so every step is two vector runs and no shuffles. Tails (a run
// shorter than L) use masked loads and stores: nothing outside the group is read or written.
// Internal linkage, no standard library: only for *_avx2.cpp / *_avx512.cpp (kv_quant_impl.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/kv_quant_impl.h"

namespace wkvq::detail {
namespace {

inline unsigned short load_u16(const uint8_t* p) {
  return static_cast<unsigned short>(p[0] | (p[1] << 8));
}

inline void store_u16(uint8_t* p, unsigned short v) {
  p[0] = static_cast<uint8_t>(v & 0xffu);
  p[1] = static_cast<uint8_t>(v >> 8);
}

inline bool fp16_is_finite(unsigned short h) { return (h & 0x7c00u) != 0x7c00u; }

template <class S>
struct KvQuantKernels {
  using F = typename S::F;
  using I = typename S::I;
  static constexpr int64_t kL = S::kLanes;

  static F low_nibbles(I v) { return S::to_float(S::and_i(v, S::set1_i(15))); }
  static F high_nibbles(I v) { return S::to_float(S::shr4(v)); }

  // Returns sum_i q_i * code_i over one group as lane sums (and accq += q_i when WithSum). Two
  // accumulators halve the FMA dependency chain of a short group.
  template <int Bits, bool WithSum>
  static F dot_group(const float* q, const uint8_t* c, int64_t len, F& accq) {
    F a0 = S::zero();
    F a1 = S::zero();
    if constexpr (Bits == 4) {
      const int64_t h = (len + 1) / 2;
      for (int64_t j = 0; j < h; j += kL) {
        const I v = S::load_bytes(c + j, h - j);
        const F qlo = S::load_first(q + j, S::mask(h - j), h - j);
        const F qhi = S::load_first(q + h + j, S::mask(len - h - j), len - h - j);
        a0 = S::fmadd(qlo, low_nibbles(v), a0);
        a1 = S::fmadd(qhi, high_nibbles(v), a1);
        if constexpr (WithSum) accq = S::add(accq, S::add(qlo, qhi));
      }
    } else {
      for (int64_t j = 0; j < len; j += 2 * kL) {
        const F q0 = S::load_first(q + j, S::mask(len - j), len - j);
        const F q1 = S::load_first(q + j + kL, S::mask(len - j - kL), len - j - kL);
        a0 = S::fmadd(q0, S::to_float(S::load_bytes(c + j, len - j)), a0);
        a1 = S::fmadd(q1, S::to_float(S::load_bytes(c + j + kL, len - j - kL)), a1);
        if constexpr (WithSum) accq = S::add(accq, S::add(q0, q1));
      }
    }
    return S::add(a0, a1);
  }

  // out[i] += p * (mn + code_i * scale) on lanes [0, count): code_i * scale is exact, so the fma
  // is the reference's sum; the product is kept rounded as the reference's.
  static void axpy_run(F p, F scale, F mn, F codes, int64_t count, float* out) {
    const typename S::Mask m = S::mask(count);
    F px = S::mul(p, S::fmadd(codes, scale, mn));
    S::keep_rounded(px);
    S::store_first(out, m, count, S::add(S::load_first(out, m, count), px));
  }

  template <int Bits>
  static void axpy_group(float p, const uint8_t* c, int64_t len, float scale, float mn,
                         float* out) {
    const F vp = S::set1(p);
    const F vs = S::set1(scale);
    const F vm = S::set1(mn);
    if constexpr (Bits == 4) {
      const int64_t h = (len + 1) / 2;
      for (int64_t j = 0; j < h; j += kL) {
        const I v = S::load_bytes(c + j, h - j);
        axpy_run(vp, vs, vm, low_nibbles(v), h - j, out + j);
        axpy_run(vp, vs, vm, high_nibbles(v), len - h - j, out + h + j);
      }
    } else {
      for (int64_t j = 0; j < len; j += kL) {
        axpy_run(vp, vs, vm, S::to_float(S::load_bytes(c + j, len - j)), len - j, out + j);
      }
    }
  }

  // Codes of one run of `count` values: clamp(round((x - m) / s), 0, qmax), 0 when s == 0; lanes
  // >= count 0.
  static I codes_of(const float* x, int64_t count, F vm, F vs, bool constant, int qmax) {
    if (constant || count <= 0) return S::zero_i();
    const F v = S::load_fill(x, count, vm);
    const I q = S::round_to_int(S::div(S::sub(v, vm), vs));  // half to even
    const I c = S::min_i(S::max_i(q, S::zero_i()), S::set1_i(qmax));
    return S::keep(S::mask(count), c);
  }

  // Quantizes one group; false when it holds a non-finite value or overflows fp16.
  static bool quantize_group(const float* x, int64_t len, int bits, uint8_t* params, uint8_t* dst) {
    const int qmax = (1 << bits) - 1;
    const F first = S::set1(x[0]);
    F vmin = first;
    F vmax = first;
    typename S::Mask finite = S::all_lanes();
    for (int64_t j = 0; j < len; j += kL) {
      const F v = S::load_fill(x + j, len - j, first);
      vmin = S::min(vmin, v);
      vmax = S::max(vmax, v);
      finite = S::mask_and(finite, S::finite(v));
    }
    if (!S::all_set(finite)) return false;
    const float mn = S::hmin(vmin);
    const float mx = S::hmax(vmax);
    const unsigned short s16 =
        _cvtss_sh((mx - mn) / static_cast<float>(qmax), _MM_FROUND_TO_NEAREST_INT);
    const unsigned short m16 = _cvtss_sh(mn, _MM_FROUND_TO_NEAREST_INT);
    if (!fp16_is_finite(s16) || !fp16_is_finite(m16)) return false;
    store_u16(params, s16);
    store_u16(params + 2, m16);
    const float s = _cvtsh_ss(s16);
    const F vs = S::set1(s);
    const F vm = S::set1(_cvtsh_ss(m16));
    const bool constant = !(s > 0.0f);
    if (bits == 4) {
      const int64_t h = (len + 1) / 2;
      for (int64_t j = 0; j < h; j += kL) {
        const I lo = codes_of(x + j, h - j, vm, vs, constant, qmax);
        const I hi = codes_of(x + h + j, len - h - j, vm, vs, constant, qmax);
        S::store_bytes(dst + j, S::or_i(lo, S::shl4(hi)), h - j);
      }
    } else {
      for (int64_t j = 0; j < len; j += kL) {
        S::store_bytes(dst + j, codes_of(x + j, len - j, vm, vs, constant, qmax), len - j);
      }
    }
    return true;
  }

  static int64_t quantize_token(const KvShape& s, const float* x, uint8_t* record) {
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

  static float dot(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                   float mn) {
    F accq = S::zero();
    const F acc = bits == 4 ? dot_group<4, true>(q, codes, len, accq)
                            : dot_group<8, true>(q, codes, len, accq);
    return scale * S::hsum(acc) + mn * S::hsum(accq);
  }

  static void axpy(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                   float* out) {
    (bits == 4 ? axpy_group<4> : axpy_group<8>)(p, codes, len, scale, mn, out);
  }

  static void dot_tokens(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                         int64_t len, int bits, const float* q, float* scores) {
    F accq = S::zero();
    for (int64_t j = 0; j < len; j += kL) {
      accq = S::add(accq, S::load_first(q + j, S::mask(len - j), len - j));
    }
    const float sum_q = S::hsum(accq);
    for (int64_t t = 0; t < n; ++t) {
      const uint8_t* pt = params + t * stride;
      const F acc = bits == 4 ? dot_group<4, false>(q, codes + t * stride, len, accq)
                              : dot_group<8, false>(q, codes + t * stride, len, accq);
      // s * sum(q code) + m * sum(q), the first product fused (written out, so that no compiler
      // contracts it another way: kv_attend's gqa_scores_int repeats exactly this).
      scores[t] =
          std::fma(_cvtsh_ss(load_u16(pt)), S::hsum(acc), _cvtsh_ss(load_u16(pt + 2)) * sum_q);
    }
  }

  // out += p * x^ for one run of lanes and one token (the product kept rounded).
  static F add_scaled(F o, F vp, F codes, F vs, F vm) {
    F px = S::mul(vp, S::fmadd(codes, vs, vm));
    S::keep_rounded(px);
    return S::add(o, px);
  }

  // Channel runs outer, tokens inner: each run of out stays in a register over all n tokens (same
  // per-element operations in the same token order as the reference).
  static void axpy_tokens(const uint8_t* params, const uint8_t* codes, int64_t stride, int64_t n,
                          int64_t len, int bits, const float* p, float* out) {
    const int64_t runs = bits == 4 ? (len + 1) / 2 : len;  // bytes of codes per group
    const int64_t h = bits == 4 ? runs : 0;
    for (int64_t j = 0; j < runs; j += kL) {
      const int64_t n0 = runs - j;
      const int64_t n1 = bits == 4 ? len - h - j : 0;
      const typename S::Mask m0 = S::mask(n0);
      const typename S::Mask m1 = S::mask(n1);
      F o0 = S::load_first(out + j, m0, n0);
      F o1 = S::load_first(out + h + j, m1, n1);
      for (int64_t t = 0; t < n; ++t) {
        const uint8_t* pt = params + t * stride;
        const F vs = S::set1(_cvtsh_ss(load_u16(pt)));
        const F vm = S::set1(_cvtsh_ss(load_u16(pt + 2)));
        const F vp = S::set1(p[t]);
        const I v = S::load_bytes(codes + t * stride + j, n0);
        o0 = add_scaled(o0, vp, bits == 4 ? low_nibbles(v) : S::to_float(v), vs, vm);
        if (bits == 4) o1 = add_scaled(o1, vp, high_nibbles(v), vs, vm);
      }
      S::store_first(out + j, m0, n0, o0);
      S::store_first(out + h + j, m1, n1, o1);
    }
  }

  static constexpr KvQuantOps ops() {
    return KvQuantOps{&quantize_token, &dot, &axpy, &dot_tokens, &axpy_tokens};
  }
};

}  // namespace
}  // namespace wkvq::detail
