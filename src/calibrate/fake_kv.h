// Fake quantization of the KV cache of one layer (design.md §2.2), differentiable in the static
// channel smoothing:
//   K~ = (K - dK) / sK                       (per channel, K after RoPE; V likewise)
//   K~^ = token-wise group fake quantization of K~, by the formulas of formats/kv_quant.h:
//         mn, mx per group; s = fp16((mx - mn) / (2^b - 1)), m = fp16(mn)           (STE)
//         q = clamp(round((x - m) / s), 0, 2^b - 1) (q = 0 when s = 0)               (STE)
//         x^ = m + q * s
//   K^ = K~^ * sK + dK                       (what attention sees; the runtime folds the same
//                                             undoing into its dot products, runtime/kv_cache.h)
// Learned: dK, dV and log sK, log sV (s stays positive).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "calibrate/calibration_result.h"
#include "calibrate/quant_steps.h"
#include "formats/kv_quant.h"

namespace wkvq {

// x^ of x (..., C): each row of C channels cut into groups of `group` (the last may be shorter).
torch::Tensor fake_quant_tokens(const torch::Tensor& x, int bits, int64_t group,
                                const QuantSteps& steps = ste_steps());

class FakeKv {
 public:
  // Starts from `init`; spec: bits 2, 3, 4 or 8, group, and poq (attention in the teacher-forced
  // past-only-quantization form, calibrate/torch_block.h); its smooth is not read (`learn` says
  // whether the smoothing is learned). learn: dK, log sK, dV, log sV become parameters. `options`
  // gives the dtype/device of the tensors; `steps` must outlive this object.
  FakeKv(const LayerSmoothing& init, int head_dim, const KvQuantSettings& spec, bool learn,
         const torch::TensorOptions& options = torch::kFloat32,
         const QuantSteps* steps = &ste_steps());

  // K^, V^ of k, v (B, T, kv_dim).
  torch::Tensor quantize_k(const torch::Tensor& k) const;
  torch::Tensor quantize_v(const torch::Tensor& v) const;

  const KvQuantSettings& spec() const { return spec_; }
  // dK, log sK, dV, log sV (requires_grad) when learning; empty otherwise.
  std::vector<torch::Tensor> parameters() const;
  // The current smoothing as floats (s = exp(log s) when learning: the values used in forward).
  LayerSmoothing values() const;

 private:
  torch::Tensor scale(const torch::Tensor& s_or_log) const;
  torch::Tensor quantize(const torch::Tensor& x, const torch::Tensor& d,
                         const torch::Tensor& s_or_log) const;

  KvQuantSettings spec_;
  bool learn_;
  const QuantSteps* steps_;
  torch::Tensor dk_, sk_, dv_, sv_;  // (kv_dim); sk_, sv_ hold log s when learning
};

}  // namespace wkvq
