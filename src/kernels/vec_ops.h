// Small f32 vector kernels of the decoder block: norms, activations, softmax, dot and axpy.
// Plain loops for now (the compiler vectorises what it may without reassociating); each one's
// rounding is documented so tests can bound it.
#pragma once

#include <cstdint>

namespace wkvq {

// out[i] = x[i] * weight[i] / sqrt(mean(x^2) + eps). The sum of squares is accumulated in double
// and the scale 1/sqrt(...) rounded once to float; out may alias x.
void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps);

// x = softmax(x): e[i] = exp_f32(x[i] - max(x)) (kernels/exp_f32.h, the float difference rounded
// first), then x[i] = e[i] * (float)(1 / sum), the sum of the e[i] in double in a fixed order that
// vector code repeats: kSoftmaxParts partial sums (part l takes i = l mod kSoftmaxParts, in
// order), then added by halves (part l += part l + 8, then l + 4, l + 2, l + 1). Entries must be
// finite or -inf (masked out: they become 0), at least one finite; n = 0 does nothing.
inline constexpr int kSoftmaxParts = 16;
void softmax_inplace(float* x, int64_t n);

// gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)) (SwiGLU).
void silu_mul(float* gate, const float* up, int64_t n);

// y[i] += x[i].
void add_inplace(float* y, const float* x, int64_t n);

// sum_i a[i] * b[i] in float, as 8 interleaved partial sums (lane l takes i = l mod 8, in order)
// added pairwise at the end: a fixed order, independent of the CPU, that the compiler vectorises.
float dot(const float* a, const float* b, int64_t n);

// y[i] += a * x[i].
void axpy(float* y, float a, const float* x, int64_t n);

}  // namespace wkvq
