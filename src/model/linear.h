// Linear: one weight matrix of a block, y = x . W^T, whatever its storage.
// Today: f32 row-major W[out, in]. Quantized storage (packed int-b) joins here as a variant, so
// the block forward never needs to know how a weight is stored.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace wkvq {

struct Linear {
  int64_t out = 0;           // rows of W (output features)
  int64_t in = 0;            // columns of W (input features)
  const float* w = nullptr;  // (out, in) row-major

  // y[n, out] = x[n, in] . W^T
  void forward(const float* x, int64_t n, float* y) const { matmul_f32(x, n, in, w, out, y); }
  int64_t bytes() const { return out * in * static_cast<int64_t>(sizeof(float)); }
};

}  // namespace wkvq
