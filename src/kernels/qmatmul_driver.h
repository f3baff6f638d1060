// The quantized-matmul drivers shared by the ISAs: the dot kernel's walk over W rows and x rows,
// the packed kernel's loop nest (kernels/gemm_driver.h) with the ISA's dequantizing packer, and the
// kernel-table entry. The ISA's part K (qmatmul_avx2.cpp, qmatmul_avx512.cpp) provides
//   kBlocking (QGemmBlocking), kDotMaxRows, kScaledGemv and kTableGemv (or nullptr),
//   dot_rows_of_w<Bits>(nx): rows of W per dot tile for nx rows of x,
//   ZeroTerm, kGroupChunk, load_group_params (GroupParams below), Params<NW> = GroupParams<K, NW>,
//   dot_group<Bits, NX, NW>(x, w, o, params, j, c0, c1, acc): acc[i][r] += x[i, c0:c1] .
//     W^[o + r, c0:c1] for group j of the loaded chunk, columns [c0, c1),
//   pack_panel<Bits>(w, o, rows, pc, kc, panel): W^ rows [o, o + rows), columns [pc, pc + kc),
//     into panel[k * nr + r], rows >= `rows` zero.
// Internal linkage: only for *_avx2.cpp / *_avx512.cpp after their simd_*.h (qmatmul_impl.h).
#pragma once

#include <cstdint>

#include "kernels/gemm_driver.h"
#include "kernels/qmatmul_impl.h"

namespace wkvq::detail {
namespace {

// The groups of a W row: load_chunk(g0, count) for groups [g0, g0 + count), `chunk` at a time
// (the ISA converts their scales and zero points together), then group(j, c0, c1) for each group
// g = g0 + j of the chunk, columns [c0, c1).
template <class LoadChunk, class Group>
inline void for_groups(const QMatView& w, int64_t chunk, LoadChunk load_chunk, Group group) {
  for (int64_t g0 = 0; g0 < w.n_groups; g0 += chunk) {
    const int64_t ng = min64(chunk, w.n_groups - g0);
    load_chunk(g0, ng);
    for (int64_t g = g0; g < g0 + ng; ++g) {
      group(g - g0, g * w.group, min64((g + 1) * w.group, w.cols));
    }
  }
}

// step(Count<0>{}, c) for each whole kQBlockCols-column block at c in [c0, c1), then
// step(Count<1>{}, c) for a last partial block (the row ends inside it).
template <class Step>
inline void for_blocks(int64_t c0, int64_t c1, Step step) {
  int64_t c = c0;
  for (; c + kQBlockCols <= c1; c += kQBlockCols) step(Count<0>{}, c);
  if (c < c1) step(Count<1>{}, c);
}

// Scales and zero-point terms (K::ZeroTerm) of K::kGroupChunk groups of NW rows, each row's
// converted together by K::load_group_params.
template <class K, int NW>
struct GroupParams {
  alignas(64) float s[NW][K::kGroupChunk];
  alignas(64) typename K::ZeroTerm z[NW][K::kGroupChunk];
  // Groups [g0, g0 + count) of rows [o, o + NW).
  void load(const QMatView& w, int64_t o, int64_t g0, int64_t count) {
#pragma GCC unroll 16
    for (int r = 0; r < NW; ++r) K::load_group_params(w, o + r, g0, count, s[r], z[r]);
  }
};

template <class S, class K>
struct QMatmulDriver {
  static constexpr int kMr = static_cast<int>(K::kBlocking.mr);
  static_assert(K::kBlocking.kc % kQBlockCols == 0, "whole blocks per packed block");

  // y[i * ldy + o + r] = x[i, :] . W^[o + r, :] for i < NX, r < NW.
  template <int Bits, int NX, int NW>
  static void dot_tile(const float* x, const QMatView& w, int64_t o, float* y, int64_t ldy) {
    typename S::F acc[NX][NW];
    set_all(acc, S::zero());
    GroupParams<K, NW> params;
    for_groups(
        w, K::kGroupChunk, [&](int64_t g0, int64_t ng) { params.load(w, o, g0, ng); },
        [&](int64_t j, int64_t c0, int64_t c1) {
          K::template dot_group<Bits, NX, NW>(x, w, o, params, j, c0, c1, acc);
        });
    store_sums<S>(acc, y + o, ldy);
  }

  // W rows in blocks of kQDotRowBlock that stay in L2 while every group of 4 x rows passes over
  // them (one block when n <= 4: W is then streamed exactly once).
  template <int Bits>
  static void dot_block(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b) {
    const int64_t step = b.i1 - b.i0 <= 4 ? b.o1 - b.o0 : kQDotRowBlock;
    for (int64_t o0 = b.o0; o0 < b.o1; o0 += step) {
      const int64_t o1 = min64(o0 + step, b.o1);
      for_x_row_groups(b.i0, b.i1, [&](auto nx, int64_t i) {
        constexpr int kNx = decltype(nx)::value;
        for_w_row_groups<K::template dot_rows_of_w<Bits>(kNx)>(o0, o1, [&](auto nw, int64_t o) {
          dot_tile<Bits, kNx, decltype(nw)::value>(x + i * w.cols, w, o, y + i * ldy, ldy);
        });
      });
    }
  }

  template <int Bits>
  static void packed_block(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b,
                           float* pack) {
    packed_loop<S, K::kBlocking>(
        w.cols, y, ldy, b, pack,
        [&](int64_t o, int64_t rows, int64_t pc, int64_t kc, float* dst) {
          K::template pack_panel<Bits>(w, o, rows, pc, kc, dst);
        },
        [&](int64_t i, int64_t rows, int64_t pc, int64_t kc, float* dst) {
          pack_x_rows<kMr>(x + i * w.cols + pc, w.cols, rows, kc, dst);
        });
  }

  static void dot(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b) {
    (w.bits == 4 ? dot_block<4> : dot_block<8>)(x, w, y, ldy, b);
  }

  static void packed(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b,
                     float* pack) {
    (w.bits == 4 ? packed_block<4> : packed_block<8>)(x, w, y, ldy, b, pack);
  }

  static constexpr QMatmulOps ops() {
    return QMatmulOps{&dot, &packed, K::kScaledGemv, K::kTableGemv, K::kBlocking, K::kDotMaxRows};
  }
};

}  // namespace
}  // namespace wkvq::detail
