// AVX2 + FMA f32 matmul kernels (compiled with -mavx2 -mfma; chosen at run time).
//
// Same two kernels as matmul_avx512.cpp (read the loop nest there), sized for 16 ymm registers:
//  - dot kernel: NX rows of x by NW rows of W, NX * NW <= 9 accumulators of 8 lanes, masked tail;
//  - packed kernel: 6 x 16 register tile (12 ymm accumulators), W packed in panels of 16 rows
//    and x in panels of 6 rows, both with 8 x 8 register transposes.
#include <immintrin.h>

#include <utility>

#include "kernels/matmul_impl.h"
#include "kernels/simd_avx2.h"

namespace wkvq::detail {
namespace {

constexpr GemmBlocking kB = kAvx2Blocking;
constexpr int kMr = static_cast<int>(kB.mr);
constexpr int64_t kNr = kB.nr;
static_assert(kNr == 2 * kLanes, "the register tile is two ymm wide");
static_assert(kB.nc % kB.nr == 0, "a packed block holds whole panels");

// ---- dot kernel ----

// Rows of W per step for NX rows of x, keeping NX * NW + NX + 1 <= 16 registers.
constexpr int dot_rows_of_w(int nx) { return nx == 1 ? 8 : nx == 2 ? 4 : nx == 3 ? 3 : 2; }

// y[i * ldy + r] = x[i, :] . w[r, :] for i < NX, r < NW.
template <class T, int NX, int NW>
void dot_tile(const float* x, int64_t in, const T* w, float* y, int64_t ldy) {
  __m256 acc[NX][NW];
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) acc[i][r] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + kLanes <= in; k += kLanes) {
    __m256 xv[NX];
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) xv[i] = _mm256_loadu_ps(x + i * in + k);
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) {
      const __m256 wv = load8(w + r * in + k);
#pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) acc[i][r] = _mm256_fmadd_ps(xv[i], wv, acc[i][r]);
    }
  }
  if (k < in) {
    const __m256i m = lane_mask(in - k);
    __m256 xv[NX];
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) xv[i] = _mm256_maskload_ps(x + i * in + k, m);
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) {
      const __m256 wv = load8_first(w + r * in + k, m, in - k);
#pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) acc[i][r] = _mm256_fmadd_ps(xv[i], wv, acc[i][r]);
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

// dst[c * ldd + r] = src[r * lds + c] for c < 8, r < rows (<= 8): interleave 32-bit pairs, 64-bit
// pairs, then 128-bit halves. Stores write lanes [0, rows) only.
template <class T>
inline void transpose8(const T* src, int64_t lds, int rows, float* dst, int64_t ldd) {
  __m256 a[8];
  __m256 t[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) a[r] = r < rows ? load8(src + r * lds) : _mm256_setzero_ps();
    // t[2h], t[2h+1]: rows 2h, 2h+1 interleaved; half L holds columns 4L, 4L+1 (lo), 4L+2, 4L+3
    // (hi).
#pragma GCC unroll 4
  for (int h = 0; h < 4; ++h) {
    t[2 * h] = _mm256_unpacklo_ps(a[2 * h], a[2 * h + 1]);
    t[2 * h + 1] = _mm256_unpackhi_ps(a[2 * h], a[2 * h + 1]);
  }
  // a[4g + j]: half L holds column 4L + j of rows 4g .. 4g + 3.
#pragma GCC unroll 2
  for (int g = 0; g < 2; ++g) {
    const __m256d t0 = _mm256_castps_pd(t[4 * g]);
    const __m256d t1 = _mm256_castps_pd(t[4 * g + 1]);
    const __m256d t2 = _mm256_castps_pd(t[4 * g + 2]);
    const __m256d t3 = _mm256_castps_pd(t[4 * g + 3]);
    a[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));
    a[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));
    a[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));
    a[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));
  }
  // Column 4L + j = half L of a[j] (rows 0-3) and of a[4 + j] (rows 4-7).
  __m256 col[8];
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    col[j] = _mm256_permute2f128_ps(a[j], a[4 + j], 0x20);
    col[4 + j] = _mm256_permute2f128_ps(a[j], a[4 + j], 0x31);
  }
  if (rows == 8) {  // vmaskmovps stores are slow on some CPUs: only where needed
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) _mm256_storeu_ps(dst + c * ldd, col[c]);
  } else {
    const __m256i m = lane_mask(rows);
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) _mm256_maskstore_ps(dst + c * ldd, m, col[c]);
  }
}

// Packs `rows` (<= 16) rows of W, `kc` columns, into dst[k * 16 + r]; rows >= `rows` are zero.
// Full panels also prefetch the same columns of the next 16 rows into L2 (see matmul_avx512.cpp).
template <class T>
void pack_w_panel(const T* w, int64_t in, int64_t rows, int64_t kc, float* dst) {
  int64_t k0 = 0;
  if (rows == kNr) {
    for (; k0 + kLanes <= kc; k0 += kLanes) {
      if (k0 % 16 == 0) {  // one prefetch per 64-byte line
        const T* next = w + kNr * in + k0;
#pragma GCC unroll 16
        for (int r = 0; r < kNr; ++r) {
          _mm_prefetch(reinterpret_cast<const char*>(next + r * in), _MM_HINT_T1);
        }
      }
      transpose8(w + k0, in, 8, dst + k0 * kNr, kNr);
      transpose8(w + kLanes * in + k0, in, 8, dst + k0 * kNr + kLanes, kNr);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = k0; k < kc; ++k) dst[k * kNr + r] = to_f32(w[r * in + k]);
  }
  for (int64_t r = rows; r < kNr; ++r) {
    for (int64_t k = k0; k < kc; ++k) dst[k * kNr + r] = 0.0f;
  }
}

// Packs `rows` (<= 6) rows of x, `kc` columns, into dst[k * 6 + r] (rows >= `rows` unused).
void pack_x_panel(const float* x, int64_t in, int64_t rows, int64_t kc, float* dst) {
  int64_t k0 = 0;
  for (; k0 + kLanes <= kc; k0 += kLanes) {
    transpose8(x + k0, in, static_cast<int>(rows), dst + k0 * kMr, kMr);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = k0; k < kc; ++k) dst[k * kMr + r] = x[r * in + k];
  }
}

// y[r, 0:16] (masked by m0, m1) = (accumulate ? y : 0) + sum_k xp[k, r] * wp[k, 0:16], r < M.
template <int M>
void micro_tile(const float* xp, const float* wp, int64_t kc, float* y, int64_t ldy, __m256i m0,
                __m256i m1, bool accumulate) {
  __m256 acc0[M];
  __m256 acc1[M];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    acc0[r] = accumulate ? _mm256_maskload_ps(y + r * ldy, m0) : _mm256_setzero_ps();
    acc1[r] = accumulate ? _mm256_maskload_ps(y + r * ldy + kLanes, m1) : _mm256_setzero_ps();
  }
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 w0 = _mm256_load_ps(wp + k * kNr);
    const __m256 w1 = _mm256_load_ps(wp + k * kNr + kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const __m256 xb = _mm256_broadcast_ss(xp + k * kMr + r);
      acc0[r] = _mm256_fmadd_ps(xb, w0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(xb, w1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    _mm256_maskstore_ps(y + r * ldy, m0, acc0[r]);
    _mm256_maskstore_ps(y + r * ldy + kLanes, m1, acc1[r]);
  }
}

using MicroTile = void (*)(const float*, const float*, int64_t, float*, int64_t, __m256i, __m256i,
                           bool);

// kTiles.at[m - 1] = micro_tile<m>.
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

void matmul_dot_avx2(const float* x, int64_t in, const float* w, float* y, int64_t ldy,
                     MatmulBlock b) {
  dot_block(x, in, w, y, ldy, b);
}
void matmul_dot_avx2(const float* x, int64_t in, const uint16_t* w, float* y, int64_t ldy,
                     MatmulBlock b) {
  dot_block(x, in, w, y, ldy, b);
}
void matmul_packed_avx2(const float* x, int64_t in, const float* w, float* y, int64_t ldy,
                        MatmulBlock b, float* pack) {
  packed_block(x, in, w, y, ldy, b, pack);
}
void matmul_packed_avx2(const float* x, int64_t in, const uint16_t* w, float* y, int64_t ldy,
                        MatmulBlock b, float* pack) {
  packed_block(x, in, w, y, ldy, b, pack);
}

}  // namespace wkvq::detail
