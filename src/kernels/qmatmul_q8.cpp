// The int8-activation GEMM's reference (kernels/qmatmul_q8.h). Baseline x86-64: no FMA, so each
// operation rounds once, in the order the header gives.
#include "kernels/qmatmul_q8.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/fp16.h"

namespace wkvq {

bool qmatmul_q8_applies(const QuantizedMatrix& w) {
  return (w.bits == 4 || w.bits == 8) && (w.n_groups == 1 || w.group % kQ8BlockCols == 0);
}

void Q8Activations::resize(int64_t n_rows, int64_t n_cols) {
  rows = n_rows;
  cols = n_cols;
  stride = (n_cols + 31) / 32 * 32;
  blocks = (n_cols + kQ8BlockCols - 1) / kQ8BlockCols;
  q.resize(static_cast<size_t>(rows * stride));
  d.resize(static_cast<size_t>(rows * blocks));
  dsum.resize(static_cast<size_t>(rows * blocks));
}

float quantize_block_q8_ref(const float* x, int64_t len, int8_t* q, int64_t* sum) {
  float amax = 0.0f;
  float probe = 0.0f;  // NaN iff some x is NaN or infinite (x * 0 is +-0 otherwise)
  for (int64_t c = 0; c < len; ++c) {
    amax = std::max(amax, std::fabs(x[c]));
    probe += x[c] * 0.0f;
  }
  const float d = amax / 127.0f + probe;  // d + +-0 = d
  const bool finite = d - d == 0.0f;
  const float id = finite && d != 0.0f ? 1.0f / d : 0.0f;
  *sum = 0;
  for (int64_t c = 0; c < len; ++c) {
    const auto v = finite ? static_cast<int>(std::nearbyint(x[c] * id)) : 0;
    q[c] = static_cast<int8_t>(v);
    *sum += v;
  }
  return d;
}

void quantize_activations_q8_ref(const float* x, int64_t n, int64_t cols, Q8Activations& out) {
  out.resize(n, cols);
  std::fill(out.q.begin(), out.q.end(), int8_t{0});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < out.blocks; ++b) {
      const int64_t c0 = b * kQ8BlockCols;
      const int64_t c1 = std::min(cols, c0 + kQ8BlockCols);
      int64_t sum = 0;
      const float d = quantize_block_q8_ref(x + i * cols + c0, c1 - c0,
                                            out.q.data() + i * out.stride + c0, &sum);
      const auto at = static_cast<size_t>(i * out.blocks + b);
      out.d[at] = d;
      out.dsum[at] = d * static_cast<float>(sum);
    }
  }
}

void qmatmul_q8_ref(const float* x, int64_t n, const QuantizedMatrix& w, float* y) {
  WKVQ_REQUIRE(qmatmul_q8_applies(w),
               "qmatmul_q8: needs 4- or 8-bit weights with groups of a multiple ", "of ",
               kQ8BlockCols, " columns (or one per row), found ", w.bits, " bits, group ", w.group);
  Q8Activations a;
  quantize_activations_q8_ref(x, n, w.cols, a);
  std::vector<uint8_t> codes(static_cast<size_t>(w.cols));
  std::vector<uint8_t> buf;  // used only when the tile layout holds the codes
  for (int64_t o = 0; o < w.rows; ++o) {
    unpack_row_codes_ref(row_codes_of(w, o, buf), w.cols, w.bits, codes.data());
    for (int64_t i = 0; i < n; ++i) {
      float acc = 0.0f;
      for (int64_t b = 0; b < a.blocks; ++b) {
        const int64_t c0 = b * kQ8BlockCols;
        const int64_t c1 = std::min(w.cols, c0 + kQ8BlockCols);
        int64_t dot = 0;
        for (int64_t c = c0; c < c1; ++c) {
          dot +=
              int64_t{codes[static_cast<size_t>(c)]} * a.q[static_cast<size_t>(i * a.stride + c)];
        }
        const int64_t g = w.n_groups == 1 ? 0 : c0 / w.group;
        const float s = fp16_to_f32(w.scales[static_cast<size_t>(o * w.n_groups + g)]);
        const float zs = static_cast<float>(w.zeros[static_cast<size_t>(o * w.n_groups + g)]) * s;
        const auto at = static_cast<size_t>(i * a.blocks + b);
        acc = acc + a.d[at] * (s * static_cast<float>(dot));
        acc = acc - a.dsum[at] * zs;
      }
      y[i * w.rows + o] = acc;
    }
  }
}

}  // namespace wkvq
