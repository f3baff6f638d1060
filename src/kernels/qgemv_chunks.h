// The layout shared by the chunked 4-bit GEMVs (n = 1) of every ISA (qmatmul_gemv_avx2.cpp,
// qmatmul_gemv_avx512.cpp), and the scaling of x for their scaled form: scalar code, written once
// for L lanes (8 for AVX2, 16 for AVX-512), and the group sums of x over the ISA's vector traits S
// (kernels/simd_*.h).
//
// A chunk is one L-dword load of a W row's codes: 8 L columns, four Q4Blocks per 16 lanes. Lane i
// holds bytes 4 (i % 4) .. 4 (i % 4) + 3 of Q4Block i / 4, whose byte k holds columns k (low
// nibble) and 16 + k (high nibble), so nibble j of lane i is column chunk_col(i, j) of the chunk.
// x is rearranged once per call so that the L columns a vector of nibble j meets are contiguous:
// xp[8 L c + L j + i] = x[8 L c + chunk_col(i, j)] * m_j.
// Internal linkage: only for the ISA-flagged GEMV files.
#pragma once

#include <cstdint>

#include "kernels/qmatmul_impl.h"

namespace wkvq::detail {
namespace {

// Longest row: the rearranged x lives on the stack (64 KB).
constexpr int64_t kMaxChunkedCols = 16384;
// x magnitudes the scaled form takes: 2^-64 <= max|x| < 2^64 (float exponent fields).
constexpr uint32_t kMinExpField = 127 - 64;
constexpr uint32_t kMaxExpField = 127 + 63;
// MXCSR's denormals-are-zero bit: with it set the scaled form's codes would read as 0.
constexpr uint32_t kMxcsrDaz = 1u << 6;

constexpr int64_t chunk_col(int64_t i, int64_t j) {
  return 32 * (i / 4) + 16 * (j & 1) + 4 * (i % 4) + (j >> 1);
}

// Whether W's rows are whole L-lane chunks and its groups whole chunks.
template <int64_t L>
bool chunks_fit(const QMatView& w) {
  return w.bits == 4 && w.cols % (8 * L) == 0 && w.cols <= kMaxChunkedCols &&
         (w.n_groups == 1 || w.group % (8 * L) == 0);
}

// 2^k as a float, k in [-126, 127].
inline float pow2(int k) {
  const uint32_t bits = static_cast<uint32_t>(k + 127) << 23;
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

// x rearranged into the chunk layout (above) with m_j = mult[j < 5 ? j : j - 5].
template <int64_t L>
void rearrange_x(const float* x, int64_t cols, const float (&mult)[5], float* xp) {
  for (int64_t c = 0; c < cols; c += 8 * L) {
    for (int64_t j = 0; j < 8; ++j) {
      const float m = mult[j < 5 ? j : j - 5];
      for (int64_t i = 0; i < L; ++i) xp[c + L * j + i] = x[c + chunk_col(i, j)] * m;
    }
  }
}

// The scaled form: the dword (v & (0xF << 4j)) of a chunk, read as a float, is the denormal
// q * 2^(4j - 149) (nibbles 5..7 first shifted down by 20), so x is scaled by
// m_j = 2^(149 - 4 j' - E), j' = j < 5 ? j : j - 5, and an FMA forms q x 2^-E exactly.
// x rearranged and scaled into xp, for max|x|'s exponent field exp_field in
// [kMinExpField, kMaxExpField]; returns E = max(e, 0) + 24, max|x| < 2^e.
template <int64_t L>
int scale_x(const float* x, int64_t cols, uint32_t exp_field, float* xp) {
  const int e = static_cast<int>(exp_field) - 126;
  const int big_e = (e > 0 ? e : 0) + 24;
  float mult[5];
  for (int jj = 0; jj < 5; ++jj) mult[jj] = pow2(149 - 4 * jj - big_e);
  rearrange_x<L>(x, cols, mult, xp);
  return big_e;
}

// The group sums X_g of x for the scaled form, lane by lane over S::kLanes, then S::hsum.
template <class S>
void group_sums(const float* x, const QMatView& w, float* xg) {
  const int64_t group = w.n_groups == 1 ? w.cols : w.group;
  for (int64_t g = 0; g < w.n_groups; ++g) {
    typename S::F s = S::zero();
    for (int64_t c = g * group; c < (g + 1) * group; c += S::kLanes) s = S::add(s, S::loadu(x + c));
    xg[g] = S::hsum(s);
  }
}

}  // namespace
}  // namespace wkvq::detail
