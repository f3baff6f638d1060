// The attention kernels of kernels/kv_attend.h written once over vector traits S (simd_avx2.h,
// simd_avx512.h, extended in the instantiating file with hsum_each: lane r of the result =
// S::hsum(a[r]), the same additions) and instantiated by kv_attend_avx2.cpp / kv_attend_avx512.cpp
// (gqa_scores_q8, which needs no traits, is kv_scores_q8_kernel.h's). Every kernel computes the
// floats of the one-head-at-a-time code it replaces:
//
// gqa_scores: vec_ops.h's dot, 8 positions at a time in 256-bit vectors (dot's 8 partial sums are
// the 8 lanes; products kept rounded, then added), the q chunk loaded once for the 8 rows, then
// one hadd tree turns the 8 accumulators into 8 scores. gqa_scores_int: kv_dot_tokens
// (kv_quant_kernels.h) on codes decoded once to floats for the G heads: the same two fused
// accumulators over the same lanes, then hsum_each for kL positions at once. gqa_values: for
// kValueHeads query heads at a time (4 with AVX-512, 2 with AVX2), up to 4 vectors of channels each
// stay in registers over all positions of the tile, each product rounded, then added (axpy).
// softmax: exp_f32 in double lanes, the sum's 16 partials in vector lanes. The rows x_j are read
// from L1 (a decoded tile) or in place (f32 storage, the chunk's own k, v). Internal linkage, no
// standard library: only for *_avx2.cpp / *_avx512.cpp (kv_attend_impl.h).
#pragma once

#include <cstdint>

#include "kernels/exp_f32.h"
#include "kernels/kv_attend_impl.h"
#include "kernels/kv_quant_kernels.h"
#include "kernels/kv_scores_q8_kernel.h"
#include "kernels/vec_ops.h"

namespace wkvq::detail {
namespace {

// vec_ops.h's dot in 256-bit vectors (both ISAs): lane l of a row's accumulator is dot's partial
// sum l (channels i = l mod 8 in order, each product rounded, then added), the 8 partials of each
// row then added pairwise ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)) as dot does.
inline __m256 dot8_add_product(__m256 acc, __m256 a, __m256 b) {
  __m256 p = _mm256_mul_ps(a, b);
  __asm__("" : "+x"(p));  // keeps the product rounded: GCC would fuse it with the add
  return _mm256_add_ps(acc, p);
}

// Lane r = dot's pairwise sum of the 8 lanes of a[r]: hadd pairs lanes (0, 1), (2, 3) twice over,
// then the two 128-bit halves.
inline __m256 dot8_sum_each(const __m256 (&a)[8]) {
  const __m256 x = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 y = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(x, y, 0x20), _mm256_permute2f128_ps(x, y, 0x31));
}

// dot(qh, rows[r], hd) for r < 8.
inline __m256 dot8_rows(const float* qh, int64_t hd, const float* const (&rows)[8]) {
  __m256 acc[8];
  for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= hd; i += 8) {
    const __m256 qv = _mm256_loadu_ps(qh + i);
    for (int r = 0; r < 8; ++r) acc[r] = dot8_add_product(acc[r], qv, _mm256_loadu_ps(rows[r] + i));
  }
  if (i < hd) {  // the tail's missing lanes add 0 * 0: no change (a partial is never -0)
    const __m256i m = dot8_mask(hd - i);
    const __m256 qv = _mm256_maskload_ps(qh + i, m);
    for (int r = 0; r < 8; ++r) {
      acc[r] = dot8_add_product(acc[r], qv, _mm256_maskload_ps(rows[r] + i, m));
    }
  }
  return dot8_sum_each(acc);
}

template <class S>
struct KvAttendKernels {
  using F = typename S::F;
  using I = typename S::I;
  using M = typename S::Mask;
  static constexpr int64_t kL = S::kLanes;

  // v to p[0:count) (count may exceed kL: then kL values).
  static void store_run(float* p, int64_t count, F v) {
    if (count >= kL) {
      S::storeu(p, v);
    } else if (count > 0) {
      S::store_first(p, S::mask(count), count, v);
    }
  }

  static F load_run(const float* p, int64_t count) {
    return count >= kL ? S::loadu(p) : S::load_first(p, S::mask(count), count);
  }

  static void decode_fp16(const uint8_t* records, int64_t stride, int64_t n, int64_t c0, int64_t hd,
                          float* x) {
    for (int64_t j = 0; j < n; ++j) {
      const auto* src = reinterpret_cast<const uint16_t*>(records + j * stride) + c0;
      float* dst = x + j * hd;
      int64_t i = 0;
      for (; i + kL <= hd; i += kL) S::storeu(dst + i, S::loadu(src + i));
      if (i < hd) {
        const M m = S::mask(hd - i);
        S::store_first(dst + i, m, hd - i, S::load_first(src + i, m, hd - i));
      }
    }
  }

  // One group of len channels: x^ = fma(code, s, m) (formats/kv_quant.h), or the codes
  // themselves as floats when Codes.
  template <int Bits, bool Codes>
  static void decode_group(ScaleMin p, const uint8_t* c, int64_t len, float* out) {
    const F vs = S::set1(Codes ? 1.0f : p.s);
    const F vm = S::set1(Codes ? 0.0f : p.m);
    if constexpr (Bits == 4) {  // the two planes: channels [0, h) low nibbles, [h, len) high
      const int64_t h = (len + 1) / 2;
      decode_nibbles<false, Codes>(p, c, h, out);
      decode_nibbles<true, Codes>(p, c, len - h, out + h);
    } else if constexpr (Bits == 8) {
      for (int64_t j = 0; j < len; j += kL) {
        const I v = KvQuantKernels<S>::template codes_at<Bits>(c, len, j);
        store_run(out + j, len - j, S::fmadd(S::to_float(v), vs, vm));
      }
    } else {  // 3, 2 bits: channel order (kv_quant_kernels.h), whole runs without masks
      int64_t j = 0;
      for (; j + kL <= len; j += kL) {
        const I v = KvQuantKernels<S>::template codes_full<Bits>(c, j);
        S::storeu(out + j, S::fmadd(S::to_float(v), vs, vm));
      }
      if (j < len) {
        const I v = KvQuantKernels<S>::template codes_at<Bits>(c, len, j);
        store_run(out + j, len - j, S::fmadd(S::to_float(v), vs, vm));
      }
    }
  }

  // A run of len channels of a 4-bit group held in one plane: the low (High false) or high
  // nibbles of len consecutive bytes, x^ = fma(code, s, m) (or the codes when Codes).
  template <bool High, bool Codes>
  static void decode_nibbles(ScaleMin p, const uint8_t* c, int64_t len, float* out) {
    const F vs = S::set1(Codes ? 1.0f : p.s);
    const F vm = S::set1(Codes ? 0.0f : p.m);
    for (int64_t j = 0; j < len; j += kL) {
      const I v = S::load_bytes(c + j, len - j);
      const I code = High ? S::shr4(v) : S::and_i(v, S::set1_i(15));
      store_run(out + j, len - j, S::fmadd(S::to_float(code), vs, vm));
    }
  }

  // The head's channels [c0, c0 + hd) inside group g = c0 / G of every record (G a multiple of
  // hd): the run at offset o = c0 - g G, in channel order (8, 3, 2 bits: whole bytes) or in one
  // 4-bit plane.
  template <int Bits, bool Codes>
  static void decode_head_in_group(const KvShape& s, const uint8_t* records, int64_t stride,
                                   int64_t n, int64_t c0, int64_t hd, float* x, float* sc,
                                   float* mn) {
    constexpr int qmax = (1 << Bits) - 1;
    const int64_t g = c0 / s.group, o = c0 - g * s.group, h = (s.group + 1) / 2;
    for (int64_t j = 0; j < n; ++j) {
      const uint8_t* rec = records + j * stride;
      const ScaleMin p =
          params_at(rec + g * s.group_param_bytes, s.rel8 ? s.rel8 + g : nullptr, qmax);
      if constexpr (Codes) {
        sc[j] = p.s;
        mn[j] = p.m;
      }
      const uint8_t* codes = rec + s.params_bytes + g * s.group_code_bytes;
      if constexpr (Bits == 4) {
        if (o < h) {
          decode_nibbles<false, Codes>(p, codes + o, hd, x + j * hd);
        } else {
          decode_nibbles<true, Codes>(p, codes + (o - h), hd, x + j * hd);
        }
      } else {
        decode_group<Bits, Codes>(p, codes + Bits * o / 8, hd, x + j * hd);
      }
    }
  }

  template <int Bits, bool Codes>
  static void decode_int_bits(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                              int64_t c0, int64_t hd, float* x, float* sc, float* mn) {
    if (s.group > hd) {
      decode_head_in_group<Bits, Codes>(s, records, stride, n, c0, hd, x, sc, mn);
      return;
    }
    constexpr int qmax = (1 << Bits) - 1;
    const int64_t g0 = c0 / s.group, groups = hd / s.group;
    for (int64_t j = 0; j < n; ++j) {
      const uint8_t* rec = records + j * stride;
      for (int64_t k = 0; k < groups; ++k) {
        const int64_t g = g0 + k;
        const ScaleMin p =
            params_at(rec + g * s.group_param_bytes, s.rel8 ? s.rel8 + g : nullptr, qmax);
        if constexpr (Codes) {
          sc[k * n + j] = p.s;
          mn[k * n + j] = p.m;
        }
        decode_group<Bits, Codes>(p, rec + s.params_bytes + g * s.group_code_bytes, s.group,
                                  x + j * hd + k * s.group);
      }
    }
  }

  static void decode_int(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                         int64_t c0, int64_t hd, float* x) {
    with_bits(s.bits, [&](auto b) {
      decode_int_bits<decltype(b)::kBits, false>(s, records, stride, n, c0, hd, x, nullptr,
                                                 nullptr);
    });
  }

  static void decode_codes(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                           int64_t c0, int64_t hd, float* codes, float* sc, float* mn) {
    with_bits(s.bits, [&](auto b) {
      decode_int_bits<decltype(b)::kBits, true>(s, records, stride, n, c0, hd, codes, sc, mn);
    });
  }

  // gqa_scores: 8 rows at a time in 256-bit vectors whatever the ISA (lane l = dot8's partial l).
  static void scores(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                     float scale, float* out, int64_t ld) {
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
      const float* rows[8];
      for (int64_t r = 0; r < 8; ++r) rows[r] = x + (j0 + r < n ? j0 + r : n - 1) * ldx;
      for (int64_t h = 0; h < g; ++h) {
        dot8_store(out + h * ld + j0, n - j0,
                   _mm256_mul_ps(dot8_rows(q + h * hd, hd, rows), vscale));
      }
    }
  }

  // kv_dot_tokens' sum over one group of len channels of one row (KvQuantKernels::dot_group: two
  // accumulators, fused, the same lanes, masked runs): a0 + a1.
  // Bits == 1: a head inside a 4-bit group (one plane): kv_dot_tokens' one accumulator of that
  // plane over the run, plus the other plane's zero accumulator.
  template <int Bits>
  static F group_dot(const float* q, const float* row, int64_t len) {
    F a0 = S::zero(), a1 = S::zero();
    if constexpr (Bits == 1) {
      for (int64_t j = 0; j < len; j += kL) {
        const M m0 = S::mask(len - j);
        a0 = S::fmadd(S::load_first(q + j, m0, len - j), S::load_first(row + j, m0, len - j), a0);
      }
      return S::add(a0, a1);
    }
    const int64_t h = Bits == 4 ? (len + 1) / 2 : 0;
    const int64_t step = Bits == 4 ? kL : 2 * kL;
    for (int64_t j = 0; j < (Bits == 4 ? h : len); j += step) {
      // a0 takes channels [j0, j0 + c0), a1 [j1, j1 + c1)
      const int64_t j0 = j, c0 = Bits == 4 ? h - j : len - j;
      const int64_t j1 = Bits == 4 ? h + j : j + kL, c1 = Bits == 4 ? len - h - j : len - j - kL;
      const M m0 = S::mask(c0), m1 = S::mask(c1);
      a0 = S::fmadd(S::load_first(q + j0, m0, c0), S::load_first(row + j0, m0, c0), a0);
      a1 = S::fmadd(S::load_first(q + j1, m1, c1), S::load_first(row + j1, m1, c1), a1);
    }
    return S::add(a0, a1);
  }

  // The same when len is a multiple of 2 kL (every run whole: plain loads) for kL rows (row r at
  // rows[r] + k0), kL / 2 rows at a time so that both accumulators of each stay in registers and
  // each q run is loaded once for them.
  template <int Bits>
  static void group_dots_full(const float* q, const float* const (&rows)[kL], int64_t k0,
                              int64_t len, F (&acc)[kL]) {
    constexpr int64_t kR = kL / 2;
    const int64_t h = Bits == 4 ? len / 2 : 0;
    const int64_t step = Bits == 4 ? kL : 2 * kL;
    for (int64_t r0 = 0; r0 < kL; r0 += kR) {
      F a0[kR], a1[kR];
      for (int64_t r = 0; r < kR; ++r) a0[r] = a1[r] = S::zero();
      if constexpr (Bits == 1) {  // one plane's run (group_dot<1>)
        for (int64_t j = 0; j < len; j += kL) {
          const F q0 = S::loadu(q + j);
          for (int64_t r = 0; r < kR; ++r)
            a0[r] = S::fmadd(q0, S::loadu(rows[r0 + r] + k0 + j), a0[r]);
        }
        for (int64_t r = 0; r < kR; ++r) acc[r0 + r] = S::add(a0[r], a1[r]);
        continue;
      }
      for (int64_t j = 0; j < (Bits == 4 ? h : len); j += step) {
        const int64_t j0 = k0 + j, j1 = k0 + (Bits == 4 ? h + j : j + kL);
        const F q0 = S::loadu(q + j0 - k0), q1 = S::loadu(q + j1 - k0);
        for (int64_t r = 0; r < kR; ++r) {
          a0[r] = S::fmadd(q0, S::loadu(rows[r0 + r] + j0), a0[r]);
          a1[r] = S::fmadd(q1, S::loadu(rows[r0 + r] + j1), a1[r]);
        }
      }
      for (int64_t r = 0; r < kR; ++r) acc[r0 + r] = S::add(a0[r], a1[r]);
    }
  }

  // kv_dot_tokens' sum of q over one group: lanes, then S::hsum.
  static float group_qsum(const float* q, int64_t len) {
    F accq = S::zero();
    for (int64_t j = 0; j < len; j += kL)
      accq = S::add(accq, S::load_first(q + j, S::mask(len - j), len - j));
    return S::hsum(accq);
  }

  // gqa_scores_int on decoded codes (n, hd) and the groups' scales / minima (group k of row j at
  // k * n + j): per group scale * sum + min * sum_q as kv_dot_tokens (one fma over the rounded
  // min * sum_q), the groups' values added in order, then times `scale`.
  template <int Bits, bool Full>
  static void scores_int_bits(const KvShape& s, const float* q, int64_t g, int64_t hd,
                              const float* codes, const float* sc, const float* mn, int64_t n,
                              float scale, float* out, int64_t ld) {
    const int64_t groups = hd / s.group;
    for (int64_t h = 0; h < g; ++h) {
      const float qsum0 = group_qsum(q + h * hd, s.group);  // the one group's, computed once
      for (int64_t j0 = 0; j0 < n; j0 += kL) {
        const float* rows[kL];  // rows past n repeat the last (not stored)
        for (int64_t r = 0; r < kL; ++r) rows[r] = codes + (j0 + r < n ? j0 + r : n - 1) * hd;
        F total = S::zero();
        for (int64_t k = 0; k < groups; ++k) {
          const float* qk = q + h * hd + k * s.group;
          const float qsum = groups == 1 ? qsum0 : group_qsum(qk, s.group);
          F acc[kL];
          if constexpr (Full) {
            group_dots_full<Bits>(qk, rows, k * s.group, s.group, acc);
          } else if (Bits != 4 && s.group == kL) {
            // group_dot of one whole run (8, 3, 2 bits): a0 = q x fused with 0, a1 = 0 (the same
            // floats, without masks; g16 of AVX-512, g8 of AVX2)
            const F qv = S::loadu(qk);
            for (int64_t r = 0; r < kL; ++r) {
              acc[r] = S::add(S::fmadd(qv, S::loadu(rows[r] + k * kL), S::zero()), S::zero());
            }
          } else {
            for (int64_t r = 0; r < kL; ++r) {
              acc[r] = group_dot<Bits>(qk, rows[r] + k * s.group, s.group);
            }
          }
          const F part = S::fmadd(load_run(sc + k * n + j0, n - j0), S::hsum_each(acc),
                                  S::mul(load_run(mn + k * n + j0, n - j0), S::set1(qsum)));
          total = k == 0 ? part : S::add(total, part);
        }
        store_run(out + h * ld + j0, n - j0, S::mul(total, S::set1(scale)));
      }
    }
  }

  // The channel order of kv_dot_tokens' sums: the 4-bit planes, or channel runs (8, 3, 2 bits).
  // A head inside one group (s.group > hd) is one group of hd channels here: its run lies in one
  // 4-bit plane (one accumulator, Bits 1) or in channel order, starting at a multiple of 2 kL of
  // the group, so the zero-padded group's sums of the reference have the same lanes.
  static void scores_int(const KvShape& s, const float* q, int64_t g, int64_t hd,
                         const float* codes, const float* sc, const float* mn, int64_t n,
                         float scale, float* out, int64_t ld) {
    KvShape v = s;
    const bool inside = s.group > hd;
    if (inside) v.group = hd;
    const bool full = v.group % (2 * kL) == 0;
    const auto f = s.bits == 4 && inside
                       ? (full ? scores_int_bits<1, true> : scores_int_bits<1, false>)
                   : s.bits == 4 ? (full ? scores_int_bits<4, true> : scores_int_bits<4, false>)
                                 : (full ? scores_int_bits<8, true> : scores_int_bits<8, false>);
    f(v, q, g, hd, codes, sc, mn, n, scale, out, ld);
  }

  // Heads per values_run: 4 kH accumulators fill AVX-512's 32 registers with 4 heads (16 chains
  // of fmas in flight), AVX2's 16 with 2.
  static constexpr int kValueHeads = kL == 16 ? 4 : 2;

  // o + p x, the product rounded, then added (as axpy).
  static F add_product(F o, F p, F x) {
    F px = S::mul(p, x);
    S::keep_rounded(px);
    return S::add(o, px);
  }

  // acc[0:count) += p[j] x_j[0:count) for j = 0, 1, ..., n - 1 (as axpy), for
  // kH heads at once (head r: weights p + r * ld, acc + r * hd), count <= 4 kL: the 4 kL
  // channels of each head in registers over the rows, each row's vectors loaded once for the kH.
  template <int kH>
  static void values_run(const float* p, int64_t ld, const float* x, int64_t ldx, int64_t n,
                         int64_t count, float* acc, int64_t hd) {
    if (count == 4 * kL) {
      F o[kH][4];
      for (int r = 0; r < kH; ++r) {
        for (int v = 0; v < 4; ++v) o[r][v] = S::loadu(acc + r * hd + v * kL);
      }
      for (int64_t j = 0; j < n; ++j) {
        const float* xj = x + j * ldx;
        const F x0 = S::loadu(xj), x1 = S::loadu(xj + kL), x2 = S::loadu(xj + 2 * kL),
                x3 = S::loadu(xj + 3 * kL);
        for (int r = 0; r < kH; ++r) {
          const F pj = S::broadcast(p + r * ld + j);
          o[r][0] = add_product(o[r][0], pj, x0);
          o[r][1] = add_product(o[r][1], pj, x1);
          o[r][2] = add_product(o[r][2], pj, x2);
          o[r][3] = add_product(o[r][3], pj, x3);
        }
      }
      for (int r = 0; r < kH; ++r) {
        for (int v = 0; v < 4; ++v) S::storeu(acc + r * hd + v * kL, o[r][v]);
      }
      return;
    }
    for (int r = 0; r < kH; ++r) {
      for (int64_t i = 0; i < count; i += kL) {  // a vector at a time
        float* a = acc + r * hd + i;
        F o = load_run(a, count - i);
        for (int64_t j = 0; j < n; ++j) {
          o = add_product(o, S::broadcast(p + r * ld + j), load_run(x + j * ldx + i, count - i));
        }
        store_run(a, count - i, o);
      }
    }
  }

  static void values(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                     int64_t n, float* acc) {
    for (int64_t i = 0; i < hd; i += 4 * kL) {
      const int64_t count = hd - i < 4 * kL ? hd - i : 4 * kL;
      int64_t h = 0;
      for (; h + kValueHeads <= g; h += kValueHeads) {
        values_run<kValueHeads>(p + h * ld, ld, x + i, ldx, n, count, acc + h * hd + i, hd);
      }
      for (; h < g; ++h) values_run<1>(p + h * ld, ld, x + i, ldx, n, count, acc + h * hd + i, hd);
    }
  }

  // exp_f32 (kernels/exp_f32.h) of S::kD floats widened to doubles: the same operations in the
  // same order, lane by lane (max(lo, d) and min(hi, d) return d when it is NaN, as the
  // reference's comparisons do; fnmadd(k, c, d) = fma(-k, c, d)).
  static typename S::D exp_lanes(typename S::D d) {
    using D = typename S::D;
    d = S::d_max(S::d_set1(kExpLo), d);
    d = S::d_min(S::d_set1(kExpHi), d);
    const D t = S::d_fmadd(d, S::d_set1(kExpLog2e), S::d_set1(kExpShift));
    const D k = S::d_sub(t, S::d_set1(kExpShift));
    const D r = S::d_fnmadd(k, S::d_set1(kExpLn2Lo), S::d_fnmadd(k, S::d_set1(kExpLn2Hi), d));
    D p = S::d_set1(kExpCoef[kExpDegree]);
    for (int i = kExpDegree - 1; i >= 0; --i) p = S::d_fmadd(p, r, S::d_set1(kExpCoef[i]));
    return S::d_mul(p, S::d_pow2(t));
  }

  // e = exp_f32(x - max) for S::kD floats at x, stored back, and added to part (count < kD: the
  // first count, the rest neither read nor written nor added).
  static typename S::D exp_run(float* x, int64_t count, typename S::H hmax, typename S::D part) {
    constexpr int64_t kD = S::kD;
    float buf[kD];
    float* at = x;
    if (count < kD) {
      for (int64_t l = 0; l < kD; ++l) buf[l] = l < count ? x[l] : -__builtin_inff();
      at = buf;  // -inf - max: exp gives +0, and part + 0 is part
    }
    const typename S::H e = S::d_narrow(exp_lanes(S::d_widen(S::h_sub(S::h_loadu(at), hmax))));
    S::h_storeu(at, e);
    if (count < kD) {
      for (int64_t l = 0; l < count; ++l) x[l] = buf[l];
    }
    return S::d_add(part, S::d_widen(e));
  }

  // softmax_inplace (vec_ops.h) on one row: partial sum l (of kSoftmaxParts) is lane l % kD of
  // part[l / kD].
  static void softmax(float* x, int64_t n) {
    constexpr int64_t kP = kSoftmaxParts, kD = S::kD;
    F vmax = S::set1(x[0]);
    int64_t i = 0;
    for (; i + kL <= n; i += kL) vmax = S::max(vmax, S::loadu(x + i));
    float mx = S::hmax(vmax);  // the maximum is exact in any order
    for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
    typename S::D part[kP / kD];
    for (auto& p : part) p = S::d_set1(0.0);
    const typename S::H hmax = S::h_set1(mx);
    for (i = 0; i < n; i += kP) {
      for (int64_t c = 0; c < kP / kD && i + c * kD < n; ++c) {
        part[c] = exp_run(x + i + c * kD, n - i - c * kD, hmax, part[c]);
      }
    }
    double sum[kP];
    for (int64_t c = 0; c < kP / kD; ++c) S::d_storeu(sum + c * kD, part[c]);
    for (int64_t half = kP / 2; half >= 1; half /= 2) {
      for (int64_t l = 0; l < half; ++l) sum[l] += sum[l + half];
    }
    const float inv = static_cast<float>(1.0 / sum[0]);
    const F vinv = S::set1(inv);
    for (i = 0; i + kL <= n; i += kL) S::storeu(x + i, S::mul(S::loadu(x + i), vinv));
    for (; i < n; ++i) x[i] *= inv;
  }

  static constexpr KvAttendOps ops() {
    return KvAttendOps{kL,          &decode_fp16, &decode_int, &decode_codes, &scores,
                       &scores_int, &scores_q8,   &values,     &softmax};
  }
};

}  // namespace
}  // namespace wkvq::detail
