// The scaled AVX2 4-bit GEMV (n = 1), run instead of qmatmul_avx2.cpp's dot kernel where it
// applies (compiled with -mavx2 -mfma -mf16c), and the probe of whether FMAs on denormal operands
// run at full speed, which picks the scaled form of either ISA.
//
// The AVX2 dot kernel decodes 32 weights with two widenings, four ANDs or shifts, four integer
// subtractions and four conversions before its four FMAs: on a core that splits each ymm
// operation in two 128-bit halves (Zen 1) it read 2.8-3.0 GB/s of codes at 1 thread
// (wkvq_qmatmul_bench GemvCold), against 20-24 GB/s of memory; this GEMV 5.1-5.3. This GEMV is the
// AVX-512 scaled GEMV (qmatmul_gemv_avx512.cpp) on 8 lanes: one W row at a time as 32-byte chunks
// of 8 dwords (64 columns, two Q4Blocks; layout and scaling of x in kernels/qgemv_chunks.h), nibble
// j of every dword isolated with one AND (plus one shift per chunk for nibbles 5..7) and read as
// the denormal q * 2^(4j - 149), one FMA per 8 weights against x scaled by 2^(149 - 4j - E); per
// group y += s 2^E A_g, and y -= sum_g z_g s_g X_g with the group sums X_g of x. Its rounding is
// the AVX-512 scaled form's (kernels/qmatmul.h). Where FMAs on denormal operands are slow (Intel
// cores), the dot kernel stays: kernels/kernel_table.cpp asks the probe below.
#include <immintrin.h>
#include <x86intrin.h>

#include <cstdint>

#include "kernels/qgemv_chunks.h"
#include "kernels/qgroups_avx2.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx2.h"

namespace wkvq::detail {
namespace {

constexpr int64_t kChunkCols = 8 * kLanes;  // one 32-byte load: 64 columns
constexpr int64_t kMaxGroups = kMaxChunkedCols / kChunkCols;
// Prefetch distance along the stream of codes, bytes.
constexpr int64_t kPrefetch = 2048;

// Exponent field of max|x| (255 when x holds a NaN or an Inf).
uint32_t max_abs_exponent(const float* x, int64_t cols) {
  __m256i m = _mm256_setzero_si256();
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
  for (int64_t c = 0; c < cols; c += kLanes) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + c));
    m = _mm256_max_epu32(m, _mm256_and_si256(v, abs_mask));
  }
  alignas(32) uint32_t lanes[kLanes];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m);
  uint32_t top = 0;
  for (const uint32_t l : lanes) top = l > top ? l : top;
  return top >> 23;
}

// Four lane-wise chains of sum_j q_j x'_j (the sums of one group).
struct Chains {
  __m256 a = _mm256_setzero_ps();
  __m256 b = _mm256_setzero_ps();
  __m256 c = _mm256_setzero_ps();
  __m256 d = _mm256_setzero_ps();
  __m256 sum() const { return _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)); }
};

// One 64-column chunk (codes p) into the chains: nibble j into chain j % 4, two FMAs per chain
// (FMA latency 5 on Zen 1: two chains of four ran 15% slower). The ANDs run on the float
// domain's port, as the FMAs that read them.
// (Two rows side by side, sharing each load of x', ran at 3.1 GB/s of codes against 4.3 on Zen 1:
// 16 ymm registers do not hold both rows' codes, chains and the five masks.)
inline void chunk_dot(const uint8_t* p, const float* xc, Chains& t) {
  const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256 v = _mm256_castsi256_ps(codes);
  const __m256 u = _mm256_castsi256_ps(_mm256_srli_epi32(codes, 20));
  auto nib = [](__m256 x, uint32_t mask) {
    return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(mask))));
  };
  t.a = _mm256_fmadd_ps(_mm256_load_ps(xc), nib(v, 0xF), t.a);
  t.b = _mm256_fmadd_ps(_mm256_load_ps(xc + 8), nib(v, 0xF0), t.b);
  t.c = _mm256_fmadd_ps(_mm256_load_ps(xc + 16), nib(v, 0xF00), t.c);
  t.d = _mm256_fmadd_ps(_mm256_load_ps(xc + 24), nib(v, 0xF000), t.d);
  t.a = _mm256_fmadd_ps(_mm256_load_ps(xc + 32), nib(v, 0xF0000), t.a);
  t.b = _mm256_fmadd_ps(_mm256_load_ps(xc + 40), nib(u, 0xF), t.b);
  t.c = _mm256_fmadd_ps(_mm256_load_ps(xc + 48), nib(u, 0xF0), t.c);
  t.d = _mm256_fmadd_ps(_mm256_load_ps(xc + 56), nib(u, 0xF00), t.d);
}

// y[o] = x . W^[o, :] from the scaled x (xp, 32-byte aligned), group sums xg and 2^E.
float chunk_row(const float* xp, const float* xg, float pow2_e, const QMatView& w, int64_t o) {
  const uint8_t* row = w.codes + o * w.row_bytes;
  const int64_t group = w.n_groups == 1 ? w.cols : w.group;
  __m256 tot = _mm256_setzero_ps();
  alignas(32) float s[kCoderChunk];
  alignas(32) int32_t z[kCoderChunk];
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += kCoderChunk) {
    const int64_t ng = min64(kCoderChunk, w.n_groups - g0);
    load_group_params(w, o, g0, ng, s, z);
    const __m256 sv = _mm256_load_ps(s);
    // -z s X_g (z s exact); groups past the row's end have s = 0 and X_g masked to 0.
    const __m256 zs = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(z))), sv);
    tot = _mm256_fnmadd_ps(zs, _mm256_maskload_ps(xg + g0, lane_mask(ng)), tot);
    _mm256_store_ps(s, _mm256_mul_ps(sv, _mm256_set1_ps(pow2_e)));  // s 2^E
    for (int64_t g = g0; g < g0 + ng; ++g) {
      Chains t;
      for (int64_t c = g * group; c < (g + 1) * group; c += kChunkCols) {
        const uint8_t* p = row + c / 2;
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetch, _MM_HINT_T0);
        chunk_dot(p, xp + c, t);
      }
      tot = _mm256_fmadd_ps(t.sum(), _mm256_broadcast_ss(s + (g - g0)), tot);
    }
  }
  return hsum(tot);
}

// TSC cycles of `iters` rounds of 8 independent FMAs acc += b * c (acc stays near 1: normal).
uint64_t fma_cycles(float b, int iters) {
  __m256 acc[8];
  for (__m256& a : acc) a = _mm256_set1_ps(1.0f);
  __m256 bv = _mm256_set1_ps(b);
  const __m256 cv = _mm256_set1_ps(0x1p100f);
  const uint64_t t0 = __rdtsc();
  for (int i = 0; i < iters; ++i) {
    __asm__ volatile("" : "+x"(bv));  // b is not a constant: each FMA runs
#pragma GCC unroll 8
    for (__m256& a : acc) a = _mm256_fmadd_ps(bv, cv, a);
  }
  const uint64_t t1 = __rdtsc();
  __m256 sum = acc[0];
  for (int k = 1; k < 8; ++k) sum = _mm256_add_ps(sum, acc[k]);
  __asm__ volatile("" : : "x"(sum));
  return t1 - t0;
}

}  // namespace

// Whether FMAs with a denormal operand run about as fast as with normal ones, timed once per
// process: best of 5 trials each way, "fast" within 2x. Zen 1 and Zen 4: equal (measured); Intel
// cores take microcode assists for denormal operands, ~100x slower, which would make the scaled
// forms the slowest path. kernel_table.cpp asks it only when WKVQ_GEMV does not pin the choice.
__attribute__((noinline)) bool denormal_operands_are_fast() {
  static const bool fast = [] {
    constexpr int kIters = 512;
    uint64_t normal = ~uint64_t{0};
    uint64_t denormal = ~uint64_t{0};
    for (int trial = 0; trial < 5; ++trial) {
      const uint64_t n = fma_cycles(0x1p-20f, kIters);
      const uint64_t d = fma_cycles(0x1p-140f, kIters);
      normal = n < normal ? n : normal;
      denormal = d < denormal ? d : denormal;
    }
    return denormal < 2 * normal;
  }();
  return fast;
}

namespace {

// y[o0:o1] from x with max|x|'s exponent field ef (in range), apart from the checks as in the
// AVX-512 GEMV.
__attribute__((noinline)) void scaled_rows(const float* x, uint32_t ef, const QMatView& w, float* y,
                                           int64_t o0, int64_t o1) {
  alignas(32) float xp[kMaxChunkedCols];
  alignas(32) float xg[kMaxGroups];
  const float pow2_e = pow2(scale_x<kLanes>(x, w.cols, ef, xp));
  group_sums<Avx2>(x, w, xg);
  for (int64_t o = o0; o < o1; ++o) y[o] = chunk_row(xp, xg, pow2_e, w, o);
}

}  // namespace

bool qmatmul_scaled_gemv_avx2(const float* x, const QMatView& w, float* y, int64_t o0, int64_t o1) {
  if (!chunks_fit<kLanes>(w) || (_mm_getcsr() & kMxcsrDaz) != 0) return false;
  const uint32_t ef = max_abs_exponent(x, w.cols);
  if (ef < kMinExpField || ef > kMaxExpField) return false;
  scaled_rows(x, ef, w, y, o0, o1);
  return true;
}

}  // namespace wkvq::detail
