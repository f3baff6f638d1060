// AVX-512 attention kernels (compiled with -mavx512f/bw/vl/dq; chosen at run time): the kernels
// of kv_attend_kernels.h with the Avx512 traits and hsum of 16 vectors at once.
#include "kernels/simd_avx512.h"
// (the ISA traits first: the kernel templates use them)
#include "kernels/kv_attend_kernels.h"

namespace wkvq::detail {
namespace {

struct Avx512Attend : Avx512 {
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
