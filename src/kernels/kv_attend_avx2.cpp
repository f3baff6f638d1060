// AVX2 + FMA + F16C attention kernels (compiled with -mavx2 -mfma -mf16c; chosen at run time):
// the kernels of kv_attend_kernels.h with the Avx2 traits and an 8-vector lane sum.
#include "kernels/simd_avx2.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_attend_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx2Attend : Avx2 {
  // The float 2^k for integer lanes k in [-126, 127].
  static F pow2(I k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
  }
  // Lane r = the sum of the lanes of a[r]: pairs interleaved (32-bit, then 64-bit), then the two
  // 128-bit halves added; 7 adds and 14 shuffles for 8 sums.
  static F sum_each(const F (&a)[8]) {
    F b[4];
    for (int k = 0; k < 4; ++k) {
      b[k] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * k], a[2 * k + 1]),
                           _mm256_unpackhi_ps(a[2 * k], a[2 * k + 1]));
    }
    F c[2];  // 128-bit half H of c[k]: partial sums of a[4k..4k+3] over that half
    for (int k = 0; k < 2; ++k) {
      const __m256d x = _mm256_castps_pd(b[2 * k]), y = _mm256_castps_pd(b[2 * k + 1]);
      c[k] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)),
                           _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
    }
    return _mm256_add_ps(_mm256_permute2f128_ps(c[0], c[1], 0x20),
                         _mm256_permute2f128_ps(c[0], c[1], 0x31));
  }
};

}  // namespace

const KvAttendOps& kv_attend_ops_avx2() {
  static constexpr KvAttendOps kOps = KvAttendKernels<Avx2Attend>::ops();
  return kOps;
}

}  // namespace wkvq::detail
