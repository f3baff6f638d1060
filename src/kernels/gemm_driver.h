// The loop nests shared by the f32 and the quantized matrix products and by every ISA, written
// once over the vector traits S (kernels/simd_avx2.h, simd_avx512.h):
//  - the dot-kernel drivers: rows of x in groups of 4 (then the 3, 2 or 1 left), rows of W in
//    groups of NW (then one at a time), each group handed to an ISA's register tile as a
//    compile-time count;
//  - the packed GEMM (BLIS-style) for one thread's block y[i0:i1, o0:o1]:
//      for jc over W rows, nc at a time:
//        for pc over `in`, kc at a time:
//          pack W[jc:jc+nc, pc:pc+kc] into panels of nr rows, k-major: wp[k * nr + r]     (L2)
//          for ir over x rows, mr at a time:
//            pack x[ir:ir+mr, pc:pc+kc] k-major: xp[k * mr + r]                           (L1)
//            for jr over the W panels: mr x nr register tile,
//              acc[r] += broadcast(xp[k, r]) * wp[k, 0:nr]              (2 mr accumulators)
//    Packing x as well keeps the mr broadcasts of a step in one cache line: rows of x `in`
//    floats apart would all fall in the same L1 set. The tile starts from y's current value when
//    pc > 0, so each output is one sequential chain of FMAs in index order of k. Tails: fewer x
//    rows -> smaller tile instance; fewer W rows -> zero-padded panel and masked stores.
//    How W is packed (f32, fp16, dequantized codes) is the caller's.
// Internal linkage, no standard library functions: included only by *_avx2.cpp / *_avx512.cpp
// after their simd_*.h (kernels/qmatmul_impl.h says why).
#pragma once

#include <cstdint>
#include <utility>

namespace wkvq::detail {
namespace {

// A count known at compile time, handed to the generic lambdas of the drivers.
template <int N>
struct Count {
  static constexpr int value = N;
};

// Every a[i][r] = v.
template <class F, int NX, int NW>
inline void set_all(F (&a)[NX][NW], F v) {
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) a[i][r] = v;
  }
}

// y[i * ldy + r] = the sum of acc[i][r]'s lanes: the end of a dot tile.
template <class S, int NX, int NW>
inline void store_sums(const typename S::F (&acc)[NX][NW], float* y, int64_t ldy) {
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) y[i * ldy + r] = S::hsum(acc[i][r]);
  }
}

// tile(Count<NX>{}, i) for consecutive rows [i, i + NX) of x covering [i0, i1): NX = 4, then the
// 3, 2 or 1 rows left.
template <class Tile>
inline void for_x_row_groups(int64_t i0, int64_t i1, Tile tile) {
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) tile(Count<4>{}, i);
  switch (i1 - i) {
    case 3:
      tile(Count<3>{}, i);
      break;
    case 2:
      tile(Count<2>{}, i);
      break;
    case 1:
      tile(Count<1>{}, i);
      break;
    default:
      break;
  }
}

// tile(Count<NW>{}, o) for rows [o, o + NW) of W covering [o0, o1), then tile(Count<1>{}, o) for
// the rows left.
template <int NW, class Tile>
inline void for_w_row_groups(int64_t o0, int64_t o1, Tile tile) {
  int64_t o = o0;
  for (; o + NW <= o1; o += NW) tile(Count<NW>{}, o);
  for (; o < o1; ++o) tile(Count<1>{}, o);
}

// y[r, 0:2L] (masked by m0, m1) = (accumulate ? y : 0) + sum_k xp[k, r] * wp[k, 0:2L], r < M,
// L = S::kLanes; xp has MR floats per k, wp 2L.
template <class S, int MR, int M>
void micro_tile(const float* xp, const float* wp, int64_t kc, float* y, int64_t ldy,
                typename S::Mask m0, typename S::Mask m1, bool accumulate) {
  constexpr int64_t kL = S::kLanes;
  typename S::F acc0[M];
  typename S::F acc1[M];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    acc0[r] = accumulate ? S::maskz_load(m0, y + r * ldy) : S::zero();
    acc1[r] = accumulate ? S::maskz_load(m1, y + r * ldy + kL) : S::zero();
  }
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const typename S::F w0 = S::load(wp + k * 2 * kL);
    const typename S::F w1 = S::load(wp + k * 2 * kL + kL);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const typename S::F xb = S::broadcast(xp + k * MR + r);
      acc0[r] = S::fmadd(xb, w0, acc0[r]);
      acc1[r] = S::fmadd(xb, w1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    S::mask_store(y + r * ldy, m0, acc0[r]);
    S::mask_store(y + r * ldy + kL, m1, acc1[r]);
  }
}

template <class S>
using MicroTile = void (*)(const float*, const float*, int64_t, float*, int64_t, typename S::Mask,
                           typename S::Mask, bool);

// Packs x[r, 0:kc] (r < rows, row stride ldx) k-major: xp[k * mr + r], element by element.
template <int MR>
inline void pack_x_rows(const float* x, int64_t ldx, int64_t rows, int64_t kc, float* xp) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < kc; ++k) xp[k * MR + r] = x[r * ldx + k];
  }
}

// at[m - 1] = micro_tile<S, MR, m>.
template <class S, int MR, int... I>
constexpr auto micro_tiles(std::integer_sequence<int, I...> /*unused*/) {
  struct Table {
    MicroTile<S> at[sizeof...(I)];
  };
  return Table{{&micro_tile<S, MR, I + 1>...}};
}

// The packed loop nest above over one thread's block b (fields i0, i1, o0, o1) with blocking B
// (fields mr, nr = 2 S::kLanes, kc, nc). `pack` holds nc * kc + kc * mr floats, 64-byte aligned.
//   pack_w(o, rows, pc, kc, dst): W rows [o, o + rows) (rows <= nr), columns [pc, pc + kc), into
//     dst[k * nr + r], rows >= `rows` zero;
//   pack_x(i, rows, pc, kc, dst): x rows [i, i + rows) (rows <= mr) into dst[k * mr + r].
template <class S, const auto& B, class Block, class PackW, class PackX>
void packed_loop(int64_t in, float* y, int64_t ldy, Block b, float* pack, PackW pack_w,
                 PackX pack_x) {
  constexpr int kMr = static_cast<int>(B.mr);
  constexpr int64_t kNr = B.nr;
  static_assert(kNr == 2 * S::kLanes, "the register tile is two vectors wide");
  static_assert(B.nc % B.nr == 0, "a packed block holds whole panels");
  static constexpr auto kTiles = micro_tiles<S, kMr>(std::make_integer_sequence<int, kMr>());
  float* const wpack = pack;                // nc x kc
  float* const xpack = pack + B.nc * B.kc;  // kc x mr
  for (int64_t jc = b.o0; jc < b.o1; jc += B.nc) {
    const int64_t ncb = min64(B.nc, b.o1 - jc);
    for (int64_t pc = 0; pc < in; pc += B.kc) {
      const int64_t kcb = min64(B.kc, in - pc);
      for (int64_t p = 0; p * kNr < ncb; ++p) {
        pack_w(jc + p * kNr, min64(kNr, ncb - p * kNr), pc, kcb, wpack + p * kNr * kcb);
      }
      for (int64_t i = b.i0; i < b.i1; i += kMr) {
        const int64_t rows = min64(kMr, b.i1 - i);
        pack_x(i, rows, pc, kcb, xpack);
        const MicroTile<S> tile = kTiles.at[rows - 1];
        for (int64_t p = 0; p * kNr < ncb; ++p) {
          const int64_t cols = ncb - p * kNr;
          tile(xpack, wpack + p * kNr * kcb, kcb, y + i * ldy + jc + p * kNr, ldy, S::mask(cols),
               S::mask(cols - S::kLanes), pc > 0);
        }
      }
    }
  }
}

}  // namespace
}  // namespace wkvq::detail
