// AVX-512 attention kernels (compiled with -mavx512f/bw/vl/dq; chosen at run time): the kernels
// of kv_attend_kernels.h with the Avx512 traits and hsum of 16 vectors at once.
#include "kernels/simd_avx512.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_attend_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx512Attend : Avx512 {
  // exp_f32 in doubles: 8 lanes, widened from 8 floats (H).
  using D = __m512d;
  using H = __m256;
  static constexpr int64_t kD = 8;
  static H h_loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void h_storeu(float* p, H v) { _mm256_storeu_ps(p, v); }
  static H h_set1(float v) { return _mm256_set1_ps(v); }
  static H h_sub(H a, H b) { return _mm256_sub_ps(a, b); }
  static D d_widen(H v) { return _mm512_cvtps_pd(v); }
  static H d_narrow(D v) { return _mm512_cvtpd_ps(v); }  // current mode: nearest
  static D d_set1(double v) { return _mm512_set1_pd(v); }
  static void d_storeu(double* p, D v) { _mm512_storeu_pd(p, v); }
  static D d_add(D a, D b) { return _mm512_add_pd(a, b); }
  static D d_sub(D a, D b) { return _mm512_sub_pd(a, b); }
  static D d_mul(D a, D b) { return _mm512_mul_pd(a, b); }
  static D d_fmadd(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
  static D d_fnmadd(D a, D b, D c) { return _mm512_fnmadd_pd(a, b, c); }
  static D d_max(D a, D b) { return _mm512_max_pd(a, b); }  // a > b ? a : b
  static D d_min(D a, D b) { return _mm512_min_pd(a, b); }  // a < b ? a : b
  // 2^k from t = k + 1.5 * 2^52: (bits(t) << 52) + (1023 << 52)
  static D d_pow2(D t) {
    return _mm512_castsi512_pd(_mm512_add_epi64(_mm512_slli_epi64(_mm512_castpd_si512(t), 52),
                                                _mm512_set1_epi64(int64_t{1023} << 52)));
  }

  // Lane r = S::hsum(a[r]): the same pairs in the same order (lanes l and l + 8, then l + 4, then
  // l + 2, then l + 1), 16 rows at once. Fed with a'[k] = a[4 (k % 4) + k / 4], the four rounds
  // leave row a'[b + 4i] in lane 4b + i, which is row 4b + i.
  static F hsum_each(const F (&a)[16]) {
    const auto in = [&](int k) { return a[4 * (k % 4) + k / 4]; };
    F t[8];  // [a'2k: l + (l + 8), 8 lanes | a'2k+1: the same]
    for (int k = 0; k < 8; ++k) {
      t[k] = _mm512_add_ps(_mm512_shuffle_f32x4(in(2 * k), in(2 * k + 1), 0x44),
                           _mm512_shuffle_f32x4(in(2 * k), in(2 * k + 1), 0xee));
    }
    F u[4];  // 128-bit block b: a'[4m + b], lanes l + (l + 4)
    for (int m = 0; m < 4; ++m) {
      u[m] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0x88),
                           _mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0xdd));
    }
    F w[2];  // block b: a'[8n + b] lanes (0+2, 1+3), a'[8n + 4 + b] the same
    for (int m = 0; m < 2; ++m) {
      const __m512d x = _mm512_castps_pd(u[2 * m]), y = _mm512_castps_pd(u[2 * m + 1]);
      w[m] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                           _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    return _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xdd));
  }
};

}  // namespace

const KvAttendOps& kv_attend_ops_avx512() {
  static constexpr KvAttendOps kOps = KvAttendKernels<Avx512Attend>::ops();
  return kOps;
}

}  // namespace wkvq::detail
