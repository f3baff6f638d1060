// AVX-512 attention kernels (compiled with -mavx512f/bw/vl/dq; chosen at run time): the kernels
// of kv_attend_kernels.h with the Avx512 traits and a 16-vector lane sum.
#include "kernels/simd_avx512.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_attend_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx512Attend : Avx512 {
  // The float 2^k for integer lanes k in [-126, 127].
  static F pow2(I k) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23));
  }
  // Lane r = the sum of the lanes of a[r]: pairs interleaved (32-bit, then 64-bit), then the
  // 128-bit lanes combined twice; 15 adds and 30 shuffles for 16 sums.
  static F sum_each(const F (&a)[16]) {
    F b[8];
    for (int k = 0; k < 8; ++k) {
      b[k] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * k], a[2 * k + 1]),
                           _mm512_unpackhi_ps(a[2 * k], a[2 * k + 1]));
    }
    F c[4];  // 128-bit lane L of c[k]: partial sums of a[4k..4k+3] over that lane's 4 floats
    for (int k = 0; k < 4; ++k) {
      const __m512d x = _mm512_castps_pd(b[2 * k]), y = _mm512_castps_pd(b[2 * k + 1]);
      c[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                           _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    F e[2];  // lanes [c0: L0+L1, c0: L2+L3, c1: L0+L1, c1: L2+L3] and the same for c2, c3
    for (int k = 0; k < 2; ++k) {
      e[k] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0x88),
                           _mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0xdd));
    }
    return _mm512_add_ps(_mm512_shuffle_f32x4(e[0], e[1], 0x88),
                         _mm512_shuffle_f32x4(e[0], e[1], 0xdd));
  }
};

}  // namespace

const KvAttendOps& kv_attend_ops_avx512() {
  static constexpr KvAttendOps kOps = KvAttendKernels<Avx512Attend>::ops();
  return kOps;
}

}  // namespace wkvq::detail
