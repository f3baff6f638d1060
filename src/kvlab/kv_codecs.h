// The scalar codecs of the KV lab's methods (kvlab/kv_method.h), each as a round trip (quantize,
// then dequantize) in f32, as the method's own definition gives it. Tested against independent
// numpy implementations (tests/python/test_kv_methods.py) and by hand (tests/unit/kvlab_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/kv_rel8_group.h"

namespace wkvq {

// llama.cpp q4_0 (ggml's reference quantizer) on n values (a multiple of 32), blocks of 32:
//   amax = max |x|, mx = the x with that magnitude (the first one), d = mx / -8, id = 1/d (0 if
//   d = 0), q = min(15, trunc(x * id + 8.5)), stored fp16(d); x^ = (q - 8) * fp16(d).
// codes (optional, n entries) receives q.
void q4_0_round_trip(const float* x, int64_t n, float* out, uint8_t* codes = nullptr);
// llama.cpp q4_1: mn, mx = min, max of the block, d = (mx - mn) / 15, id = 1/d (0 if d = 0),
//   q = min(15, trunc((x - mn) * id + 0.5)), stored fp16(d), fp16(mn); x^ = q * fp16(d) + fp16(mn).
void q4_1_round_trip(const float* x, int64_t n, float* out, uint8_t* codes = nullptr);

// WKVQuant's token record (formats/kv_quant.h: groups of g channels, fp16 scale and min, b bits
// 2, 3, 4 or 8) on one token of c channels.
void token_groups_round_trip(const float* x, int64_t c, int64_t group, int bits, float* out);

// The cheaper metadata of issue 16 item 1, rel8 (formats/kv_quant.h): per group of g channels
// (last may be shorter) two 8-bit codes m8, t8 against the group's static levels `groups[g]`
// (make_kv_rel8_group of its calibrated range), m = L[m8], s = (L[t8] - m) / (2^b - 1),
// q = clamp(round((x - m) / s), 0, 2^b - 1) (0 when s = 0), x^ = fma(q, s, m): the runtime cache's
// records, as a round trip. 16 bits of metadata per group; bits 1..8.
void rel8_groups_round_trip(const float* x, int64_t c, int64_t group, int bits,
                            const KvRel8Group* groups, float* out);

// The orthonormal Walsh-Hadamard transform (Sylvester order, scaled by 1/sqrt(n)) of x[0:n] in
// place; n a power of two. It is its own inverse.
void hadamard_in_place(float* x, int64_t n);

// Lloyd-Max codebook (2^bits levels, ascending) for one coordinate of a uniformly random unit
// vector in R^dim: density proportional to (1 - t^2)^((dim - 3) / 2) on [-1, 1] (variance
// 1/dim, close to N(0, 1/dim) for large dim). Computed numerically (cumulative sums on a grid of
// 2^18 cells, Lloyd iterations until the levels move less than 1e-12). dim >= 2, bits 1..4.
std::vector<double> lloyd_max_unit_coordinate(int dim, int bits);

// A random orthogonal n x n matrix (row-major, rows orthonormal), from `seed`: Gaussian entries
// (std::mt19937_64, std::normal_distribution) orthonormalised by modified Gram-Schmidt.
std::vector<double> random_orthogonal(int n, uint64_t seed);

// TurboQuant-style round trip of one vector x[0:n] with rotation r (n x n, rows orthonormal) and
// codebook `levels` (ascending): nrm = fp16(|x|); y = r (x / |x|); each y_i -> nearest level
// (ties to the lower); x^ = nrm * r^T y^. x = 0 gives 0. In double, rounded once to f32.
void turbo_round_trip(const float* x, int n, const std::vector<double>& r,
                      const std::vector<double>& levels, float* out);

}  // namespace wkvq
