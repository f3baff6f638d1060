// The two chunked AVX-512 4-bit GEMVs (n = 1), scaled and table, run instead of
// qmatmul_avx512.cpp's dot kernel where they apply (compiled with -mavx512f/bw/vl/dq). Both read
// one W row at a time as 64-byte chunks of 16 dwords, from x rearranged once per call (below).
//
// Scaled (for CPUs that run FMAs on denormal operands at full speed, e.g. Zen 4):
// The dot kernel (qmatmul_avx512.cpp) spends a widening and two permutes (shuffle-port uops)
// per 32 weights and walks 8 rows at once (8 memory streams). At n = 1 this GEMV instead walks one
// row at a time (one sequential stream, prefetched two lines at a time) and reads it a 64-byte
// chunk (128 columns, four Q4Blocks) at a time as 16 dwords. Nibble j of every dword is isolated
// with one AND, no shift and no conversion: the dword (v & (0xF << 4j)) read as a float is the
// denormal q * 2^(4j - 149) (bits 0..19 are mantissa; nibbles 5..7 are first shifted down by 20).
// An FMA with x' = x * 2^(149 - 4j - E) gives q * x * 2^-E exactly as the FMA would with q * x;
// the powers of two are exact. So per (row, group) sum_j q_j x_j 2^-E costs one FMA per 16
// weights, and y = sum_g s_g 2^E A_g - sum_g z_g s_g X_g, X_g = sum of x over group g (once per
// call).
//   - E = max(e, 0) + 24 with max|x| < 2^e keeps every x' below 2^125 (no overflow) and s 2^E
//     finite; x outside [2^-64, 2^64), NaN or Inf take the dot kernel (as does DAZ mode, which
//     would read the denormals as 0, and a CPU that is slow on denormal operands: timed once).
//   - Products are exact before their rounding; the zero point is subtracted per group instead
//     of per weight, so the rounding bound is in terms of |x_j| s (q_j + z) rather than
//     |x_j| s |q_j - z| (kernels/qmatmul.h).
// Lane i's nibble j is column chunk_col(i, j) of the chunk (Q4Block b = i / 4 holds column
// 16 h + k of its block in the nibble h of byte k, and lane i holds bytes 4 (i % 4) .. +3 of it),
// so x is rearranged and scaled once per call:
//   xp[128 c + 16 j + i] = x[128 c + chunk_col(i, j)] * 2^(149 - 4 (j < 5 ? j : j - 5) - E).
// Used when a row is whole chunks, every group is whole chunks, and x fits the stack buffer.
// Measured from DRAM on Zen 4, 1 thread (wkvq_qmatmul_bench GemvCold): 5632 x 2048 14-15 GB/s of
// codes (8 GB/s before, 8 rows at a time with table lookups), 2048 x 2048 15 GB/s (8.7). Long
// rows gain nothing (2048 x 5632: 12 GB/s, as before): their 22 KB of x' shares L1 with the
// streamed codes (a 2048-column x' reused for every segment reads 18 GB/s). Reading such rows
// in 2048-column segments, 8 rows at a time, so that the x' segment stays in L1, was slower
// still (8 interleaved streams: 8 GB/s); as were T1 and NTA prefetches.
// The AVX2 scaled GEMV (qmatmul_gemv_avx2.cpp, ymm, 64-column chunks) was no faster than the AVX2
// dot kernel on Zen 4 (TinyLlama W4KV4 decode with WKVQ_ISA=avx2, 2 threads: 19.7-23.0 tok/s
// against 21.5-25.3), but 1.4x faster on Zen 1, whose dot kernel is compute-bound (that file).
//
// Table (for the others, e.g. Intel cores, where denormal operands take microcode assists): the
// same chunks and rearranged x (unscaled), and the dot kernel's table lookup: vpermps reads only
// the low 4 bits of each index, so nibble j of every dword is looked up in the per-(row, group)
// table T[k] = (k - z) s (exact) after one shift by 4j (none for j = 0): a shift, a permute and an
// FMA per 16 weights, four accumulators per row. Against the dot kernel (8 rows side by side, 16
// bytes of each at a time, a widening per 32 weights) it reads one sequential stream with 64-byte
// loads, prefetched near and far (kPrefetchFar). On this Intel Xeon VM, 1 thread
// (wkvq_qmatmul_bench GemvCold, interleaved): rows of 2048 columns 9.5-10.3 GB/s of codes against
// the dot kernel's 7.1-8.2, rows of 5632 columns 10.0-10.1 against 9.2-9.7; prefetching into L1
// alone: 9.0, none: 6.1 (the dot kernel then at 8.5-9.1).
// Warm (W in L2): 12.8 GB/s against 14.0: the lookups' shifts and the per-row overheads cost more
// than the dot kernel's widenings, but one stream feeds it better.
#include <cstdint>

#include "kernels/qgemv_chunks.h"
#include "kernels/qgroups_avx512.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

constexpr int64_t kChunkCols = 8 * kLanes;  // one 64-byte load: 128 columns
constexpr int64_t kMaxGroups = kMaxChunkedCols / kChunkCols;
// Prefetch distance along the stream of codes, bytes (measured on Zen 4: 2-4 KB best).
constexpr int64_t kPrefetch = 3072;

// Exponent field of max|x| (255 when x holds a NaN or an Inf).
uint32_t max_abs_exponent(const float* x, int64_t cols) {
  __m512i m = _mm512_setzero_si512();
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  for (int64_t c = 0; c < cols; c += kLanes) {
    m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_loadu_si512(x + c), abs_mask));
  }
  return _mm512_reduce_max_epu32(m) >> 23;
}

// sum_j q_j x'_j of one 128-column chunk (codes p), lane by lane.
inline __m512 chunk_dot(const uint8_t* p, const float* xc) {
  const __m512i m0 = _mm512_set1_epi32(0xF);
  __m512i v = _mm512_loadu_si512(p);
  auto nib = [](__m512i u, __m512i m) { return _mm512_castsi512_ps(_mm512_and_si512(u, m)); };
  __m512 a = _mm512_mul_ps(_mm512_load_ps(xc), nib(v, m0));
  __m512 b = _mm512_mul_ps(_mm512_load_ps(xc + 16), nib(v, _mm512_slli_epi32(m0, 4)));
  a = _mm512_fmadd_ps(_mm512_load_ps(xc + 32), nib(v, _mm512_slli_epi32(m0, 8)), a);
  b = _mm512_fmadd_ps(_mm512_load_ps(xc + 48), nib(v, _mm512_slli_epi32(m0, 12)), b);
  a = _mm512_fmadd_ps(_mm512_load_ps(xc + 64), nib(v, _mm512_slli_epi32(m0, 16)), a);
  v = _mm512_srli_epi32(v, 20);
  b = _mm512_fmadd_ps(_mm512_load_ps(xc + 80), nib(v, m0), b);
  a = _mm512_fmadd_ps(_mm512_load_ps(xc + 96), nib(v, _mm512_slli_epi32(m0, 4)), a);
  b = _mm512_fmadd_ps(_mm512_load_ps(xc + 112), nib(v, _mm512_slli_epi32(m0, 8)), b);
  return _mm512_add_ps(a, b);
}

// y[o] = x . W^[o, :] from the scaled x (xp, 64-byte aligned), group sums xg and 2^E.
float chunk_row(const float* xp, const float* xg, float pow2_e, const QMatView& w, int64_t o) {
  const uint8_t* row = w.codes + o * w.row_bytes;
  const int64_t group = w.n_groups == 1 ? w.cols : w.group;
  __m512 tot = _mm512_setzero_ps();
  alignas(64) float s[kCoderChunk];
  alignas(64) float neg_zs[kCoderChunk];
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += kCoderChunk) {
    const int64_t ng = min64(kCoderChunk, w.n_groups - g0);
    load_group_params(w, o, g0, ng, s, neg_zs);
    tot =
        _mm512_fmadd_ps(_mm512_load_ps(neg_zs), _mm512_maskz_loadu_ps(lane_mask(ng), xg + g0), tot);
    for (int64_t g = g0; g < g0 + ng; ++g) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t c = g * group; c < (g + 1) * group; c += kChunkCols) {
        const uint8_t* p = row + c / 2;
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetch, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetch + 64, _MM_HINT_T0);
        acc = _mm512_add_ps(acc, chunk_dot(p, xp + c));
      }
      tot = _mm512_fmadd_ps(acc, _mm512_set1_ps(s[g - g0] * pow2_e), tot);
    }
  }
  return hsum(tot);
}

// ---- table GEMV ----

// Prefetch along the stream of codes for the table GEMV: into L1 kPrefetch bytes ahead and into
// L2/L3 kPrefetchFar ahead, as the int8 GEMV (qmatmul_q8_gemv_avx512vnni.cpp). On this Intel Xeon
// VM, TinyLlama W4KV4 decode at 1 thread, 2-3 runs each, interleaved: 17.3-17.6 tok/s; 16.9-17.7
// with 24 KB far; into L2 only: 16.7-17.5 at 6 KB ahead, 16.6-17.7 at 3 KB, 15.8-16.0 at 1.5 KB,
// 15.4-16.3 at 12 KB.
constexpr int64_t kPrefetchFar = 12288;

// W^ of nibble j (shifted down to bits 0..3 by the caller or not: vpermps reads bits 0..3) looked
// up in the group's table t.
inline __m512 lookup(__m512i v, __m512 t) { return _mm512_permutexvar_ps(v, t); }

// y[o] = x . W^[o, :] from the rearranged x (xp, 64-byte aligned), by table lookups.
float table_row(const float* xp, const QMatView& w, int64_t o) {
  const uint8_t* row = w.codes + o * w.row_bytes;
  const int64_t group = w.n_groups == 1 ? w.cols : w.group;
  __m512 a0 = _mm512_setzero_ps();
  __m512 a1 = a0;
  __m512 a2 = a0;
  __m512 a3 = a0;
  alignas(64) float s[kCoderChunk];
  alignas(64) float neg_zs[kCoderChunk];
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += kCoderChunk) {
    const int64_t ng = min64(kCoderChunk, w.n_groups - g0);
    load_group_params(w, o, g0, ng, s, neg_zs);
    for (int64_t g = g0; g < g0 + ng; ++g) {
      const __m512 t = group_table(s[g - g0], neg_zs[g - g0]);
      for (int64_t c = g * group; c < (g + 1) * group; c += kChunkCols) {
        const uint8_t* p = row + c / 2;
        const float* xc = xp + c;
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetch, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchFar, _MM_HINT_T2);
        const __m512i v = _mm512_loadu_si512(p);
        a0 = _mm512_fmadd_ps(_mm512_load_ps(xc), lookup(v, t), a0);
        a1 = _mm512_fmadd_ps(_mm512_load_ps(xc + 16), lookup(_mm512_srli_epi32(v, 4), t), a1);
        a2 = _mm512_fmadd_ps(_mm512_load_ps(xc + 32), lookup(_mm512_srli_epi32(v, 8), t), a2);
        a3 = _mm512_fmadd_ps(_mm512_load_ps(xc + 48), lookup(_mm512_srli_epi32(v, 12), t), a3);
        a0 = _mm512_fmadd_ps(_mm512_load_ps(xc + 64), lookup(_mm512_srli_epi32(v, 16), t), a0);
        a1 = _mm512_fmadd_ps(_mm512_load_ps(xc + 80), lookup(_mm512_srli_epi32(v, 20), t), a1);
        a2 = _mm512_fmadd_ps(_mm512_load_ps(xc + 96), lookup(_mm512_srli_epi32(v, 24), t), a2);
        a3 = _mm512_fmadd_ps(_mm512_load_ps(xc + 112), lookup(_mm512_srli_epi32(v, 28), t), a3);
      }
    }
  }
  return hsum(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// y[o0:o1] from x with max|x|'s exponent field ef (in range). Kept apart from the checks in
// qmatmul_scaled_gemv_avx512: with the denormal probe's code (then in this file) in the same
// function the loop ran 15 % slower.
__attribute__((noinline)) void scaled_rows(const float* x, uint32_t ef, const QMatView& w, float* y,
                                           int64_t o0, int64_t o1) {
  alignas(64) float xp[kMaxChunkedCols];
  alignas(64) float xg[kMaxGroups];
  const float pow2_e = pow2(scale_x<kLanes>(x, w.cols, ef, xp));
  group_sums<Avx512>(x, w, xg);
  for (int64_t o = o0; o < o1; ++o) y[o] = chunk_row(xp, xg, pow2_e, w, o);
}

// y[o0:o1] by table lookups.
__attribute__((noinline)) void table_rows(const float* x, const QMatView& w, float* y, int64_t o0,
                                          int64_t o1) {
  alignas(64) float xp[kMaxChunkedCols];
  const float one[5] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  rearrange_x<kLanes>(x, w.cols, one, xp);
  for (int64_t o = o0; o < o1; ++o) y[o] = table_row(xp, w, o);
}

}  // namespace

bool qmatmul_table_gemv_avx512(const float* x, const QMatView& w, float* y, int64_t o0,
                               int64_t o1) {
  if (!chunks_fit<kLanes>(w)) return false;
  table_rows(x, w, y, o0, o1);
  return true;
}

bool qmatmul_scaled_gemv_avx512(const float* x, const QMatView& w, float* y, int64_t o0,
                                int64_t o1) {
  if (!chunks_fit<kLanes>(w) || (_mm_getcsr() & kMxcsrDaz) != 0) return false;
  const uint32_t ef = max_abs_exponent(x, w.cols);
  if (ef < kMinExpField || ef > kMaxExpField) return false;
  scaled_rows(x, ef, w, y, o0, o1);
  return true;
}

}  // namespace wkvq::detail
