// AVX-512 f32 matmul kernels (compiled with -mavx512f/bw/vl/dq; chosen at run time).
//
// Dot kernel (n <= kDotMaxRows, GEMV): NW rows of W and NX rows of x at a time, NX * NW vector
// accumulators over `in` (16 lanes each, masked tail), one horizontal sum per output at the end.
// W is read exactly once per group of x rows: memory-bound, the point is to keep enough loads in
// flight (several independent rows streaming) and nothing else in the way.
//
// Packed kernel (GEMM): BLIS-style loop nest for one thread's block y[i0:i1, o0:o1]
// (nc, kc: kAvx512Blocking):
//   for jc over W rows, nc at a time:
//     for pc over `in`, kc at a time:
//       pack W[jc:jc+nc, pc:pc+kc] into panels of 32 rows, k-major: wp[k * 32 + r]   (L2)
//       for ir over x rows, 12 at a time:
//         pack x[ir:ir+12, pc:pc+kc] k-major: xp[k * 12 + r]                          (L1)
//         for jr over the W panels (each streams from L2):
//           12 x 32 register tile: acc[r] += broadcast(xp[k, r]) * wp[k, 0:32]   (24 zmm)
// Packing transposes 16 x 16 blocks in registers. Packing x as well keeps the 12 broadcasts of a
// step in one cache line: rows of x `in` floats apart would all fall in the same L1 set.
// The tile starts from y's current value when pc > 0, so each output is one sequential chain of
// FMAs in index order of k. Tails: fewer x rows -> smaller template instance; fewer W rows ->
// zero-padded panel and masked stores; kc not a multiple of 16 -> scalar packing of the rest.
// Measured on Zen 4: 80-90 % of the FMA peak for n >= 128 (see bench/matmul_bench.cpp).
//
// Kernel functions here are longer than the style's 60 lines only where unrolling needs it.

#include <utility>

#include "kernels/matmul_impl.h"
#include "kernels/simd_avx512.h"

namespace wkvq::detail {
namespace {

constexpr GemmBlocking kB = kAvx512Blocking;
constexpr int kMr = static_cast<int>(kB.mr);
constexpr int64_t kNr = kB.nr;
static_assert(kNr == 2 * kLanes, "the register tile is two zmm wide");
static_assert(kB.nc % kB.nr == 0, "a packed block holds whole panels");

// ---- dot kernel ----

// Rows of W per step for NX rows of x: NX * NW accumulators, at least 8 independent chains.
constexpr int dot_rows_of_w(int nx) { return nx == 1 ? 8 : 4; }

// y[i * ldy + r] = x[i, :] . w[r, :] for i < NX, r < NW.
template <class T, int NX, int NW>
void dot_tile(const float* x, int64_t in, const T* w, float* y, int64_t ldy) {
  __m512 acc[NX][NW];
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  int64_t k = 0;
  for (; k + kLanes <= in; k += kLanes) {
    __m512 xv[NX];
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) xv[i] = _mm512_loadu_ps(x + i * in + k);
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) {
      const __m512 wv = load16(w + r * in + k);
#pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) acc[i][r] = _mm512_fmadd_ps(xv[i], wv, acc[i][r]);
    }
  }
  if (k < in) {
    const __mmask16 m = lane_mask(in - k);
    __m512 xv[NX];
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) xv[i] = _mm512_maskz_loadu_ps(m, x + i * in + k);
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) {
      const __m512 wv = maskz_load16(m, w + r * in + k);
#pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) acc[i][r] = _mm512_fmadd_ps(xv[i], wv, acc[i][r]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) y[i * ldy + r] = hsum(acc[i][r]);
  }
}

// All W rows [o0, o1) against NX rows of x.
template <class T, int NX>
void dot_rows(const float* x, int64_t in, const T* w, float* y, int64_t ldy, int64_t o0,
              int64_t o1) {
  constexpr int kNw = dot_rows_of_w(NX);
  int64_t o = o0;
  for (; o + kNw <= o1; o += kNw) dot_tile<T, NX, kNw>(x, in, w + o * in, y + o, ldy);
  for (; o < o1; ++o) dot_tile<T, NX, 1>(x, in, w + o * in, y + o, ldy);
}

// ---- packed kernel ----

// dst[c * ldd + r] = src[r * lds + c] for c < 16, r < rows (<= 16): three rounds of interleaving
// (32-bit pairs, 64-bit pairs, 128-bit lanes twice). Stores write lanes [0, rows) only.
template <class T>
inline void transpose16(const T* src, int64_t lds, int rows, float* dst, int64_t ldd) {
  __m512 a[16];
  __m512 t[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) a[r] = r < rows ? load16(src + r * lds) : _mm512_setzero_ps();
  const __mmask16 m = lane_mask(rows);
  // t[2h], t[2h+1]: rows 2h, 2h+1 interleaved; lane L holds columns 4L, 4L+1 (lo), 4L+2, 4L+3 (hi).
#pragma GCC unroll 8
  for (int h = 0; h < 8; ++h) {
    t[2 * h] = _mm512_unpacklo_ps(a[2 * h], a[2 * h + 1]);
    t[2 * h + 1] = _mm512_unpackhi_ps(a[2 * h], a[2 * h + 1]);
  }
  // a[4g + j]: lane L holds column 4L + j of rows 4g .. 4g + 3.
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    const __m512d t0 = _mm512_castps_pd(t[4 * g]);
    const __m512d t1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]);
    const __m512d t3 = _mm512_castps_pd(t[4 * g + 3]);
    a[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    a[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    a[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    a[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  // Column 4L + j = lane L of a[j], a[4 + j], a[8 + j], a[12 + j]: a 4x4 transpose of lanes.
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(a[j], a[4 + j], 0x88);  // lanes 0, 2 of each
    const __m512 v1 = _mm512_shuffle_f32x4(a[j], a[4 + j], 0xDD);  // lanes 1, 3 of each
    const __m512 v2 = _mm512_shuffle_f32x4(a[8 + j], a[12 + j], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(a[8 + j], a[12 + j], 0xDD);
    _mm512_mask_storeu_ps(dst + (0 + j) * ldd, m, _mm512_shuffle_f32x4(v0, v2, 0x88));
    _mm512_mask_storeu_ps(dst + (4 + j) * ldd, m, _mm512_shuffle_f32x4(v1, v3, 0x88));
    _mm512_mask_storeu_ps(dst + (8 + j) * ldd, m, _mm512_shuffle_f32x4(v0, v2, 0xDD));
    _mm512_mask_storeu_ps(dst + (12 + j) * ldd, m, _mm512_shuffle_f32x4(v1, v3, 0xDD));
  }
}

// Packs `rows` (<= 32) rows of W, `kc` columns, into dst[k * 32 + r]; rows >= `rows` are zero.
// Full panels also prefetch the same columns of the next 32 rows into L2: 32 rows read 64 bytes
// at a time are too many streams for the hardware prefetchers (prefetches never fault).
template <class T>
void pack_w_panel(const T* w, int64_t in, int64_t rows, int64_t kc, float* dst) {
  int64_t k0 = 0;
  if (rows == kNr) {
    for (; k0 + kLanes <= kc; k0 += kLanes) {
      const T* next = w + kNr * in + k0;
#pragma GCC unroll 32
      for (int r = 0; r < kNr; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(next + r * in), _MM_HINT_T1);
      transpose16(w + k0, in, 16, dst + k0 * kNr, kNr);
      transpose16(w + kLanes * in + k0, in, 16, dst + k0 * kNr + kLanes, kNr);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = k0; k < kc; ++k) dst[k * kNr + r] = to_f32(w[r * in + k]);
  }
  for (int64_t r = rows; r < kNr; ++r) {
    for (int64_t k = k0; k < kc; ++k) dst[k * kNr + r] = 0.0f;
  }
}

// Packs `rows` (<= 12) rows of x, `kc` columns, into dst[k * 12 + r] (rows >= `rows` unused).
void pack_x_panel(const float* x, int64_t in, int64_t rows, int64_t kc, float* dst) {
  int64_t k0 = 0;
  for (; k0 + kLanes <= kc; k0 += kLanes) {
    transpose16(x + k0, in, static_cast<int>(rows), dst + k0 * kMr, kMr);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = k0; k < kc; ++k) dst[k * kMr + r] = x[r * in + k];
  }
}

// y[r, 0:32] (masked by m0, m1) = (accumulate ? y : 0) + sum_k xp[k, r] * wp[k, 0:32], r < M.
template <int M>
void micro_tile(const float* xp, const float* wp, int64_t kc, float* y, int64_t ldy, __mmask16 m0,
                __mmask16 m1, bool accumulate) {
  __m512 acc0[M];
  __m512 acc1[M];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    acc0[r] = accumulate ? _mm512_maskz_loadu_ps(m0, y + r * ldy) : _mm512_setzero_ps();
    acc1[r] = accumulate ? _mm512_maskz_loadu_ps(m1, y + r * ldy + kLanes) : _mm512_setzero_ps();
  }
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 w0 = _mm512_load_ps(wp + k * kNr);
    const __m512 w1 = _mm512_load_ps(wp + k * kNr + kLanes);
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

// kTiles[m - 1] = micro_tile<m>.
template <int... I>
constexpr auto tile_table(std::integer_sequence<int, I...> /*unused*/) {
  struct Table {
    MicroTile at[sizeof...(I)];
  };
  return Table{{&micro_tile<I + 1>...}};
}

template <class T>
void dot_block(const float* x, int64_t in, const T* w, float* y, int64_t ldy, MatmulBlock b) {
  int64_t i = b.i0;
  for (; i + 4 <= b.i1; i += 4) dot_rows<T, 4>(x + i * in, in, w, y + i * ldy, ldy, b.o0, b.o1);
  const float* xi = x + i * in;
  float* yi = y + i * ldy;
  switch (b.i1 - i) {
    case 3:
      dot_rows<T, 3>(xi, in, w, yi, ldy, b.o0, b.o1);
      break;
    case 2:
      dot_rows<T, 2>(xi, in, w, yi, ldy, b.o0, b.o1);
      break;
    case 1:
      dot_rows<T, 1>(xi, in, w, yi, ldy, b.o0, b.o1);
      break;
    default:
      break;
  }
}

template <class T>
void packed_block(const float* x, int64_t in, const T* w, float* y, int64_t ldy, MatmulBlock b,
                  float* pack) {
  static constexpr auto kTiles = tile_table(std::make_integer_sequence<int, kMr>());
  float* const wpack = pack;                  // nc x kc
  float* const xpack = pack + kB.nc * kB.kc;  // mr x kc
  for (int64_t jc = b.o0; jc < b.o1; jc += kB.nc) {
    const int64_t ncb = min64(kB.nc, b.o1 - jc);
    for (int64_t pc = 0; pc < in; pc += kB.kc) {
      const int64_t kcb = min64(kB.kc, in - pc);
      for (int64_t p = 0; p * kNr < ncb; ++p) {
        pack_w_panel(w + (jc + p * kNr) * in + pc, in, min64(kNr, ncb - p * kNr), kcb,
                     wpack + p * kNr * kcb);
      }
      for (int64_t i = b.i0; i < b.i1; i += kMr) {
        const int64_t rows = min64(kMr, b.i1 - i);
        pack_x_panel(x + i * in + pc, in, rows, kcb, xpack);
        const MicroTile tile = kTiles.at[rows - 1];
        for (int64_t p = 0; p * kNr < ncb; ++p) {
          const int64_t cols = ncb - p * kNr;
          tile(xpack, wpack + p * kNr * kcb, kcb, y + i * ldy + jc + p * kNr, ldy, lane_mask(cols),
               lane_mask(cols - kLanes), pc > 0);
        }
      }
    }
  }
}

}  // namespace

void matmul_dot_avx512(const float* x, int64_t in, const float* w, float* y, int64_t ldy,
                       MatmulBlock b) {
  dot_block(x, in, w, y, ldy, b);
}
void matmul_dot_avx512(const float* x, int64_t in, const uint16_t* w, float* y, int64_t ldy,
                       MatmulBlock b) {
  dot_block(x, in, w, y, ldy, b);
}
void matmul_packed_avx512(const float* x, int64_t in, const float* w, float* y, int64_t ldy,
                          MatmulBlock b, float* pack) {
  packed_block(x, in, w, y, ldy, b, pack);
}
void matmul_packed_avx512(const float* x, int64_t in, const uint16_t* w, float* y, int64_t ldy,
                          MatmulBlock b, float* pack) {
  packed_block(x, in, w, y, ldy, b, pack);
}

}  // namespace wkvq::detail
