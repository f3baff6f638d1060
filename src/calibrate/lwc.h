// Learnable weight clipping (LWC, design.md §2.1): fake quantization of a block's seven linears,
// differentiable in the clipping factors.
//
// The fake-quantized W^ follows formats/weight_quant.h operation by operation, in the weight's
// dtype (f32 in calibration):
//   hi = max(clip_hi * max(W_group), 0)        lo = min(clip_lo * min(W_group), 0)
//   scale = max((hi - lo) / (2^b - 1), 1e-5);  s = fp16(scale)        (STE)
//   z = clamp(round(-lo / s), 0, 2^b - 1)                              (STE)
//   q = clamp(round(W / s) + z, 0, 2^b - 1)                            (STE)
//   W^ = (q - z) * s
// with clip_hi = sigmoid(gamma), clip_lo = sigmoid(beta). So quantize_weights_ref(W, ..., clip_hi,
// clip_lo) with the same float clip factors dequantizes to exactly this W^ (tested).
#pragma once

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <vector>

#include "calibrate/quant_steps.h"

namespace wkvq {

// The seven linear weights of a block, kLinearNames order (model/weight_quantizer.h), each (out,
// in).
using BlockLinears = std::array<torch::Tensor, 7>;

// A weight matrix cut into the quantizer's groups: each row into groups of `group` columns
// (weight_group_size), the last group possibly shorter.
struct GroupedWeight {
  int64_t rows = 0, cols = 0, group = 0, n_groups = 0;
  torch::Tensor wg;      // (rows, n_groups, group); a short last group is padded by repeating its
                         // last column, which changes neither its max nor its min
  torch::Tensor mx, mn;  // (rows, n_groups) group maximum and minimum (constants)
};
GroupedWeight group_weight(const torch::Tensor& w, int64_t group);

// W^ (rows, cols) for clip factors clip_hi, clip_lo (rows, n_groups), each in [0, 1].
torch::Tensor lwc_fake_quant(const GroupedWeight& g, const torch::Tensor& clip_hi,
                             const torch::Tensor& clip_lo, int bits,
                             const QuantSteps& steps = ste_steps());

// The LWC parameters of one block: per linear, gamma and beta of shape (rows, n_groups).
class Lwc {
 public:
  // Learnable gamma = beta = init (4.0: sigmoid = 0.982, design.md §2.1).
  Lwc(const BlockLinears& w, int bits, int64_t group, float init = 4.0f);

  // W^ of every linear with the current parameters (in the autograd graph).
  BlockLinears fake_quant(const QuantSteps& steps = ste_steps()) const;
  // gamma0, beta0, gamma1, beta1, ... (requires_grad).
  std::vector<torch::Tensor> parameters() const;
  // The current clip factors of linear i: sigmoid(gamma), sigmoid(beta), (rows, n_groups) floats.
  std::vector<float> clip_hi(int i) const;
  std::vector<float> clip_lo(int i) const;
  const GroupedWeight& grouped(int i) const { return grouped_[static_cast<size_t>(i)]; }
  torch::Tensor& gamma(int i) { return gamma_[static_cast<size_t>(i)]; }
  torch::Tensor& beta(int i) { return beta_[static_cast<size_t>(i)]; }
  int bits() const { return bits_; }

 private:
  int bits_;
  std::array<GroupedWeight, 7> grouped_;
  std::array<torch::Tensor, 7> gamma_, beta_;
};

// W^ of every linear for fixed clip factors (floats, (rows, n_groups) each, kLinearNames order),
// without gradient: a finished block's weights.
BlockLinears fake_quant_fixed(const BlockLinears& w, const std::array<std::vector<float>, 7>& hi,
                              const std::array<std::vector<float>, 7>& lo, int bits, int64_t group);

// A float tensor's values as a std::vector<float> (any shape, row-major).
std::vector<float> to_floats(const torch::Tensor& t);

}  // namespace wkvq
