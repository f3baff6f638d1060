// The KV quantization kernels, 2, 3, 4 and 8 bits, written once over the vector traits S
// (simd_avx2.h, simd_avx512.h) and instantiated by kv_quant_avx2.cpp / kv_quant_avx512.cpp.
//
// 4-bit groups use the "planes" layout of formats/kv_quant.h: L code bytes widened to L lanes
// (L = S::kLanes) give channels j..j+L-1 (low nibbles) and h+j..h+j+L-1 (high nibbles), both
// contiguous runs of q, x or out, so every step is two vector runs and no shuffles. 8, 3 and 2 bits
// go in channel order, L channels a step (codes_at: bytes widened, or the 2/3-bit codes of 8
// channels, B bytes, broadcast and shifted per lane, S::unpack_codes). Tails (a run shorter than L)
// use masked loads and stores: nothing outside the group is read or written. Internal linkage, no
// standard library: only for *_avx2.cpp / *_avx512.cpp (kv_quant_impl.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "formats/kv_quant.h"
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

// A group's scale and min from its metadata at p (formats/kv_quant.h): fp16 scale and min, or with
// r (the group's static range) the rel8 bytes m8, t8: m = L[m8], s = (L[t8] - m) / qmax.
struct ScaleMin {
  float s;
  float m;
};
inline ScaleMin params_at(const uint8_t* p, const KvRel8Group* r, int qmax) {
  if (r == nullptr) return {_cvtsh_ss(load_u16(p)), _cvtsh_ss(load_u16(p + 2))};
  const float m = r->levels[p[0]];
  return {(r->levels[p[1]] - m) / static_cast<float>(qmax), m};
}

template <int B>
struct BitsTag {
  static constexpr int kBits = B;
};

// fn(BitsTag<bits>{}) for bits 2, 3, 4 or 8: one instantiation per code width.
template <class Fn>
inline auto with_bits(int bits, Fn fn) {
  switch (bits) {
    case 2:
      return fn(BitsTag<2>{});
    case 3:
      return fn(BitsTag<3>{});
    case 4:
      return fn(BitsTag<4>{});
    default:
      return fn(BitsTag<8>{});
  }
}

template <class S>
struct KvQuantKernels {
  using F = typename S::F;
  using I = typename S::I;
  static constexpr int64_t kL = S::kLanes;

  static F low_nibbles(I v) { return S::to_float(S::and_i(v, S::set1_i(15))); }
  static F high_nibbles(I v) { return S::to_float(S::shr4(v)); }

  // Channel-order codes (Bits 8, 3, 2) of channels [j, j + kL) of a group of len channels (j a
  // multiple of kL): int lanes, nothing past the group's bytes read. Lanes past len are 0 (8 bits)
  // or the group's padding bits (0 as quantize_token writes them): callers mask them.
  template <int Bits>
  static I codes_at(const uint8_t* c, int64_t len, int64_t j) {
    if constexpr (Bits == 8) {
      return S::load_bytes(c + j, len - j);
    } else {
      const int64_t nbytes = (Bits * len + 7) / 8, off = Bits * j / 8;
      return S::template unpack_codes<Bits>(c + off, nbytes - off);
    }
  }

  // codes_at for a whole run (j + kL <= len): no tail to mask.
  template <int Bits>
  static I codes_full(const uint8_t* c, int64_t j) {
    if constexpr (Bits == 8) {
      return S::load_bytes(c + j, kL);
    } else {
      return S::template unpack_codes<Bits>(c + Bits * j / 8, Bits * kL / 8);
    }
  }

  // The inverse for Bits 3, 2: codes of channels [j, j + kL) to the group's bytes (those past its
  // ceil(Bits len / 8) bytes not written; lanes past len must be 0).
  template <int Bits>
  static void store_codes(uint8_t* c, int64_t len, int64_t j, I codes) {
    unsigned w[2];
    S::template pack_codes<Bits>(codes, &w[0], &w[1]);
    const int64_t nbytes = (Bits * len + 7) / 8;
    for (int64_t k = 0; k < kL / 8; ++k) {
      const int64_t off = Bits * (j + 8 * k) / 8;
      for (int64_t i = 0; i < Bits && off + i < nbytes; ++i) {
        c[off + i] = static_cast<uint8_t>(w[k] >> (8 * i));
      }
    }
  }

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
        a0 = S::fmadd(q0, S::to_float(codes_at<Bits>(c, len, j)), a0);
        a1 = S::fmadd(q1, S::to_float(codes_at<Bits>(c, len, j + kL)), a1);
        if constexpr (WithSum) accq = S::add(accq, S::add(q0, q1));
      }
    }
    return S::add(a0, a1);
  }

  // out[i] += p * fma(code_i, scale, mn) on lanes [0, count): the reference's x^ (formats/
  // kv_quant.h); the product with p is kept rounded as the reference's.
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
        axpy_run(vp, vs, vm, S::to_float(codes_at<Bits>(c, len, j)), len - j, out + j);
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

  // Quantizes one group (rel8 metadata against `rel8` when not null); false when it holds a
  // non-finite value or overflows fp16.
  template <int Bits>
  static bool quantize_group(const float* x, int64_t len, const KvRel8Group* rel8, uint8_t* params,
                             uint8_t* dst) {
    constexpr int qmax = (1 << Bits) - 1;
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
    if (rel8 != nullptr) {
      kv_rel8_codes(*rel8, mn, mx, params);  // the reference's own function (out of line)
    } else {
      const unsigned short s16 =
          _cvtss_sh((mx - mn) / static_cast<float>(qmax), _MM_FROUND_TO_NEAREST_INT);
      const unsigned short m16 = _cvtss_sh(mn, _MM_FROUND_TO_NEAREST_INT);
      if (!fp16_is_finite(s16) || !fp16_is_finite(m16)) return false;
      store_u16(params, s16);
      store_u16(params + 2, m16);
    }
    const ScaleMin sm = params_at(params, rel8, qmax);
    const float s = sm.s;
    const F vs = S::set1(s);
    const F vm = S::set1(sm.m);
    const bool constant = !(s > 0.0f);
    if constexpr (Bits == 4) {
      const int64_t h = (len + 1) / 2;
      for (int64_t j = 0; j < h; j += kL) {
        const I lo = codes_of(x + j, h - j, vm, vs, constant, qmax);
        const I hi = codes_of(x + h + j, len - h - j, vm, vs, constant, qmax);
        S::store_bytes(dst + j, S::or_i(lo, S::shl4(hi)), h - j);
      }
    } else if constexpr (Bits == 8) {
      for (int64_t j = 0; j < len; j += kL) {
        S::store_bytes(dst + j, codes_of(x + j, len - j, vm, vs, constant, qmax), len - j);
      }
    } else {
      for (int64_t j = 0; j < len; j += kL) {
        store_codes<Bits>(dst, len, j, codes_of(x + j, len - j, vm, vs, constant, qmax));
      }
    }
    return true;
  }

  static int64_t quantize_token(const KvShape& s, const float* x, uint8_t* record) {
    return with_bits(s.bits, [&](auto b) -> int64_t {
      for (int64_t g = 0; g < s.n_groups; ++g) {
        const int64_t c0 = g * s.group;
        const int64_t len = g + 1 < s.n_groups ? s.group : s.channels - c0;
        if (!quantize_group<decltype(b)::kBits>(x + c0, len, s.rel8 ? s.rel8 + g : nullptr,
                                                record + g * s.group_param_bytes,
                                                record + s.params_bytes + g * s.group_code_bytes)) {
          return g;
        }
      }
      return -1;
    });
  }

  static float dot(const float* q, const uint8_t* codes, int64_t len, int bits, float scale,
                   float mn) {
    F accq = S::zero();
    const F acc = with_bits(
        bits, [&](auto b) { return dot_group<decltype(b)::kBits, true>(q, codes, len, accq); });
    return scale * S::hsum(acc) + mn * S::hsum(accq);
  }

  static void axpy(float p, const uint8_t* codes, int64_t len, int bits, float scale, float mn,
                   float* out) {
    with_bits(bits, [&](auto b) { axpy_group<decltype(b)::kBits>(p, codes, len, scale, mn, out); });
  }

  static void dot_tokens(const uint8_t* params, const KvRel8Group* rel8, const uint8_t* codes,
                         int64_t stride, int64_t n, int64_t len, int bits, const float* q,
                         float* scores) {
    F accq = S::zero();
    for (int64_t j = 0; j < len; j += kL) {
      accq = S::add(accq, S::load_first(q + j, S::mask(len - j), len - j));
    }
    const float sum_q = S::hsum(accq);
    with_bits(bits, [&](auto b) {
      constexpr int qmax = (1 << decltype(b)::kBits) - 1;
      for (int64_t t = 0; t < n; ++t) {
        const ScaleMin sm = params_at(params + t * stride, rel8, qmax);
        const F acc = dot_group<decltype(b)::kBits, false>(q, codes + t * stride, len, accq);
        // s * sum(q code) + m * sum(q), the first product fused (written out, so that no compiler
        // contracts it another way: kv_attend's gqa_scores_int repeats exactly this).
        scores[t] = std::fma(sm.s, S::hsum(acc), sm.m * sum_q);
      }
    });
  }

  // out += p * x^ for one run of lanes and one token (the product kept rounded).
  static F add_scaled(F o, F vp, F codes, F vs, F vm) {
    F px = S::mul(vp, S::fmadd(codes, vs, vm));
    S::keep_rounded(px);
    return S::add(o, px);
  }

  // Channel runs outer, tokens inner: each run of out stays in a register over all n tokens (same
  // per-element operations in the same token order as the reference).
  template <int Bits>
  static void axpy_tokens_bits(const uint8_t* params, const KvRel8Group* rel8, const uint8_t* codes,
                               int64_t stride, int64_t n, int64_t len, const float* p, float* out) {
    constexpr int qmax = (1 << Bits) - 1;
    const int64_t runs = Bits == 4 ? (len + 1) / 2 : len;  // 4 bits: bytes of codes per group
    const int64_t h = Bits == 4 ? runs : 0;
    for (int64_t j = 0; j < runs; j += kL) {
      const int64_t n0 = runs - j;
      const int64_t n1 = Bits == 4 ? len - h - j : 0;
      const typename S::Mask m0 = S::mask(n0);
      const typename S::Mask m1 = S::mask(n1);
      F o0 = S::load_first(out + j, m0, n0);
      F o1 = S::load_first(out + h + j, m1, n1);
      for (int64_t t = 0; t < n; ++t) {
        const ScaleMin sm = params_at(params + t * stride, rel8, qmax);
        const F vs = S::set1(sm.s);
        const F vm = S::set1(sm.m);
        const F vp = S::set1(p[t]);
        if constexpr (Bits == 4) {
          const I v = S::load_bytes(codes + t * stride + j, n0);
          o0 = add_scaled(o0, vp, low_nibbles(v), vs, vm);
          o1 = add_scaled(o1, vp, high_nibbles(v), vs, vm);
        } else {
          o0 = add_scaled(o0, vp, S::to_float(codes_at<Bits>(codes + t * stride, len, j)), vs, vm);
        }
      }
      S::store_first(out + j, m0, n0, o0);
      S::store_first(out + h + j, m1, n1, o1);
    }
  }

  static void axpy_tokens(const uint8_t* params, const KvRel8Group* rel8, const uint8_t* codes,
                          int64_t stride, int64_t n, int64_t len, int bits, const float* p,
                          float* out) {
    with_bits(bits, [&](auto b) {
      axpy_tokens_bits<decltype(b)::kBits>(params, rel8, codes, stride, n, len, p, out);
    });
  }

  static constexpr KvQuantOps ops() {
    return KvQuantOps{&quantize_token, &dot, &axpy, &dot_tokens, &axpy_tokens};
  }
};

}  // namespace
}  // namespace wkvq::detail
