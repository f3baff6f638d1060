// Channel statistics of K (after RoPE) and V of the full-precision model on calibration text,
// and the statistics-initialised KV smoothing they give (design.md §2.2).
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_smoothing.h"
#include "model/kv_store.h"
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

// The window length of `w` for a model of config `c`.
int64_t calib_window_ctx(const LlamaConfig& c, const CalibWindows& w);

// Runs `m` over the non-overlapping windows of `stream` that `w` selects, attending through
// `store` (which records what it sees and attends through a cache of calib_window_ctx
// positions). `what` names the caller in the errors: a stream shorter than one window, or sink
// positions that leave nothing of a window to record.
void run_calib_windows(const Model& m, const std::vector<int>& stream, const CalibWindows& w,
                       KvStore& store, const char* what);

// Runs `m` over non-overlapping windows of the token stream and records every layer's per-channel
// minimum and maximum of K and V at the positions >= sink_positions of each window. Throws when
// the stream is shorter than one window or a window has no position left to record.
KvChannelStats collect_kv_stats(const Model& m, const std::vector<int>& stream,
                                const CalibWindows& windows);

}  // namespace wkvq
