// Dense f32 matrix products, the hot path of the FP32 model.
//
//   y[n, out] = x[n, in] . W[out, in]^T      (W row-major, rows of length `in`, like nn.Linear)
//
// n = 1 is a GEMV (decode, memory-bound), n > 1 a GEMM (prefill). matmul_f32 runs the kernels of
// the process's kernel table (kernels/kernel_table.h: AVX-512, AVX2 or the reference, chosen once)
// and splits the work over the thread pool (core/parallel.h). The reference is the definition; SIMD
// versions are tested against it.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace wkvq {

// y (n, out) must not overlap x (n, in) or w (out, in); any alignment, any sizes >= 0 (in = 0
// gives zeros). Results do not depend on the number of threads.
void matmul_f32(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y);
// Same with the kernels of an explicit ISA (tests, benchmarks). Throws if `isa` is unsupported.
void matmul_f32(Isa isa, const float* x, int64_t n, int64_t in, const float* w, int64_t out,
                float* y);

// The same product with W stored in fp16 (IEEE half bits, row-major): exactly matmul_f32 of the
// f32 values of W (the conversion is exact), half the bytes to read. The kernels convert W as they
// load it (GEMV) or pack it (GEMM).
void matmul_f16(const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out, float* y);
void matmul_f16(Isa isa, const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out,
                float* y);

}  // namespace wkvq
