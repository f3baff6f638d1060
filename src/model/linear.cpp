#include "model/linear.h"

#include "kernels/matmul.h"
#include "kernels/qmatmul.h"

namespace wkvq {

void Linear::forward(const float* x, int64_t n, float* y) const {
  if (q) {
    qmatmul(x, n, *q, y);
  } else {
    matmul_f32(x, n, in, w, out, y);
  }
}

int64_t Linear::bytes() const {
  return q ? q->bytes() : out * in * static_cast<int64_t>(sizeof(float));
}

}  // namespace wkvq
