// AVX2 + FMA + F16C quantized matmul kernels, 4 and 8 bits (compiled with -mavx2 -mfma -mf16c).
//
// The AVX2 part of the kernels of kernels/qmatmul_driver.h (which holds the loop nests), sized for
// 16 ymm registers.
// AVX2's vpermps has 8 entries, too few for the 16-entry table, so a 32-column block decodes to
// four ymm of float(q - z) (exact small integers). Columns: the low nibbles of Q4Block bytes 0..7
// and 8..15 are columns 0..7 and 8..15, the high nibbles 16..23 and 24..31.
//  - dot kernel: NX rows of x by NW rows of W; per group, x_j (q_j - z) is accumulated (exact
//    products inside the FMAs) and multiplied by s once at the end of the group;
//  - packed kernel: (q - z) * s (exact) packed into panels of 16 rows, 6 x 16 register tile.
#include <immintrin.h>

#include "kernels/qgroups_avx2.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx2.h"
// (the ISA traits first: the driver templates use them)
#include "kernels/qmatmul_driver.h"

namespace wkvq::detail {
namespace {

constexpr QGemmBlocking kB = kQAvx2Blocking;
constexpr int64_t kNr = kB.nr;
constexpr int kSub = static_cast<int>(kQBlockCols / kLanes);  // ymm per decoded block

// Zero point (as int32 lanes) and scale of one (row, group).
struct GroupCoder {
  __m256i z;
  __m256 s;
};

inline GroupCoder group_coder(const QMatView& w, int64_t row, int64_t g) {
  const int64_t i = row * w.n_groups + g;
  return GroupCoder{_mm256_set1_epi32(w.zeros[i]), _mm256_set1_ps(_cvtsh_ss(w.scales[i]))};
}

// q - z of the 32-column block at column c of a row, as exact floats: w[j] = columns
// c + 8j .. c + 8j + 7. Tail blocks of 8-bit rows (fewer than 32 bytes left) copy the bytes that
// exist; columns past the row end decode to -z and meet x = 0.
template <int Bits>
inline void decode_block(const uint8_t* codes, int64_t c, int64_t cols, __m256i z,
                         __m256 (&w)[kSub]) {
  if constexpr (Bits == 4) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + c / 2));
    const __m256i v0 = _mm256_cvtepu8_epi32(b);
    const __m256i v1 = _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8));
    const __m256i low = _mm256_set1_epi32(15);
    w[0] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v0, low), z));
    w[1] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v1, low), z));
    w[2] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v0, 4), z));
    w[3] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v1, 4), z));
  } else {
    const uint8_t* src = codes + c;
    alignas(32) uint8_t tail[kQBlockCols] = {};
    if (cols - c < kQBlockCols) {
      for (int64_t k = 0; k < cols - c; ++k) tail[k] = src[k];
      src = tail;
    }
#pragma GCC unroll 16
    for (int j = 0; j < kSub; ++j) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + j * kLanes));
      w[j] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(b), z));
    }
  }
}

// ---- dot kernel ----

// One 32-column block: gacc[i][r] += x[i, c:c+32] . (q - z)[o + r, c:c+32]. Tail: the row ends
// inside the block (masked loads of x).
template <int Bits, int NX, int NW, bool Tail>
inline void dot_step(const float* x, const QMatView& w, int64_t o, int64_t c,
                     const __m256i (&z)[NW], __m256 (&gacc)[NX][NW]) {
  const int64_t in = w.cols;
  if ((c * Bits / 8) % 64 == 0) {  // the next NW rows, as in qmatmul_avx512.cpp
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) {
      _mm_prefetch(
          reinterpret_cast<const char*>(w.codes + (o + NW + r) * w.row_bytes) + c * Bits / 8,
          _MM_HINT_T0);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < NW; ++r) {
    __m256 wv[kSub];
    decode_block<Bits>(w.codes + (o + r) * w.row_bytes, c, in, z[r], wv);
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const float* xi = x + i * in + c;
#pragma GCC unroll 16
      for (int j = 0; j < kSub; ++j) {
        const __m256 xv = Tail ? _mm256_maskload_ps(xi + j * kLanes, lane_mask(in - c - j * kLanes))
                               : _mm256_loadu_ps(xi + j * kLanes);
        gacc[i][r] = _mm256_fmadd_ps(xv, wv[j], gacc[i][r]);
      }
    }
  }
}

// The ISA's part of the quantized kernels (kernels/qmatmul_driver.h).
struct Kernels {
  template <int Bits>
  static constexpr int dot_rows_of_w(int nx) {
    return nx == 1 ? 4 : nx == 2 ? 2 : 1;
  }

  // One group j of the chunk in p, columns [c0, c1): acc[i][r] += s * x[i] . (q - z)[o + r]. The
  // products x_j (q_j - z) are exact inside the FMAs; one multiply by s per group.
  template <int Bits, int NX, int NW>
  static void dot_group(const float* x, const QMatView& w, int64_t o,
                        const GroupParams<Kernels, NW>& p, int64_t j, int64_t c0, int64_t c1,
                        __m256 (&acc)[NX][NW]) {
    __m256 gacc[NX][NW];  // x_j (q_j - z) summed over the group
    set_all(gacc, _mm256_setzero_ps());
    __m256i z[NW];
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) z[r] = _mm256_set1_epi32(p.z[r][j]);
    for_blocks(c0, c1, [&](auto tail, int64_t c) {
      dot_step<Bits, NX, NW, decltype(tail)::value != 0>(x, w, o, c, z, gacc);
    });
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) {
      const __m256 sv = _mm256_set1_ps(p.s[r][j]);
#pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) acc[i][r] = _mm256_fmadd_ps(gacc[i][r], sv, acc[i][r]);
    }
  }

  // ---- packed kernel ----

  // Dequantizes W rows [o, o + rows) (rows <= 16), columns [pc, pc + kc), into panel[k * 16 + r];
  // panel rows >= `rows` are zero.
  template <int Bits>
  static void pack_panel(const QMatView& w, int64_t o, int64_t rows, int64_t pc, int64_t kc,
                         float* panel) {
    alignas(32) float tmp[kQBlockCols];
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* codes = w.codes + (o + r) * w.row_bytes;
      int64_t group = -1;
      GroupCoder gc{};
      for (int64_t c = pc; c < pc + kc; c += kQBlockCols) {
        if (c / w.group != group) {
          group = c / w.group;
          gc = group_coder(w, o + r, group);
        }
        __m256 wv[kSub];
        decode_block<Bits>(codes, c, w.cols, gc.z, wv);
#pragma GCC unroll 16
        for (int j = 0; j < kSub; ++j) {
          _mm256_store_ps(tmp + j * kLanes, _mm256_mul_ps(wv[j], gc.s));  // (q - z) s: exact
        }
        const int64_t count = min64(kQBlockCols, pc + kc - c);
        float* dst = panel + (c - pc) * kNr + r;
        for (int64_t k = 0; k < count; ++k) dst[k * kNr] = tmp[k];
      }
    }
    for (int64_t r = rows; r < kNr; ++r) {
      for (int64_t k = 0; k < kc; ++k) panel[k * kNr + r] = 0.0f;
    }
  }

  using ZeroTerm = int32_t;  // z
  static constexpr int64_t kGroupChunk = kCoderChunk;
  static constexpr auto load_group_params = &detail::load_group_params;
  static constexpr QGemmBlocking kBlocking = kB;
  static constexpr int64_t kDotMaxRows = kQDotMaxRowsAvx2;
  static constexpr auto kScaledGemv = &qmatmul_scaled_gemv_avx2;
  static constexpr auto kTableGemv = nullptr;
};

constexpr QMatmulOps kOps = QMatmulDriver<Avx2, Kernels>::ops();

}  // namespace

const QMatmulOps& qmatmul_ops_avx2() { return kOps; }

}  // namespace wkvq::detail
