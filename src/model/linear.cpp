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
}

int64_t Linear::bytes() const {
  if (q) return q->bytes();
  return out * in * static_cast<int64_t>(w16 != nullptr ? sizeof(uint16_t) : sizeof(float));
}

}  // namespace wkvq
