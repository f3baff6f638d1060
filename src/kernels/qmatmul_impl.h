// Internal to qmatmul: the per-ISA kernels. kernels/qmatmul.cpp validates, splits the work over
// threads and owns the scratch; qmatmul_avx2.cpp / qmatmul_avx512.cpp compute one thread's block.
// The SIMD files use nothing from the standard library or from other headers' inline functions
// (an inline function instantiated with ISA flags could be picked by the linker for baseline
// code), hence the plain view below instead of QuantizedMatrix; their shared helpers
// (kernels/simd_avx2.h, simd_avx512.h) have internal linkage.
#pragma once

#include <cstdint>

namespace wkvq::detail {

// The fields of a QuantizedMatrix the kernels read (layouts in formats/weight_quant.h).
struct QMatView {
  const uint8_t* codes;    // (rows, row_bytes)
  const uint16_t* scales;  // (rows, n_groups) fp16
  const uint8_t* zeros;    // (rows, n_groups)
  int64_t rows;            // out
  int64_t cols;            // in
  int64_t group;           // multiple of 32, or >= cols
  int64_t n_groups;
  int64_t row_bytes;
  int bits;  // 4 or 8
  // The tile layout (QuantizedMatrix::tile_scales, tile_zeros, tile_codes), or null.
  const uint16_t* tile_scales;
  const uint8_t* tile_zeros;
  const uint8_t* tile_codes;
};

// One thread's share: rows [i0, i1) of x and y, rows [o0, o1) of W (columns of y, stride ldy).
struct QBlock {
  int64_t i0, i1;
  int64_t o0, o1;
};

// Columns per decoded block (one Q4Block); groups start on these.
inline constexpr int64_t kQBlockCols = 32;

// Packed GEMM blocking: register tile mr x nr, W dequantized nc rows by kc columns at a time into
// panels of nr rows, k-major (panel[k * nr + r]). kc is a multiple of kQBlockCols.
struct QGemmBlocking {
  int64_t mr, nr, kc, nc;
};
inline constexpr QGemmBlocking kQAvx512Blocking{12, 32, 256, 256};
inline constexpr QGemmBlocking kQAvx2Blocking{6, 16, 256, 256};
// Scratch floats of one thread's packed kernel: the W panels (nc x kc), then x packed (kc x mr).
constexpr int64_t qpack_floats(const QGemmBlocking& b) { return b.nc * b.kc + b.kc * b.mr; }

// Up to this many rows of x the dot kernels run (W decoded in registers for every 4 rows of x),
// above it the packed kernels (W dequantized once into panels). Measured crossover on Zen 4
// (1 thread, TinyLlama shapes): the AVX-512 dot kernel is as fast as the packed one up to
// n = 128 (its 16-entry table decode costs little next to the FMAs); the AVX2 one, which
// converts every code, loses above n ~ 24.
inline constexpr int64_t kQDotMaxRowsAvx512 = 64;
inline constexpr int64_t kQDotMaxRowsAvx2 = 24;
// Rows of W per thread chunk in the dot kernels (a multiple of every kernel's rows per step).
inline constexpr int64_t kQDotRowAlign = 8;
// Rows of W per cache block of the dot kernels when n > 4: 96 KB of 4-bit codes at in = 2048, a
// multiple of every kernel's rows per step (8, 6, 4, 3, 2).
inline constexpr int64_t kQDotRowBlock = 96;

// One ISA's quantized-weight kernels (an entry of the kernel table, kernels/kernel_table.h), for
// bits 4 and 8 with groups on kQBlockCols-column blocks (qmatmul_has_simd):
//   dot: W decoded in registers for every 4 rows of x; for n <= dot_max_rows.
//   packed: W dequantized once into panels; `pack` holds qpack_floats(blocking) floats,
//     64-byte aligned.
//   scaled_gemv: the scaled 4-bit GEMV (qmatmul_gemv_avx2.cpp, qmatmul_gemv_avx512.cpp) for
//     y[o0:o1] of one row of x,
//     when it applies to this W, x and FP mode; false (nothing written) when it does not. Null
//     where the ISA has none.
//   table_gemv: the table 4-bit GEMV (qmatmul_gemv_avx512.cpp), likewise: false when W's shape
//     does not fit.
struct QMatmulOps {
  void (*dot)(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b);
  void (*packed)(const float* x, const QMatView& w, float* y, int64_t ldy, QBlock b, float* pack);
  bool (*scaled_gemv)(const float* x, const QMatView& w, float* y, int64_t o0, int64_t o1);
  bool (*table_gemv)(const float* x, const QMatView& w, float* y, int64_t o0, int64_t o1);
  QGemmBlocking blocking;
  int64_t dot_max_rows;
};

// ---- int8-activation GEMM (kernels/qmatmul_q8.h) ----

// Activations quantized to int8 in blocks of kQ8Block columns (the last one shorter): q (rows,
// stride bytes; zero past the row's end up to a multiple of kQBlockCols), and per (row, block) d
// and dsum = d * sum(q) (rows, blocks).
inline constexpr int64_t kQ8Block = 128;
struct Q8View {
  const int8_t* q;
  const float* d;
  const float* dsum;
  int64_t stride;  // bytes per row of q
  int64_t blocks;  // per row
};

// Blocking of the int8 GEMM: mr x nr register tile of int32 accumulators, W's codes unpacked to
// one byte each into panels of nr rows, 4 columns per 32-bit lane: panel[(k / 4) * nr * 4 +
// r * 4 + k % 4]; kc a multiple of kQ8Block. Scratch bytes: the panels (nc * kc), each panel's
// group scales and z * s per block of kc (2 * nr floats per block), x packed (kc * mr).
inline constexpr QGemmBlocking kQ8Avx512Blocking{12, 32, 256, 256};
constexpr int64_t qgemm_q8_pack_bytes(const QGemmBlocking& b) {
  return b.nc * b.kc + (b.nc / b.nr) * (b.kc / kQ8Block) * 2 * b.nr * 4 + b.kc * b.mr;
}

// The int8 GEMV (n <= the dot kernels' limit; qmatmul_q8_gemv_avx512vnni.cpp) takes x's codes in
// the GEMV layout: per x block kQ8GemvBlockBytes, first the codes of the columns in the low
// nibbles of the block's 64 W code bytes (byte 16 j + k: column 32 j + k), then those of the high
// nibbles (byte 64 + 16 j + k: column 32 j + 16 + k); zeros past the row's end; stride per row
// blocks * kQ8GemvBlockBytes.
inline constexpr int64_t kQ8GemvBlockBytes = 128;
// W rows per tile of the GEMV (the thread split's unit of W rows).
inline constexpr int64_t kQ8GemvRows = 16;
// Scratch bytes of the GEMV: per group 2 x 16 floats (s, z s of a tile), then 16 rows of block
// sums, 16 int32 per step of 4 blocks (the most steps: 4 rows of x per pass), 64-byte aligned.
constexpr int64_t qgemv_q8_params_bytes(int64_t n_groups) { return n_groups * 2 * 16 * 4; }
// Then, for 8-bit W (QGemmQ8Ops::gemv8), per row of x its codes in column order (blocks *
// kQ8GemvBlockBytes bytes), then per row 128 times its block sums (blocks rounded up to 8 int32).
constexpr int64_t qgemv_q8_scratch_bytes(int64_t n_groups, int64_t blocks, int64_t x_rows) {
  return qgemv_q8_params_bytes(n_groups) + kQ8GemvRows * ((blocks + 3) / 4) * 16 * 4 +
         x_rows * (blocks * kQ8GemvBlockBytes + (blocks + 7) / 8 * 8 * 4);
}

// The int8 GEMM kernels of one ISA:
//   quantize: rows [i0, i1) of x (cols columns) into x8 (writable fields of Q8View).
//   packed: one thread's block of y = x8 . W^T for 4-bit W with groups that are multiples of
//     kQ8Block (or one group per row); `pack` holds qgemm_q8_pack_bytes(blocking) bytes, 64-byte
//     aligned.
//   quantize_gemv: as quantize, the codes in the GEMV layout (stride blocks * kQ8GemvBlockBytes).
//   gemv: as packed, for x8 in the GEMV layout and any n (meant for n <= the dot kernels' limit:
//     W read once per call, 4 rows of x per pass over 16 rows of W); bit for bit packed's result.
//     `scratch` holds qgemv_q8_scratch_bytes(w.n_groups, x8.blocks) bytes, 64-byte aligned;
//     b.o0 a multiple of kQ8GemvRows.
//   gemm_takes_gemv_layout: `packed` reads x in the GEMV layout (then `quantize` writes it).
//   pack_bytes: the bytes `pack` must hold for x blocks and W groups.
//   gemv8: as gemv, for 8-bit W (the same arithmetic, qmatmul_q8.h): qgemv_q8_avx2_8bit, or
//     qgemv_q8_avx512vnni_8bit in the VNNI table; the same numbers bit for bit (the same per-lane
//     float operations in the same order on exact integer sums), wherever the int8 GEMV runs.
struct QGemmQ8Ops {
  void (*quantize)(const float* x, int64_t cols, int64_t i0, int64_t i1, int8_t* q, float* d,
                   float* dsum, int64_t stride, int64_t blocks);
  void (*packed)(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                 uint8_t* pack);
  QGemmBlocking blocking;
  void (*quantize_gemv)(const float* x, int64_t cols, int64_t i0, int64_t i1, int8_t* q, float* d,
                        float* dsum, int64_t stride, int64_t blocks);
  void (*gemv)(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
               uint8_t* scratch);
  bool gemm_takes_gemv_layout;
  int64_t (*pack_bytes)(int64_t blocks, int64_t n_groups);
  void (*gemv8)(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                uint8_t* scratch);
};
// Defined in qmatmul_q8_avx2.cpp (AVX2 flags): both entry points take x in the GEMV layout and
// run the same tiles (the GEMM in chunks of 64 W rows); `blocking` is {1, 64, ...}.
const QGemmQ8Ops& qgemm_q8_ops_avx2();
// The AVX2 int8 GEMV for 8-bit W (qmatmul_q8_avx2.cpp), QGemmQ8Ops::gemv8 of the AVX2 table.
void qgemv_q8_avx2_8bit(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                        uint8_t* scratch);
// Defined in qmatmul_q8_gemv_avx512vnni.cpp (AVX-512 flags plus AVX512_VNNI): the 4-bit GEMV (W
// without the tile layout: the AVX2 one) and the 8-bit one (QGemmQ8Ops::gemv8 of the VNNI table);
// the AVX2 ones' numbers, bit for bit.
void qgemv_q8_avx512vnni_8bit(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                              uint8_t* scratch);
void qgemv_q8_avx512vnni(const Q8View& x8, const QMatView& w, float* y, int64_t ldy, QBlock b,
                         uint8_t* scratch);
// Defined in qmatmul_q8_tiles_avx512vnni.cpp (AVX-512 flags plus AVX512_VNNI): those two GEMVs'
// path for W in the tile layout (w.tile_codes and w.tile_scales set; 4 or 8 bits): xq, xstride
// the x codes of x8's row b.i0 and the stride between rows, in the GEMV layout at 4 bits and in
// column order at 8.
void qgemv_q8_tiles_avx512vnni(const int8_t* xq, int64_t xstride, const Q8View& x8,
                               const QMatView& w, float* y, int64_t ldy, QBlock b);
// Defined in qmatmul_q8_avx512vnni.cpp (AVX-512 flags plus AVX512_VNNI).
const QGemmQ8Ops& qgemm_q8_ops_avx512vnni();
// The AMX int8 GEMM (qmatmul_q8_amx.cpp; AVX-512 plus AMX flags): the VNNI ops with `packed` on
// AMX tiles, bit for bit the VNNI GEMM's result; only where amx_int8_usable(). Its scratch: per
// block and W tile two B tiles (2 KB), per group and W tile 32 floats, for two W tiles; the four C
// tiles and their float sums (8 KB), 16 padded rows of x.
const QGemmQ8Ops& qgemm_q8_ops_amx();
constexpr int64_t qgemm_q8_amx_pack_bytes(int64_t blocks, int64_t n_groups) {
  return 2 * (blocks * 2048 + n_groups * 128) + 8192 + 16 * blocks * kQ8GemvBlockBytes;
}

// Defined in qmatmul_avx2.cpp / qmatmul_avx512.cpp (compiled with those ISA flags).
const QMatmulOps& qmatmul_ops_avx2();
const QMatmulOps& qmatmul_ops_avx512();

// Whether FMAs with a denormal operand run about as fast as with normal ones on this CPU (timed
// once per process; qmatmul_gemv_avx2.cpp): whether auto picks the scaled GEMVs.
bool denormal_operands_are_fast();
bool qmatmul_scaled_gemv_avx2(const float* x, const QMatView& w, float* y, int64_t o0, int64_t o1);
bool qmatmul_scaled_gemv_avx512(const float* x, const QMatView& w, float* y, int64_t o0,
                                int64_t o1);
bool qmatmul_table_gemv_avx512(const float* x, const QMatView& w, float* y, int64_t o0, int64_t o1);

}  // namespace wkvq::detail
