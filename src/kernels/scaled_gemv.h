// The ISA-independent parts of the "scaled" 4-bit GEMV (qmatmul_avx512.cpp explains the method:
// each 4-bit code isolated by an AND is the denormal float q * 2^(4j - 149), against an x scaled
// by powers of two): limits, layout, x scaling, the denormal timing rule. Only for the
// *_avx*.cpp kernels: internal linkage, no standard library. An AVX2 version (ymm, 64-column
// chunks) was tried: on Zen 4 it was no faster than the AVX2 dot kernel (TinyLlama W4KV4 decode
// with WKVQ_ISA=avx2, 2 threads: 19.7-23.0 tok/s against 21.5-25.3), so AVX2 keeps the dot kernel.
#pragma once

#include <cstdint>

#include "kernels/qmatmul_impl.h"

namespace wkvq::detail {
namespace {

// x magnitudes the scaled path takes: 2^-64 <= max|x| < 2^64 (float exponent fields). So x' stays
// below 2^125 and s 2^E finite.
constexpr uint32_t kScaledMinExpField = 127 - 64;
constexpr uint32_t kScaledMaxExpField = 127 + 63;
// MXCSR's denormals-are-zero bit: with it set the codes would read as 0.
constexpr uint32_t kMxcsrDaz = 1u << 6;
// Longest row: the rearranged x lives on the stack (64 KB).
constexpr int64_t kScaledMaxCols = 16384;
constexpr int64_t kScaledMaxGroups = kScaledMaxCols / 64;
// Prefetch distance along the stream of codes, bytes (measured on Zen 4: 2-4 KB best).
constexpr int64_t kScaledPrefetch = 3072;

// Column (within a chunk of 8 * lanes columns) of nibble j of dword lane i: Q4Block i / 4 holds
// column 16 h + k of its 32 in the nibble h of byte k, and lane i holds its bytes 4 (i % 4) ..
// 4 (i % 4) + 3.
constexpr int64_t scaled_chunk_col(int64_t i, int64_t j) {
  return 32 * (i / 4) + 16 * (j & 1) + 4 * (i % 4) + (j >> 1);
}

// Whether W suits the scaled GEMV reading `chunk` columns per load.
inline bool scaled_gemv_fits(const QMatView& w, int64_t chunk) {
  return w.bits == 4 && w.cols % chunk == 0 && w.cols <= kScaledMaxCols &&
         (w.n_groups == 1 || w.group % chunk == 0);
}

// 2^k as a float, k in [-126, 127].
inline float pow2(int k) {
  const uint32_t bits = static_cast<uint32_t>(k + 127) << 23;
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

// x rearranged and scaled for chunks of 8 * lanes columns: xp[c + lanes j + i] =
// x[c + scaled_chunk_col(i, j)] * 2^(149 - 4 (j < 5 ? j : j - 5) - E), with E = max(e, 0) + 24
// and max|x| < 2^e (exp_field: the exponent field of max|x|). Returns E.
inline int scale_x(const float* x, int64_t cols, uint32_t exp_field, int64_t lanes, float* xp) {
  const int e = static_cast<int>(exp_field) - 126;
  const int big_e = (e > 0 ? e : 0) + 24;
  float mult[5];
  for (int jj = 0; jj < 5; ++jj) mult[jj] = pow2(149 - 4 * jj - big_e);
  const int64_t chunk = 8 * lanes;
  for (int64_t c = 0; c < cols; c += chunk) {
    for (int64_t j = 0; j < 8; ++j) {
      const float m = mult[j < 5 ? j : j - 5];
      for (int64_t i = 0; i < lanes; ++i) xp[c + lanes * j + i] = x[c + scaled_chunk_col(i, j)] * m;
    }
  }
  return big_e;
}

// Whether FMAs with a denormal operand run about as fast as with normal ones: cycles(b, iters)
// times `iters` rounds of independent FMAs with operand b; best of 5 trials each way, "fast"
// within 2x. Zen 4: equal (measured); Intel cores take microcode assists for denormal operands,
// ~100x slower, which would make the scaled GEMV the slowest path.
template <class Cycles>
bool denormal_fma_within_2x(Cycles cycles) {
  constexpr int kIters = 512;
  uint64_t normal = ~uint64_t{0};
  uint64_t denormal = ~uint64_t{0};
  for (int trial = 0; trial < 5; ++trial) {
    const uint64_t n = cycles(0x1p-20f, kIters);
    const uint64_t d = cycles(0x1p-140f, kIters);
    normal = n < normal ? n : normal;
    denormal = d < denormal ? d : denormal;
  }
  return denormal < 2 * normal;
}

}  // namespace
}  // namespace wkvq::detail
