// Channel statistics of K (after RoPE) and V of the full-precision model on calibration text,
// and the statistics-initialised KV smoothing they give (design.md §2.2).
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_smoothing.h"
#include "model/model.h"

namespace wkvq {

struct CalibWindows {
  int64_t ctx = 0;          // window length (0: min(2048, model context))
  int64_t max_windows = 0;  // 0: every full window of the calibration stream
};

// Runs `m` over non-overlapping windows of the token stream and records every layer's per-channel
// minimum and maximum of K and V. Throws when the stream is shorter than one window.
KvChannelStats collect_kv_stats(const Model& m, const std::vector<int>& stream,
                                const CalibWindows& windows);

}  // namespace wkvq
