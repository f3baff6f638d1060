// The f32 / fp16-weight matmul kernels, written once over the vector traits S (simd_avx2.h,
// simd_avx512.h) and instantiated by matmul_avx2.cpp and matmul_avx512.cpp:
//  - dot kernel (n <= kDotMaxRows, GEMV): NW rows of W and NX rows of x at a time, NX * NW vector
//    accumulators over `in` (masked tail), one horizontal sum per output at the end. W is read
//    exactly once per group of x rows: memory-bound, the point is to keep enough loads in flight
//    (several independent rows streaming) and nothing else in the way.
//  - packed kernel (GEMM): the loop nest of kernels/gemm_driver.h, W packed in panels of
//    2 S::kLanes rows (fp16 converted as it is packed) and x in panels of mr rows, both by
//    kLanes x kLanes register transposes. Measured on Zen 4 with AVX-512: 80-90 % of the FMA peak
//    for n >= 128 (see bench/matmul_bench.cpp).
// Tuning is the ISA's: kBlocking (GemmBlocking) and dot_rows_of_w(nx), the rows of W per step
// for nx rows of x (registers: nx * nw accumulators + nx x vectors + one W vector).
// Kernel functions here are longer than the style's 60 lines only where unrolling needs it.
#pragma once

#include <cstdint>

#include "kernels/gemm_driver.h"
#include "kernels/matmul_impl.h"

namespace wkvq::detail {
namespace {

template <class S, class Tuning>
struct MatmulKernels {
  using F = typename S::F;
  static constexpr int64_t kL = S::kLanes;
  static constexpr const GemmBlocking& kB = Tuning::kBlocking;
  static constexpr int kMr = static_cast<int>(kB.mr);
  static constexpr int64_t kNr = kB.nr;

  // y[i * ldy + r] = x[i, :] . w[r, :] for i < NX, r < NW.
  template <class T, int NX, int NW>
  static void dot_tile(const float* x, int64_t in, const T* w, float* y, int64_t ldy) {
    F acc[NX][NW];
    set_all(acc, S::zero());
    int64_t k = 0;
    for (; k + kL <= in; k += kL) {
      F xv[NX];
#pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) xv[i] = S::loadu(x + i * in + k);
#pragma GCC unroll 16
      for (int r = 0; r < NW; ++r) {
        const F wv = S::loadu(w + r * in + k);
#pragma GCC unroll 16
        for (int i = 0; i < NX; ++i) acc[i][r] = S::fmadd(xv[i], wv, acc[i][r]);
      }
    }
    if (k < in) {
      const typename S::Mask m = S::mask(in - k);
      F xv[NX];
#pragma GCC unroll 16
      for (int i = 0; i < NX; ++i) xv[i] = S::load_first(x + i * in + k, m, in - k);
#pragma GCC unroll 16
      for (int r = 0; r < NW; ++r) {
        const F wv = S::load_first(w + r * in + k, m, in - k);
#pragma GCC unroll 16
        for (int i = 0; i < NX; ++i) acc[i][r] = S::fmadd(xv[i], wv, acc[i][r]);
      }
    }
    store_sums<S>(acc, y, ldy);
  }

  template <class T>
  static void dot_block(const float* x, int64_t in, const T* w, float* y, int64_t ldy,
                        MatmulBlock b) {
    for_x_row_groups(b.i0, b.i1, [&](auto nx, int64_t i) {
      constexpr int kNx = decltype(nx)::value;
      for_w_row_groups<Tuning::dot_rows_of_w(kNx)>(b.o0, b.o1, [&](auto nw, int64_t o) {
        dot_tile<T, kNx, decltype(nw)::value>(x + i * in, in, w + o * in, y + i * ldy + o, ldy);
      });
    });
  }

  // dst[c * ldd + r] = src[r * lds + c] for c < kL, r < rows (<= kL); writes lanes [0, rows).
  template <class T>
  static void transpose_block(const T* src, int64_t lds, int rows, float* dst, int64_t ldd) {
    F t[kL];
#pragma GCC unroll 16
    for (int r = 0; r < kL; ++r) t[r] = r < rows ? S::loadu(src + r * lds) : S::zero();
    S::transpose(t);
    const typename S::Mask m = S::mask(rows);
#pragma GCC unroll 16
    for (int c = 0; c < kL; ++c) S::store_first(dst + c * ldd, m, rows, t[c]);
  }

  // Packs `rows` (<= kNr) rows of W, `kc` columns, into dst[k * kNr + r]; rows >= `rows` are
  // zero. Full panels also prefetch the same columns of the next kNr rows into L2: that many rows
  // read 64 bytes at a time are too many streams for the hardware prefetchers (prefetches never
  // fault).
  template <class T>
  static void pack_w_panel(const T* w, int64_t in, int64_t rows, int64_t kc, float* dst) {
    int64_t k0 = 0;
    if (rows == kNr) {
      for (; k0 + kL <= kc; k0 += kL) {
        if (k0 % 16 == 0) {  // one prefetch per 64-byte line
          const T* next = w + kNr * in + k0;
#pragma GCC unroll 32
          for (int r = 0; r < kNr; ++r) {
            _mm_prefetch(reinterpret_cast<const char*>(next + r * in), _MM_HINT_T1);
          }
        }
        transpose_block(w + k0, in, kL, dst + k0 * kNr, kNr);
        transpose_block(w + kL * in + k0, in, kL, dst + k0 * kNr + kL, kNr);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = k0; k < kc; ++k) dst[k * kNr + r] = to_f32(w[r * in + k]);
    }
    for (int64_t r = rows; r < kNr; ++r) {
      for (int64_t k = k0; k < kc; ++k) dst[k * kNr + r] = 0.0f;
    }
  }

  // Packs `rows` (<= kMr) rows of x, `kc` columns, into dst[k * kMr + r] (rows >= `rows` unused).
  static void pack_x_panel(const float* x, int64_t in, int64_t rows, int64_t kc, float* dst) {
    int64_t k0 = 0;
    for (; k0 + kL <= kc; k0 += kL) {
      transpose_block(x + k0, in, static_cast<int>(rows), dst + k0 * kMr, kMr);
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = k0; k < kc; ++k) dst[k * kMr + r] = x[r * in + k];
    }
  }

  template <class T>
  static void packed_block(const float* x, int64_t in, const T* w, float* y, int64_t ldy,
                           MatmulBlock b, float* pack) {
    packed_loop<S, Tuning::kBlocking>(
        in, y, ldy, b, pack,
        [&](int64_t o, int64_t rows, int64_t pc, int64_t kc, float* dst) {
          pack_w_panel(w + o * in + pc, in, rows, kc, dst);
        },
        [&](int64_t i, int64_t rows, int64_t pc, int64_t kc, float* dst) {
          pack_x_panel(x + i * in + pc, in, rows, kc, dst);
        });
  }

  static constexpr MatmulOps ops() {
    return MatmulOps{&dot_block<float>,
                     &dot_block<uint16_t>,
                     &packed_block<float>,
                     &packed_block<uint16_t>,
                     kB,
                     kDotMaxRows,
                     8};
  }
};

}  // namespace
}  // namespace wkvq::detail
