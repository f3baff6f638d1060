// Quantized-weight matrix products: y[n, out] = x[n, in] . W^T, with W a QuantizedMatrix
// (formats/weight_quant.h; rows = out, cols = in) and f32 activations x, y (row-major).
//
// W^ is never materialised whole. Small n (decode GEMV, n = 1; up to 64 rows with AVX-512, 24
// with AVX2) runs "dot" kernels that stream W's codes, decode each 32-column block in registers and
// FMA it with up to 4 rows of x (memory-bound at n = 1: W is 8x smaller than f32 at 4 bits); at
// n = 1 the AVX-512 kernels read 4-bit rows one at a time, 128 columns per step, against an x
// rearranged to match, each code either isolated by one AND as a denormal float against an x also
// scaled by powers of two (scaled), or looked up in a per-group table (table)
// (qmatmul_gemv_avx512.cpp).
// Larger n (prefill GEMM) runs packed kernels that dequantize a block of W once into f32 panels in
// per-thread scratch and reuse it across every row of x (compute-bound), or, for a session's
// prompt (GemmUse::Prompt) where the CPU has AVX512_VNNI, or every pass with
// WKVQ_PREFILL_GEMM=int8, the int8-activation GEMM of kernels/qmatmul_q8.h for 4-bit W (x
// quantized once per call, for every matrix of the call).
// Up to the dot kernels' limit, WKVQ_DECODE_GEMV=int8 (kernel table) runs 4-bit W with groups of a
// multiple of 128 columns through the int8-activation GEMV instead (qmatmul_q8_gemv_avx512vnni.cpp,
// qmatmul_q8_avx2.cpp; the int8 GEMM's arithmetic bit for bit, x quantized once per call).
// Work is split over the pool's threads (core/parallel.h) by rows of W, and by rows of x too when W
// has too few rows for every thread (decode: 4 blocks of W rows per thread, taken dynamically).
//
// SIMD kernels (AVX2, AVX-512) cover bits 4 and 8 when every group starts on a 32-column block
// (group % 32 == 0, or one group per row: g = 0 or g >= in); anything else runs the reference.
// Accuracy: every kernel forms each product x_j w^_j from exact parts (W^ = (q - z) s is exact in
// f32; the AVX2 dot kernel sums x_j (q_j - z) per group and multiplies by s once per group), so
// the only difference from the reference is rounding order:
// |y - y_ref| <= ~in * eps * sum_j |x_j w^_j|.
// The scaled 4-bit GEMVs (AVX2, AVX-512) sum q_j x_j and subtract z s sum_j x_j once per group:
// their bound has |x_j| s (q_j + z) in place of |x_j w^_j| (derivations in
// tests/kernel/qmatmul_test.cpp).
// Results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>

#include "formats/weight_quant.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"

namespace wkvq {

// With the process's kernel table (kernels/kernel_table.h); `use` picks the GEMM of more rows than
// the dot kernels take (kernel_table.h, GemmUse: f32 activations unless a Prompt or the
// environment asks for int8).
void qmatmul(const float* x, int64_t n, const QuantizedMatrix& w, float* y,
             GemmUse use = GemmUse::Exact);
// With an explicit implementation (tests, benchmarks). Throws if `isa` is unsupported by the CPU.
// Isa::Reference is the definition: each W row dequantized by dequantize_row_ref, then for each x
// row a sequential f32 sum in column order.
void qmatmul(Isa isa, const float* x, int64_t n, const QuantizedMatrix& w, float* y);
// With an explicit implementation and prefill GEMM (kernels/qmatmul_q8.h: Int8 runs the int8 GEMM
// for 4-bit W it applies to when n > the dot kernels' limit). Throws if the CPU lacks either.
void qmatmul(Isa isa, PrefillGemm gemm, const float* x, int64_t n, const QuantizedMatrix& w,
             float* y);
// With an explicit kernel table (kernel_table(isa, gemm, gemv): tests and benchmarks of the int8
// decode GEMV, WKVQ_DECODE_GEMV).
void qmatmul(const KernelTable& table, const float* x, int64_t n, const QuantizedMatrix& w,
             float* y);

// Several matrices with the same columns, one x: y[k] = x . w[k]^T for every k, each as qmatmul
// computes it (the same kernels, bit for bit), in one parallel loop over the row blocks of all of
// them, so that decode pays one synchronisation for q, k and v (or gate and up) instead of one
// each. Throws when w and y differ in length or the column counts differ.
void qmatmul_many(const float* x, int64_t n, std::span<const QuantizedMatrix* const> w,
                  std::span<float* const> y, GemmUse use = GemmUse::Exact);
void qmatmul_many(Isa isa, const float* x, int64_t n, std::span<const QuantizedMatrix* const> w,
                  std::span<float* const> y);
void qmatmul_many(const KernelTable& table, const float* x, int64_t n,
                  std::span<const QuantizedMatrix* const> w, std::span<float* const> y);

// The 4-bit GEMV (n = 1) has up to three forms that round differently: the scaled GEMV (AVX2:
// qmatmul_gemv_avx2.cpp; AVX-512: qmatmul_gemv_avx512.cpp), the table GEMV (AVX-512) and the dot
// kernel (every ISA). The environment variable WKVQ_GEMV = scaled | table | dot pins the choice;
// unset (or "auto") the scaled one is used when the CPU runs FMAs on denormal operands at full
// speed, otherwise the table one on AVX-512 and the dot kernel on AVX2, which a timing probe
// decides once per process, so two runs of one binary could differ. With any choice the scaled
// GEMV takes the dot kernel for an x it cannot scale (max|x| outside [2^-64, 2^64), NaN/Inf) or in
// DAZ mode, and both chunked forms take it for rows that are not whole chunks (64 columns on
// AVX2, 128 on AVX-512) or groups: functions of the input and shape, not of timing. The reference
// ISA has only its dot loop. The choice is part of the kernel table (kernels/kernel_table.h:
// int4_gemv_choice, // kernel_summary).

// Whether `isa` has a SIMD kernel for this matrix (otherwise qmatmul runs the reference).
bool qmatmul_has_simd(Isa isa, const QuantizedMatrix& w);

}  // namespace wkvq
