#include "model/linear.h"

#include "kernels/matmul.h"
#include "kernels/qmatmul.h"

namespace wkvq {

void Linear::forward(const float* x, int64_t n, float* y) const {
  if (q) {
    qmatmul(x, n, *q, y);
  } else if (w16 != nullptr) {
    matmul_f16(x, n, in, w16, out, y);
  } else {
    matmul_f32(x, n, in, w, out, y);
  }
  if (bias == nullptr) return;
  for (int64_t t = 0; t < n; ++t) {
    float* row = y + t * out;
    for (int64_t o = 0; o < out; ++o) row[o] += bias[o];
  }
}

int64_t Linear::bytes() const {
  const int64_t b = bias != nullptr ? out * static_cast<int64_t>(sizeof(float)) : 0;
  if (q) return b + q->bytes();
  return b + out * in * static_cast<int64_t>(w16 != nullptr ? sizeof(uint16_t) : sizeof(float));
}

}  // namespace wkvq
