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
// Dot kernel (GEMV and small n): NX <= 4 rows of x by NW rows of W; the x block of 32 columns is
// loaded once and used by NW decoded rows; NX * NW accumulators, one horizontal sum per output at
// the end. At n <= 4 W's codes are read exactly once (the next rows prefetched); above, W is
// walked in blocks of kQDotRowBlock rows that stay in L2 while every 4 rows of x pass.
//
// Packed kernel (GEMM), the BLIS loop nest with dequantization in the packing step:
//   for jc over W rows, nc at a time; for pc over `in`, kc at a time:
//     dequantize W[jc:jc+nc, pc:pc+kc] into panels of 32 rows, k-major: panel[k * 32 + r]
//       (16 rows x 16 columns decoded along the rows, transposed in registers)
//     for ir over x rows, 12 at a time: pack x[ir:ir+12, pc:pc+kc] k-major; for each panel:
//       12 x 32 register tile: acc[r] += broadcast(x[r, k]) * panel[k, 0:32]   (24 zmm)
// The tile starts from y when pc > 0, so each output is one sequential FMA chain in k order.
// At n = 1 with 4-bit rows of whole 128-column chunks, the scaled GEMV of
// qmatmul_gemv_avx512.cpp runs instead of the dot kernel where it applies.
// Kernel functions exceed the style's 60 lines only where the register tiling needs it.
#include "kernels/qgroups_avx512.h"
#include "kernels/qmatmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

constexpr QGemmBlocking kB = kQAvx512Blocking;
constexpr int kMr = static_cast<int>(kB.mr);
constexpr int64_t kNr = kB.nr;
static_assert(kNr == 2 * kLanes, "the register tile is two zmm wide");
static_assert(kB.nc % kB.nr == 0 && kB.kc % kQBlockCols == 0, "whole panels and blocks");
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
    const __m512 k = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    gc.a = _mm512_fmadd_ps(k, _mm512_set1_ps(s), _mm512_set1_ps(neg_zs));  // exact
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

// Rows of W per step for NX rows of x (registers: NW coders, NX * NW accumulators, 2 NX x).
template <int Bits>
constexpr int dot_rows_of_w(int nx) {
  if (Bits == 4) return nx == 1 ? 8 : nx == 2 ? 6 : 4;
  return nx == 1 ? 8 : nx == 2 ? 4 : 3;
}

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

// y[i * ldy + r] = x[i, :] . W^[o + r, :] for i < NX, r < NW.
template <int Bits, int NX, int NW>
void dot_tile(const float* x, const QMatView& w, int64_t o, float* y, int64_t ldy) {
  __m512 acc[NX][NW];
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  // Scales and zero points of kCoderChunk groups of each row at a time, converted as vectors: a
  // scalar conversion per (row, group) would cost a quarter of the work at g = 128.
  alignas(64) float s[NW][kCoderChunk];
  alignas(64) float neg_zs[NW][kCoderChunk];
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += kCoderChunk) {
    const int64_t ng = min64(kCoderChunk, w.n_groups - g0);
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) load_group_params(w, o + r, g0, ng, s[r], neg_zs[r]);
    for (int64_t g = g0; g < g0 + ng; ++g) {
      GroupCoder gc[NW];
#pragma GCC unroll 16
      for (int r = 0; r < NW; ++r) gc[r] = make_coder<Bits>(s[r][g - g0], neg_zs[r][g - g0]);
      const int64_t c1 = min64((g + 1) * w.group, w.cols);
      int64_t c = g * w.group;
      for (; c + kQBlockCols <= c1; c += kQBlockCols) {
        dot_step<Bits, NX, NW, false>(x, w, o, c, gc, acc);
      }
      if (c < c1) dot_step<Bits, NX, NW, true>(x, w, o, c, gc, acc);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) y[i * ldy + o + r] = hsum(acc[i][r]);
  }
}

template <int Bits, int NX>
void dot_rows(const float* x, const QMatView& w, float* y, int64_t ldy, int64_t o0, int64_t o1) {
  constexpr int kNw = dot_rows_of_w<Bits>(NX);
  int64_t o = o0;
  for (; o + kNw <= o1; o += kNw) dot_tile<Bits, NX, kNw>(x, w, o, y, ldy);
  for (; o < o1; ++o) dot_tile<Bits, NX, 1>(x, w, o, y, ldy);
}

// W rows in blocks of kQDotRowBlock that stay in L2 while every group of 4 x rows passes over
// them (one block when n <= 4: W is then streamed exactly once).
template <int Bits>
void dot_block(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b) {
  const int64_t step = b.i1 - b.i0 <= 4 ? b.o1 - b.o0 : kQDotRowBlock;
  for (int64_t o0 = b.o0; o0 < b.o1; o0 += step) {
    const int64_t o1 = min64(o0 + step, b.o1);
    int64_t i = b.i0;
    for (; i + 4 <= b.i1; i += 4) dot_rows<Bits, 4>(x + i * w.cols, w, y + i * ldy, ldy, o0, o1);
    const float* xi = x + i * w.cols;
    float* yi = y + i * ldy;
    switch (b.i1 - i) {
      case 3:
        dot_rows<Bits, 3>(xi, w, yi, ldy, o0, o1);
        break;
      case 2:
        dot_rows<Bits, 2>(xi, w, yi, ldy, o0, o1);
        break;
      case 1:
        dot_rows<Bits, 1>(xi, w, yi, ldy, o0, o1);
        break;
      default:
        break;
    }
  }
}

// ---- packed kernel ----

// In-register transpose of a 16 x 16 block: t[r] lane c -> t[c] lane r. Three rounds of
// shuffles (32-bit pairs, 64-bit pairs, 128-bit lanes), 64 shuffles for 256 floats.
inline void transpose16(__m512 (&t)[16]) {
  __m512 a[16];
#pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_ps(t[2 * i], t[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(t[2 * i], t[2 * i + 1]);
  }
  // b[4i + m], 128-bit lane L: column 4L + m of rows 4i..4i+3.
  __m512 b[16];
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    const __m512d a0 = _mm512_castps_pd(a[4 * i]);
    const __m512d a1 = _mm512_castps_pd(a[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]);
    const __m512d a3 = _mm512_castps_pd(a[4 * i + 3]);
    b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  // Column 4L + m = lane L of b[m], b[4 + m], b[8 + m], b[12 + m].
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    const __m512 u0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44);  // L0 L1 of each
    const __m512 u1 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
    const __m512 v0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);  // L2 L3 of each
    const __m512 v1 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
    t[m] = _mm512_shuffle_f32x4(u0, u1, 0x88);
    t[4 + m] = _mm512_shuffle_f32x4(u0, u1, 0xDD);
    t[8 + m] = _mm512_shuffle_f32x4(v0, v1, 0x88);
    t[12 + m] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
  }
}

// W^ of columns c + 16 half .. + 15 of one row (half of decode_block; tail bytes masked).
template <int Bits>
inline __m512 decode_half(const uint8_t* codes, int64_t c, int half, const GroupCoder& gc,
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
void pack_panel(const QMatView& w, int64_t o, int64_t rows, int64_t pc, int64_t kc, float* panel) {
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
        transpose16(t);
        const int64_t count = min64(kLanes, kc - k0);
        for (int64_t j = 0; j < count; ++j) _mm512_store_ps(panel + (k0 + j) * kNr + r0, t[j]);
      }
    }
  }
}

// Packs x[r, 0:kc] (r < rows, row stride ldx) k-major: xp[k * mr + r]. The register tile then
// broadcasts from one contiguous run instead of mr rows `in` floats apart (same L1 sets).
void pack_x(const float* x, int64_t ldx, int64_t rows, int64_t kc, float* xp) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < kc; ++k) xp[k * kMr + r] = x[r * ldx + k];
  }
}

// y[r, 0:32] (masked by m0, m1) = (accumulate ? y : 0) + sum_k xp[k, r] * panel[k, 0:32], r < M.
template <int M>
void micro_tile(const float* xp, const float* panel, int64_t kc, float* y, int64_t ldy,
                __mmask16 m0, __mmask16 m1, bool accumulate) {
  __m512 acc0[M];
  __m512 acc1[M];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    acc0[r] = accumulate ? _mm512_maskz_loadu_ps(m0, y + r * ldy) : _mm512_setzero_ps();
    acc1[r] = accumulate ? _mm512_maskz_loadu_ps(m1, y + r * ldy + kLanes) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 w0 = _mm512_load_ps(panel + k * kNr);
    const __m512 w1 = _mm512_load_ps(panel + k * kNr + kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const __m512 xb = _mm512_set1_ps(xp[k * kMr + r]);
      acc0[r] = _mm512_fmadd_ps(xb, w0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(xb, w1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    _mm512_mask_storeu_ps(y + r * ldy, m0, acc0[r]);
    _mm512_mask_storeu_ps(y + r * ldy + kLanes, m1, acc1[r]);
  }
}

using MicroTile = void (*)(const float*, const float*, int64_t, float*, int64_t, __mmask16,
                           __mmask16, bool);

template <int Bits>
void packed_block(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b, float* pack) {
  static constexpr MicroTile kTiles[kMr] = {&micro_tile<1>,  &micro_tile<2>,  &micro_tile<3>,
                                            &micro_tile<4>,  &micro_tile<5>,  &micro_tile<6>,
                                            &micro_tile<7>,  &micro_tile<8>,  &micro_tile<9>,
                                            &micro_tile<10>, &micro_tile<11>, &micro_tile<12>};
  static_assert(kMr == 12, "one micro_tile instance per row count");
  const int64_t in = w.cols;
  float* const xpack = pack + kB.nc * kB.kc;  // kc x mr, after the W panels
  for (int64_t jc = b.o0; jc < b.o1; jc += kB.nc) {
    const int64_t ncb = min64(kB.nc, b.o1 - jc);
    for (int64_t pc = 0; pc < in; pc += kB.kc) {
      const int64_t kcb = min64(kB.kc, in - pc);
      for (int64_t p = 0; p * kNr < ncb; ++p) {
        pack_panel<Bits>(w, jc + p * kNr, min64(kNr, ncb - p * kNr), pc, kcb, pack + p * kNr * kcb);
      }
      for (int64_t i = b.i0; i < b.i1; i += kMr) {
        const int64_t rows = min64(kMr, b.i1 - i);
        pack_x(x + i * in + pc, in, rows, kcb, xpack);
        const MicroTile tile = kTiles[rows - 1];
        for (int64_t p = 0; p * kNr < ncb; ++p) {
          const int64_t cols = ncb - p * kNr;
          tile(xpack, pack + p * kNr * kcb, kcb, y + i * ldy + jc + p * kNr, ldy, lane_mask(cols),
               lane_mask(cols - kLanes), pc > 0);
        }
      }
    }
  }
}

}  // namespace

void qmatmul_dot_avx512(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b,
                        bool scaled_gemv) {
  if (scaled_gemv && b.i1 - b.i0 == 1 &&
      qmatmul_scaled_gemv_avx512(x + b.i0 * w.cols, w, y + b.i0 * ldy, b.o0, b.o1)) {
    return;
  }
  if (w.bits == 4) {
    dot_block<4>(x, w, y, ldy, b);
  } else {
    dot_block<8>(x, w, y, ldy, b);
  }
}

void qmatmul_packed_avx512(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b,
                           float* pack) {
  if (w.bits == 4) {
    packed_block<4>(x, w, y, ldy, b, pack);
  } else {
    packed_block<8>(x, w, y, ldy, b, pack);
  }
}

}  // namespace wkvq::detail
