// AVX-512 quantized matmul kernels, 4 and 8 bits (compiled with -mavx512f/bw/vl/dq; chosen at
// run time by kernels/qmatmul.cpp).
//
// Decoding one 32-column block of a W row into two zmm of exact W^ values:
//  - 4 bits: the 16 bytes of a Q4Block widened to 16 int32 lanes; vpermps looks the low nibble
//    (columns 0..15; vpermps reads only the index's low 4 bits) and the nibble shifted down
//    (columns 16..31) up in a per-(row, group) table T[k] = (k - z) * s. No int->float
//    conversion, no scale multiply: one shift and two permutes per 32 weights.
//  - 8 bits: bytes widened and converted, then fma(q, s, -z s) = (q - z) s, exact because q s and
//    z s are exact (8-bit integer times an 11-bit fp16 mantissa).
//
// The drivers (walks over rows and groups, the packed loop nest) are kernels/qmatmul_driver.h's;
// this file holds the AVX-512 part (Kernels below):
//  - dot: per group, NX <= 4 rows of x by NW rows of W; the x block of 32 columns is loaded once
//    and used by NW decoded rows; NX * NW accumulators. At n <= 4 W's codes are read exactly once
//    (the next rows prefetched).
//  - packed: W dequantized into panels of 32 rows, 16 rows x 16 columns decoded along the rows and
//    transposed in registers; the 12 x 32 register tile (24 zmm) is gemm_driver.h's.
// At n = 1 with 4-bit rows of whole 128-column chunks, the scaled or table GEMV of
// qmatmul_gemv_avx512.cpp runs instead of the dot kernel where it applies.
// Kernel functions exceed the style's 60 lines only where the register tiling needs it.
#include "kernels/qgroups_avx512.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"
// (the ISA traits first: the driver templates use them)
#include "kernels/qmatmul_driver.h"

namespace wkvq::detail {
namespace {

constexpr QGemmBlocking kB = kQAvx512Blocking;
constexpr int64_t kNr = kB.nr;
static_assert(kQBlockCols == 2 * kLanes, "a decoded block is two zmm");

// What decoding a (row, group) needs: for 4 bits the table T[k] = (k - z) s in `a`; for 8 bits
// s in `a` and -z s in `b`.
struct GroupCoder {
  __m512 a, b;
};

template <int Bits>
inline GroupCoder make_coder(float s, float neg_zs) {
  GroupCoder gc;
  if constexpr (Bits == 4) {
    gc.a = group_table(s, neg_zs);
    gc.b = gc.a;
  } else {
    gc.a = _mm512_set1_ps(s);
    gc.b = _mm512_set1_ps(neg_zs);
  }
  return gc;
}

template <int Bits>
inline GroupCoder group_coder(const QMatView& w, int64_t row, int64_t g) {
  const int64_t i = row * w.n_groups + g;
  const float s = _cvtsh_ss(w.scales[i]);
  return make_coder<Bits>(s, -(static_cast<float>(w.zeros[i]) * s));  // z s is exact
}

// W^ of the 32-column block starting at column c of a row (codes = the row's packed codes):
// columns c..c+15 into w0, c+16..c+31 into w1. For 8 bits in a Tail block (the row ends inside
// it), m0 / m1 mask the bytes that exist; 4-bit rows are padded to whole blocks.
template <int Bits, bool Tail>
inline void decode_block(const uint8_t* codes, int64_t c, const GroupCoder& gc, __mmask16 m0,
                         __mmask16 m1, __m512& w0, __m512& w1) {
  if constexpr (Bits == 4) {
    const __m512i v =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + c / 2)));
    w0 = _mm512_permutexvar_ps(v, gc.a);
    w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), gc.a);
  } else {
    const uint8_t* p = codes + c;
    const __m128i b0 =
        Tail ? _mm_maskz_loadu_epi8(m0, p) : _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i b1 = Tail ? _mm_maskz_loadu_epi8(m1, p + kLanes)
                            : _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kLanes));
    w0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b0)), gc.a, gc.b);
    w1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b1)), gc.a, gc.b);
  }
}

// ---- dot kernel ----

// One 32-column block of the dot tile: acc[i][r] += x[i, c:c+32] . W^[o + r, c:c+32]. Tail: the
// row ends inside the block (masked loads of x, and of 8-bit codes).
template <int Bits, int NX, int NW, bool Tail>
inline void dot_step(const float* x, const QMatView& w, int64_t o, int64_t c,
                     const GroupCoder (&gc)[NW], __m512 (&acc)[NX][NW]) {
  const int64_t in = w.cols;
  const __mmask16 m0 = Tail ? lane_mask(in - c) : static_cast<__mmask16>(0xFFFF);
  const __mmask16 m1 = Tail ? lane_mask(in - c - kLanes) : static_cast<__mmask16>(0xFFFF);
  // The next NW rows' codes at this column, one cache line per row per 64 bytes: rows are short
  // (1 KB at in = 2048), too short for the hardware prefetcher to ramp up on its own.
  if ((c * Bits / 8) % 64 == 0) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) {
      _mm_prefetch(
          reinterpret_cast<const char*>(w.codes + (o + NW + r) * w.row_bytes) + c * Bits / 8,
          _MM_HINT_T0);
    }
  }
  __m512 x0[NX];
  __m512 x1[NX];
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
    x0[i] = Tail ? _mm512_maskz_loadu_ps(m0, x + i * in + c) : _mm512_loadu_ps(x + i * in + c);
    x1[i] = Tail ? _mm512_maskz_loadu_ps(m1, x + i * in + c + kLanes)
                 : _mm512_loadu_ps(x + i * in + c + kLanes);
  }
#pragma GCC unroll 16
  for (int r = 0; r < NW; ++r) {
    __m512 w0;
    __m512 w1;
    decode_block<Bits, Tail>(w.codes + (o + r) * w.row_bytes, c, gc[r], m0, m1, w0, w1);
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      acc[i][r] = _mm512_fmadd_ps(x0[i], w0, acc[i][r]);
      acc[i][r] = _mm512_fmadd_ps(x1[i], w1, acc[i][r]);
    }
  }
}

// The ISA's part of the quantized kernels (kernels/qmatmul_driver.h).
struct Kernels {
  // One group j of the chunk in p, columns [c0, c1): acc[i][r] += x[i] . W^[o + r].
  template <int Bits, int NX, int NW>
  static void dot_group(const float* x, const QMatView& w, int64_t o,
                        const GroupParams<Kernels, NW>& p, int64_t j, int64_t c0, int64_t c1,
                        __m512 (&acc)[NX][NW]) {
    GroupCoder gc[NW];
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) gc[r] = make_coder<Bits>(p.s[r][j], p.z[r][j]);
    for_blocks(c0, c1, [&](auto tail, int64_t c) {
      dot_step<Bits, NX, NW, decltype(tail)::value != 0>(x, w, o, c, gc, acc);
    });
  }

  // Rows of W per step for NX rows of x (registers: NW coders, NX * NW accumulators, 2 NX x).
  template <int Bits>
  static constexpr int dot_rows_of_w(int nx) {
    if (Bits == 4) return nx == 1 ? 8 : nx == 2 ? 6 : 4;
    return nx == 1 ? 8 : nx == 2 ? 4 : 3;
  }

  // ---- packed kernel ----

  // W^ of columns c + 16 half .. + 15 of one row (half of decode_block; tail bytes masked).
  template <int Bits>
  static __m512 decode_half(const uint8_t* codes, int64_t c, int half, const GroupCoder& gc,
                            int64_t cols) {
    if constexpr (Bits == 4) {
      __m512i v =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + c / 2)));
      if (half == 1) v = _mm512_srli_epi32(v, 4);
      return _mm512_permutexvar_ps(v, gc.a);
    } else {
      const int64_t first = c + half * kLanes;
      const __m128i b = _mm_maskz_loadu_epi8(lane_mask(cols - first), codes + first);
      return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), gc.a, gc.b);
    }
  }

  // Dequantizes W rows [o, o + rows) (rows <= 32), columns [pc, pc + kc), into panel[k * 32 + r];
  // panel rows >= `rows` are zero. 16 rows x 16 columns at a time: decoded along the rows, then
  // transposed in registers and stored as 16 aligned half-panel rows.
  template <int Bits>
  static void pack_panel(const QMatView& w, int64_t o, int64_t rows, int64_t pc, int64_t kc,
                         float* panel) {
    alignas(64) GroupCoder gc[kLanes];
    for (int64_t h = 0; h < kNr / kLanes; ++h) {
      const int64_t r0 = h * kLanes;
      const int64_t nr = min64(kLanes, rows - r0);  // may be <= 0: all-zero half
      int64_t group = -1;
      for (int64_t c = pc; c < pc + kc; c += kQBlockCols) {
        if (c / w.group != group) {
          group = c / w.group;
          for (int64_t r = 0; r < nr; ++r) gc[r] = group_coder<Bits>(w, o + r0 + r, group);
        }
        for (int half = 0; half < 2; ++half) {
          const int64_t k0 = c - pc + half * kLanes;
          if (k0 >= kc) break;
          __m512 t[kLanes];
#pragma GCC unroll 16
          for (int r = 0; r < kLanes; ++r) {
            t[r] = r < nr ? decode_half<Bits>(w.codes + (o + r0 + r) * w.row_bytes, c, half, gc[r],
                                              w.cols)
                          : _mm512_setzero_ps();
          }
          Avx512::transpose(t);
          const int64_t count = min64(kLanes, kc - k0);
          for (int64_t j = 0; j < count; ++j) _mm512_store_ps(panel + (k0 + j) * kNr + r0, t[j]);
        }
      }
    }
  }

  using ZeroTerm = float;  // -z s
  static constexpr int64_t kGroupChunk = kCoderChunk;
  static constexpr auto load_group_params = &detail::load_group_params;
  static constexpr QGemmBlocking kBlocking = kB;
  static constexpr int64_t kDotMaxRows = kQDotMaxRowsAvx512;
  static constexpr auto kScaledGemv = &qmatmul_scaled_gemv_avx512;
  static constexpr auto kTableGemv = &qmatmul_table_gemv_avx512;
};

constexpr QMatmulOps kOps = QMatmulDriver<Avx512, Kernels>::ops();

}  // namespace

const QMatmulOps& qmatmul_ops_avx512() { return kOps; }

}  // namespace wkvq::detail
