// The per-channel ranges of K (after RoPE) and V as a KV quantizer sees them at each step of the
// WKVQuant transforms, on calibration text: raw, after the static smoothing (x - d) / s, and after
// the smoothing and the per-head Hadamard rotation of wkvq-rot (kvlab/kv_lab_method.h). For
// `wkvq inspect --plot`.
#pragma once

#include <string>
#include <vector>

#include "kvlab/kv_lab_method.h"
#include "model/model.h"
#include "runtime/kv_stats.h"

namespace wkvq {

struct KvRangeStage {
  std::string name;     // "raw", "smoothed", "smoothed + rotated"
  KvGroupRanges range;  // one group per channel: klo, khi, vlo, vhi (n_layers, kv_dim)
};

struct KvRangeStages {
  KvChannelStats stats;          // the raw statistics (tokens seen)
  KvSmoothing smoothing;         // the smoothing applied
  bool model_smoothing = false;  // the model's own (else from the statistics)
  std::vector<KvRangeStage> stages;
  std::string note;  // why a stage is missing ("" when none is)
};

// Runs `m` over the windows of `stream` (collect_kv_stats' windows, sink positions left out):
// the raw ranges; then the smoothing (the model's own when it has one, else
// smoothing_from_stats) and the ranges of the smoothed K/V, and of the smoothed and rotated K/V
// when head_dim is a power of two (else `note` says why that stage is missing).
KvRangeStages measure_kv_range_stages(const Model& m, const std::vector<int>& stream,
                                      const CalibWindows& windows);

}  // namespace wkvq
