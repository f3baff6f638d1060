// The attention kernels of kernels/kv_attend.h written once over vector traits S (simd_avx2.h,
// simd_avx512.h, extended in the instantiating file with sum_each: lane r of the result = the sum
// of the lanes of a[r]) and instantiated by kv_attend_avx2.cpp / kv_attend_avx512.cpp.
//
// gqa_scores: per query head, kL positions at a time, one accumulator per position over the
// channels (the q chunk loaded once for the kL rows), then sum_each turns the kL accumulators into
// one vector of kL scores: no horizontal sum per score. gqa_values: per query head, up to 4
// vectors of channels stay in registers over all positions of the tile. The rows x_j are read
// from L1 (a decoded tile) or in place (f32 storage, the chunk's own k, v).
// Internal linkage, no standard library: only for *_avx2.cpp / *_avx512.cpp (kv_attend_impl.h).
#pragma once

#include <cstdint>

#include "kernels/kv_attend_impl.h"

namespace wkvq::detail {
namespace {

inline float fp16_at(const uint8_t* p) {
  return _cvtsh_ss(static_cast<unsigned short>(p[0] | (p[1] << 8)));
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

  // One group of len channels: x^ = m + code * s (the fma rounds once: code * s is exact).
  template <int Bits>
  static void decode_group(const uint8_t* params, const uint8_t* c, int64_t len, float* out) {
    const F vs = S::set1(fp16_at(params));
    const F vm = S::set1(fp16_at(params + 2));
    if constexpr (Bits == 4) {
      const int64_t h = (len + 1) / 2;
      for (int64_t j = 0; j < h; j += kL) {
        const I v = S::load_bytes(c + j, h - j);
        store_run(out + j, h - j, S::fmadd(S::to_float(S::and_i(v, S::set1_i(15))), vs, vm));
        store_run(out + h + j, len - h - j, S::fmadd(S::to_float(S::shr4(v)), vs, vm));
      }
    } else {
      for (int64_t j = 0; j < len; j += kL) {
        store_run(out + j, len - j, S::fmadd(S::to_float(S::load_bytes(c + j, len - j)), vs, vm));
      }
    }
  }

  template <int Bits>
  static void decode_int_bits(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                              int64_t c0, int64_t hd, float* x) {
    const int64_t g0 = c0 / s.group, groups = hd / s.group;
    for (int64_t j = 0; j < n; ++j) {
      const uint8_t* rec = records + j * stride;
      for (int64_t k = 0; k < groups; ++k) {
        const int64_t g = g0 + k;
        decode_group<Bits>(rec + 4 * g, rec + s.params_bytes + g * s.group_code_bytes, s.group,
                           x + j * hd + k * s.group);
      }
    }
  }

  static void decode_int(const KvShape& s, const uint8_t* records, int64_t stride, int64_t n,
                         int64_t c0, int64_t hd, float* x) {
    (s.bits == 4 ? decode_int_bits<4> : decode_int_bits<8>)(s, records, stride, n, c0, hd, x);
  }

  // Scores of one query head over kL rows (rows past n repeat the last one; not stored).
  static F scores_of_rows(const float* qh, int64_t hd, const float* const (&rows)[kL]) {
    F acc[kL];
    for (int64_t r = 0; r < kL; ++r) acc[r] = S::zero();
    int64_t i = 0;
    for (; i + kL <= hd; i += kL) {
      const F qv = S::loadu(qh + i);
      for (int64_t r = 0; r < kL; ++r) acc[r] = S::fmadd(qv, S::loadu(rows[r] + i), acc[r]);
    }
    if (i < hd) {
      const M m = S::mask(hd - i);
      const F qv = S::load_first(qh + i, m, hd - i);
      for (int64_t r = 0; r < kL; ++r) {
        acc[r] = S::fmadd(qv, S::load_first(rows[r] + i, m, hd - i), acc[r]);
      }
    }
    return S::sum_each(acc);
  }

  static void scores(const float* q, int64_t g, int64_t hd, const float* x, int64_t ldx, int64_t n,
                     float scale, float* out, int64_t ld) {
    const F vscale = S::set1(scale);
    for (int64_t j0 = 0; j0 < n; j0 += kL) {
      const float* rows[kL];
      for (int64_t r = 0; r < kL; ++r) rows[r] = x + (j0 + r < n ? j0 + r : n - 1) * ldx;
      for (int64_t h = 0; h < g; ++h) {
        store_run(out + h * ld + j0, n - j0, S::mul(scores_of_rows(q + h * hd, hd, rows), vscale));
      }
    }
  }

  // acc[0:count) += sum_j p[j] x_j[0:count), count <= 4 kL, in registers over the rows.
  static void values_run(const float* p, const float* x, int64_t ldx, int64_t n, int64_t count,
                         float* acc) {
    if (count == 4 * kL) {
      F o0 = S::loadu(acc), o1 = S::loadu(acc + kL), o2 = S::loadu(acc + 2 * kL),
        o3 = S::loadu(acc + 3 * kL);
      for (int64_t j = 0; j < n; ++j) {
        const F pj = S::broadcast(p + j);
        const float* xj = x + j * ldx;
        o0 = S::fmadd(pj, S::loadu(xj), o0);
        o1 = S::fmadd(pj, S::loadu(xj + kL), o1);
        o2 = S::fmadd(pj, S::loadu(xj + 2 * kL), o2);
        o3 = S::fmadd(pj, S::loadu(xj + 3 * kL), o3);
      }
      S::storeu(acc, o0);
      S::storeu(acc + kL, o1);
      S::storeu(acc + 2 * kL, o2);
      S::storeu(acc + 3 * kL, o3);
      return;
    }
    for (int64_t i = 0; i < count; i += kL) {  // a vector at a time
      F o = load_run(acc + i, count - i);
      for (int64_t j = 0; j < n; ++j) {
        o = S::fmadd(S::broadcast(p + j), load_run(x + j * ldx + i, count - i), o);
      }
      store_run(acc + i, count - i, o);
    }
  }

  static void values(const float* p, int64_t ld, int64_t g, int64_t hd, const float* x, int64_t ldx,
                     int64_t n, float* acc) {
    for (int64_t h = 0; h < g; ++h) {
      for (int64_t i = 0; i < hd; i += 4 * kL) {
        const int64_t count = hd - i < 4 * kL ? hd - i : 4 * kL;
        values_run(p + h * ld, x + i, ldx, n, count, acc + h * hd + i);
      }
    }
  }

  // e^x for x <= 0: x = k ln2 + r, |r| <= ln2 / 2, e^r by Horner (Taylor to r^7), times 2^k
  // (S::pow2: the float 2^k from the integer k).
  static F exp_nonpositive(F x) {
    x = S::max(x, S::set1(-87.3f));
    const I k = S::round_to_int(S::mul(x, S::set1(1.44269504f)));
    const F kf = S::to_float(k);
    F r = S::fmadd(kf, S::set1(-0.693359375f), x);  // ln2 = 0.693359375 - 2.12194440e-4
    r = S::fmadd(kf, S::set1(2.12194440e-4f), r);
    F p = S::set1(1.0f / 5040);
    p = S::fmadd(p, r, S::set1(1.0f / 720));
    p = S::fmadd(p, r, S::set1(1.0f / 120));
    p = S::fmadd(p, r, S::set1(1.0f / 24));
    p = S::fmadd(p, r, S::set1(1.0f / 6));
    p = S::fmadd(p, r, S::set1(0.5f));
    p = S::fmadd(p, r, S::set1(1.0f));
    p = S::fmadd(p, r, S::set1(1.0f));
    return S::mul(p, S::pow2(k));
  }

  static void softmax(float* x, int64_t g, int64_t n, int64_t ld) {
    for (int64_t h = 0; h < g; ++h) {
      float* row = x + h * ld;
      const F first = S::set1(row[0]);
      F vmax = first;
      for (int64_t i = 0; i < n; i += kL) vmax = S::max(vmax, S::load_fill(row + i, n - i, first));
      const F vm = S::set1(S::hmax(vmax));
      double sum = 0.0;
      for (int64_t i = 0; i < n; i += kL) {
        store_run(row + i, n - i, exp_nonpositive(S::sub(load_run(row + i, n - i), vm)));
        sum += static_cast<double>(S::hsum(load_run(row + i, n - i)));
      }
      const F inv = S::set1(static_cast<float>(1.0 / sum));
      for (int64_t i = 0; i < n; i += kL) {
        store_run(row + i, n - i, S::mul(load_run(row + i, n - i), inv));
      }
    }
  }

  static constexpr KvAttendOps ops() {
    return KvAttendOps{&decode_fp16, &decode_int, &scores, &values, &softmax};
  }
};

}  // namespace
}  // namespace wkvq::detail
