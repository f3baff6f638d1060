// AVX2 + FMA + F16C attention kernels (compiled with -mavx2 -mfma -mf16c; chosen at run time):
// the kernels of kv_attend_kernels.h with the Avx2 traits and hsum of 8 vectors at once.
#include "kernels/simd_avx2.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_attend_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx2Attend : Avx2 {
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
