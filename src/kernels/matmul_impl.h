// Internal to the f32 matmul: the per-ISA kernels behind matmul_f32.
//
// kernels/matmul.cpp owns the reference, the dispatch, the split of the work over threads and the
// scratch buffers; matmul_kernels.h computes one thread's block, instantiated per ISA by
// matmul_avx2.cpp / matmul_avx512.cpp. The SIMD files are compiled with ISA flags, so they use
// nothing from the standard library (an inline function instantiated there could be picked by the
// linker for baseline code too).
#pragma once

#include <cstdint>

namespace wkvq::detail {

// One thread's share of y[n, out] = x[n, in] . W[out, in]^T: rows [i0, i1) of x and y, rows
// [o0, o1) of W (columns of y). x has row stride `in`, W row stride `in`, y row stride `ldy`.
struct MatmulBlock {
  int64_t i0, i1;
  int64_t o0, o1;
};

// Register tile and cache blocks of a packed GEMM kernel (the loop nest is described in
// kernels/gemm_driver.h). W is packed `nc` rows by `kc` columns at a time, into panels of `nr`
// rows.
struct GemmBlocking {
  int64_t mr;  // rows of x in the register tile
  int64_t nr;  // rows of W in the register tile (width of a packed panel)
  int64_t kc;  // columns of `in` per packed block (a register tile's x rows stay in L1)
  int64_t nc;  // rows of W per packed block (the packed block stays in L2)
};

// Floats of scratch one thread needs for the packed kernel: a packed block of W and one packed
// register tile's worth of x (64-byte aligned by the caller).
// Rounded up to whole cache lines, so that consecutive threads' scratch stays 64-byte aligned.
constexpr int64_t pack_floats(const GemmBlocking& b) {
  return ((b.nc + b.mr) * b.kc + 15) / 16 * 16;
}

inline constexpr GemmBlocking kAvx512Blocking{12, 32, 384, 512};
inline constexpr GemmBlocking kAvx2Blocking{6, 16, 384, 512};

// Up to this many rows of x, the "dot" kernels (each y element a dot product of a row of x and a
// row of W, W streamed once) beat packing W; above it the packed GEMM kernels take over.
inline constexpr int64_t kDotMaxRows = 8;

// One ISA's f32 / fp16-weight kernels (an entry of the kernel table, kernels/kernel_table.h).
//   dot: each y element a dot product of a row of x and a row of W, W streamed once per 4 rows of
//     x; for n <= dot_max_rows. W is f32 or fp16 (uint16_t bits, converted as it is loaded).
//   packed: W packed (and converted) into panels; `pack` holds pack_floats(blocking) floats,
//     64-byte aligned. Null for the reference.
// dot blocks are split over threads in rows of W that are multiples of dot_row_align.
struct MatmulOps {
  void (*dot_f32)(const float* x, int64_t in, const float* w, float* y, int64_t ldy, MatmulBlock b);
  void (*dot_f16)(const float* x, int64_t in, const uint16_t* w, float* y, int64_t ldy,
                  MatmulBlock b);
  void (*packed_f32)(const float* x, int64_t in, const float* w, float* y, int64_t ldy,
                     MatmulBlock b, float* pack);
  void (*packed_f16)(const float* x, int64_t in, const uint16_t* w, float* y, int64_t ldy,
                     MatmulBlock b, float* pack);
  GemmBlocking blocking;
  int64_t dot_max_rows;
  int64_t dot_row_align;
};

// Defined in matmul_avx2.cpp / matmul_avx512.cpp (compiled with those ISA flags).
const MatmulOps& matmul_ops_avx2();
const MatmulOps& matmul_ops_avx512();

}  // namespace wkvq::detail
