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
  // Positions at the start of every window left out of the statistics (they still run, as
  // context for the rest). Real LLMs put huge K/V outliers on the first token (the attention
  // sink), which would set the smoothing range of every channel; see kDefaultSinkPositions.
  int64_t sink_positions = kDefaultSinkPositions;
  static constexpr int64_t kDefaultSinkPositions = 1;
};

// Runs `m` over non-overlapping windows of the token stream and records every layer's per-channel
// minimum and maximum of K and V at the positions >= sink_positions of each window. Throws when
// the stream is shorter than one window or a window has no position left to record.
KvChannelStats collect_kv_stats(const Model& m, const std::vector<int>& stream,
                                const CalibWindows& windows);

}  // namespace wkvq
