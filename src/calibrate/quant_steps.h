// The non-smooth steps inside the fake quantizers (calibrate/lwc.h, calibrate/fake_kv.h):
// rounding to integers, rounding to fp16, snapping to a level, clamping codes into [0, 2^b - 1].
//
// The default is the straight-through estimator (STE) of design.md §2.1: forward values are
// exactly those of the runtime's reference quantizers (formats/weight_quant.h,
// formats/kv_quant.h), and the backward pass treats rounding as the identity. A rounded value is
// built as  y = rounded.detach() + (x - x.detach()):  x - x.detach() is exactly 0 for finite x, so
// y is bit-identical to the rounded value, while dy/dx = 1. Clamping is torch's (gradient 1 inside
// [lo, hi], boundaries included, 0 outside).
//
// Tests substitute other rules through this interface: e.g. "add the rounding residual and keep
// the clamp's active set frozen at a base point", the smooth function whose gradient the STE
// computes there, to check gradients by finite differences.
#pragma once

#include <torch/types.h>

namespace wkvq {

class QuantSteps {
 public:
  virtual ~QuantSteps() = default;
  // Round half to even to an integer (std::nearbyint, torch::round), STE.
  virtual torch::Tensor round(const torch::Tensor& x) const {
    return torch::round(x).detach() + (x - x.detach());
  }
  // Round to the nearest fp16 value, half to even (core/fp16.h f32_to_fp16), kept in x's dtype;
  // STE.
  virtual torch::Tensor to_fp16(const torch::Tensor& x) const {
    return x.to(torch::kHalf).to(x.scalar_type()).detach() + (x - x.detach());
  }
  // x replaced by `snapped` (a value computed from x without gradient, e.g. the rel8 level a
  // group's minimum is coded as), STE.
  virtual torch::Tensor snap(const torch::Tensor& x, const torch::Tensor& snapped) const {
    return snapped.detach() + (x - x.detach());
  }
  // Clamp into [lo, hi].
  virtual torch::Tensor clamp(const torch::Tensor& x, double lo, double hi) const {
    return x.clamp(lo, hi);
  }
};

// The STE steps every production path uses.
inline const QuantSteps& ste_steps() {
  static const QuantSteps s;
  return s;
}

}  // namespace wkvq
