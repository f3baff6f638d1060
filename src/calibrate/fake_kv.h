// Fake quantization of the KV cache of one layer (design.md §2.2), differentiable in the static
// channel smoothing:
//   K~ = (K - dK) / sK                       (per channel, K after RoPE; V likewise)
//   K~^ = token-wise group fake quantization of K~, by the formulas of formats/kv_quant.h:
//         mn, mx per group; s = fp16((mx - mn) / (2^b - 1)), m = fp16(mn)           (STE)
//         (rel8 metadata: m = L[m8], t = L[t8] with m8, t8 the group's two bytes against
//          the levels L of its static range, s = (t - m) / (2^b - 1); snapped with STE)
//         q = clamp(round((x - m) / s), 0, 2^b - 1) (q = 0 when s = 0)               (STE)
//         x^ = m + q * s
//   K^ = K~^ * sK + dK                       (what attention sees; the runtime folds the same
//                                             undoing into its dot products, runtime/kv_cache.h)
// Keys with the spec's key bits, values with its value bits (KvQuantSettings::vbits).
// Learned: dK, dV and log sK, log sV (s stays positive).
//
// rel8: a group's static range is that of the smoothed K~ over the calibration windows, as the
// runtime measures it (runtime/kv_stats.h smoothed_kv_group_ranges): from the raw K and V
// channel ranges (set_channel_ranges), [min_c (lo_c - dK_c) / sK_c, max_c (hi_c - dK_c) / sK_c]
// over the group's channels with the current smoothing, so the levels follow the smoothing as it
// is learned (no gradient through them).
#pragma once

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <vector>

#include "calibrate/calibration_result.h"
#include "calibrate/quant_steps.h"
#include "formats/kv_quant.h"

namespace wkvq {

// x^ of x (..., C): each row of C channels cut into groups of `group` (the last may be shorter).
// levels: undefined for fp16 metadata, else (n_groups, 256) ascending rel8 levels of each group
// (formats/kv_quant.h make_kv_rel8_group).
torch::Tensor fake_quant_tokens(const torch::Tensor& x, int bits, int64_t group,
                                const QuantSteps& steps = ste_steps(),
                                const torch::Tensor& levels = {});

// The rel8 levels (n_groups, 256) of static group ranges lo, hi (n_groups each).
torch::Tensor rel8_levels(const std::vector<float>& lo, const std::vector<float>& hi);

class FakeKv {
 public:
  // Starts from `init`; spec: bits 2, 3, 4 or 8 (vbits for values), group, rel8 metadata, the
  // fp16 window, and poq (attention in the teacher-forced past-only-quantization form,
  // calibrate/torch_block.h); its smooth is not read (`learn` says whether the smoothing is
  // learned). learn: dK, log sK, dV, log sV become parameters. `options`
  // gives the dtype/device of the tensors; `steps` must outlive this object.
  FakeKv(const LayerSmoothing& init, int head_dim, const KvQuantSettings& spec, bool learn,
         const torch::TensorOptions& options = torch::kFloat32,
         const QuantSteps* steps = &ste_steps());

  // K^, V^ of k, v (B, T, kv_dim). rel8: the channel ranges must be set.
  torch::Tensor quantize_k(const torch::Tensor& k) const;
  torch::Tensor quantize_v(const torch::Tensor& v) const;
  // What the fp16 window (spec.window > 0) holds of raw k or v: rounded to fp16 (STE).
  torch::Tensor window_values(const torch::Tensor& x) const;

  // rel8: the raw (unsmoothed) K and V ranges per channel (kv_dim each) the static group ranges
  // follow.
  void set_channel_ranges(const std::vector<float>& k_lo, const std::vector<float>& k_hi,
                          const std::vector<float>& v_lo, const std::vector<float>& v_hi);
  // The static group ranges of K~ (kv = 0) or V~ (kv = 1) under the current smoothing: lo, hi
  // (n_groups each), as the runtime's KvSmoothing::ranges hold them.
  std::array<std::vector<float>, 2> group_ranges(int kv) const;

  const KvQuantSettings& spec() const { return spec_; }
  // dK, log sK, dV, log sV (requires_grad) when learning; empty otherwise.
  std::vector<torch::Tensor> parameters() const;
  // The current smoothing as floats (s = exp(log s) when learning: the values used in forward).
  LayerSmoothing values() const;

 private:
  torch::Tensor scale(const torch::Tensor& s_or_log) const;
  torch::Tensor quantize(const torch::Tensor& x, int kv) const;

  KvQuantSettings spec_;
  bool learn_;
  const QuantSteps* steps_;
  torch::Tensor dk_, sk_, dv_, sv_;           // (kv_dim); sk_, sv_ hold log s when learning
  std::array<std::vector<float>, 4> ranges_;  // rel8: raw K lo, hi, V lo, hi (kv_dim each)
};

}  // namespace wkvq
