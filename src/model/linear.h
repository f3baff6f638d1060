// Linear: one weight matrix of a block, y = x . W^T, whatever its storage: f32 or fp16 row-major
// W[out, in] (in place from the file or owned), or packed int-b groups (formats/weight_quant.h).
// The block forward never needs to know which.
#pragma once

#include <cstdint>
#include <memory>

#include "formats/weight_quant.h"

namespace wkvq {

struct Linear {
  int64_t out = 0;                           // rows of W (output features)
  int64_t in = 0;                            // columns of W (input features)
  const float* w = nullptr;                  // (out, in) row-major, when stored in f32
  std::shared_ptr<const QuantizedMatrix> q;  // when quantized (then w may be null)
  const uint16_t* w16 = nullptr;             // (out, in) fp16 bits, when stored in fp16
  const float* bias = nullptr;               // (out) added after the product (f32), or null

  bool quantized() const { return q != nullptr; }
  // y[n, out] = x[n, in] . W^T (+ bias)
  void forward(const float* x, int64_t n, float* y) const;
  // Bytes of the weight (and bias) as stored for inference.
  int64_t bytes() const;
};

}  // namespace wkvq
