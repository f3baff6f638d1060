// Dense f32 matrix products, the hot path of the FP32 model.
//
//   y[n, out] = x[n, in] . W[out, in]^T      (W row-major, rows of length `in`, like nn.Linear)
//
// n = 1 is a GEMV (decode, memory-bound), n > 1 a GEMM (prefill). matmul_f32 picks the widest
// implementation the CPU supports (AVX-512, AVX2, reference) at run time and splits the work over
// the OpenMP threads. The reference is the definition; SIMD versions are tested against it.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string_view>

namespace wkvq {

enum class Isa { Reference, Avx2, Avx512 };

// Best ISA supported by this CPU (and allowed by the environment variable WKVQ_ISA =
// reference|avx2|avx512, for testing and benchmarking). WKVQ_ISA is read once, on the first call;
// an unknown name, or an ISA this CPU lacks, throws wkvq::Error.
Isa best_isa();
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);
// "reference" | "avx2" | "avx512" (the names isa_name gives); throws wkvq::Error otherwise.
Isa parse_isa(std::string_view name);
// Writes isa_name(isa).
std::ostream& operator<<(std::ostream& os, Isa isa);

// y (n, out) must not overlap x (n, in) or w (out, in); any alignment, any sizes >= 0 (in = 0
// gives zeros). Results do not depend on the number of threads.
void matmul_f32(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y);
// Same with an explicit implementation (tests, benchmarks). Throws if `isa` is unsupported.
void matmul_f32(Isa isa, const float* x, int64_t n, int64_t in, const float* w, int64_t out,
                float* y);

// The same product with W stored in fp16 (IEEE half bits, row-major): exactly matmul_f32 of the
// f32 values of W (the conversion is exact), half the bytes to read. The kernels convert W as they
// load it (GEMV) or pack it (GEMM).
void matmul_f16(const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out, float* y);
void matmul_f16(Isa isa, const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out,
                float* y);

}  // namespace wkvq
