// AVX2 + FMA + F16C attention kernels (compiled with -mavx2 -mfma -mf16c; chosen at run time):
// the kernels of kv_attend_kernels.h with the Avx2 traits and hsum of 8 vectors at once.
#include "kernels/simd_avx2.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_attend_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx2Attend : Avx2 {
  // exp_f32 in doubles: 4 lanes, widened from 4 floats (H).
  using D = __m256d;
  using H = __m128;
  static constexpr int64_t kD = 4;
  static H h_loadu(const float* p) { return _mm_loadu_ps(p); }
  static void h_storeu(float* p, H v) { _mm_storeu_ps(p, v); }
  static H h_set1(float v) { return _mm_set1_ps(v); }
  static H h_sub(H a, H b) { return _mm_sub_ps(a, b); }
  static D d_widen(H v) { return _mm256_cvtps_pd(v); }
  static H d_narrow(D v) { return _mm256_cvtpd_ps(v); }  // current mode: nearest
  static D d_set1(double v) { return _mm256_set1_pd(v); }
  static void d_storeu(double* p, D v) { _mm256_storeu_pd(p, v); }
  static D d_add(D a, D b) { return _mm256_add_pd(a, b); }
  static D d_sub(D a, D b) { return _mm256_sub_pd(a, b); }
  static D d_mul(D a, D b) { return _mm256_mul_pd(a, b); }
  static D d_fmadd(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
  static D d_fnmadd(D a, D b, D c) { return _mm256_fnmadd_pd(a, b, c); }
  static D d_max(D a, D b) { return _mm256_max_pd(a, b); }  // a > b ? a : b
  static D d_min(D a, D b) { return _mm256_min_pd(a, b); }  // a < b ? a : b
  // 2^k from t = k + 1.5 * 2^52: (bits(t) << 52) + (1023 << 52)
  static D d_pow2(D t) {
    return _mm256_castsi256_pd(_mm256_add_epi64(_mm256_slli_epi64(_mm256_castpd_si256(t), 52),
                                                _mm256_set1_epi64x(int64_t{1023} << 52)));
  }

  // Lane r = S::hsum(a[r]): the same pairs in the same order (lanes l and l + 4, then l + 2, then
  // l + 1), 8 rows at once. Fed with a'[k] = a[4 (k % 2) + k / 2], the three rounds leave row
  // a'[2i + H] in lane 4H + i, which is row 4H + i.
  static F hsum_each(const F (&a)[8]) {
    const auto in = [&](int k) { return a[4 * (k % 2) + k / 2]; };
    F t[4];  // [a'2k: l + (l + 4) | a'2k+1: the same]
    for (int k = 0; k < 4; ++k) {
      t[k] = _mm256_add_ps(_mm256_permute2f128_ps(in(2 * k), in(2 * k + 1), 0x20),
                           _mm256_permute2f128_ps(in(2 * k), in(2 * k + 1), 0x31));
    }
    F w[2];  // half H: a'[4m + H] lanes (0+2, 1+3), a'[4m + 2 + H] the same
    for (int m = 0; m < 2; ++m) {
      const __m256d x = _mm256_castps_pd(t[2 * m]), y = _mm256_castps_pd(t[2 * m + 1]);
      w[m] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)),
                           _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
    }
    return _mm256_add_ps(_mm256_shuffle_ps(w[0], w[1], 0x88), _mm256_shuffle_ps(w[0], w[1], 0xdd));
  }
};

}  // namespace

const KvAttendOps& kv_attend_ops_avx2() {
  static constexpr KvAttendOps kOps = KvAttendKernels<Avx2Attend>::ops();
  return kOps;
}

}  // namespace wkvq::detail
