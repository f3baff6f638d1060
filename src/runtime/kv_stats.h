// Channel statistics of K (after RoPE) and V of the full-precision model on calibration text,
// and the statistics-initialised KV smoothing they give (design.md §2.2).
#pragma once

#include <cstdint>
#include <functional>
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

// What the group ranges are taken of: y = the transform of one token's K (key) or V of `layer` at
// position `pos` (kv_dim floats each).
using KvRowTransform =
    std::function<void(bool key, int layer, int64_t pos, const float* x, float* y)>;

// Runs `m` over the windows of `stream` (as collect_kv_stats: the first sink_positions of every
// window left out) and records, per layer and group of `group` channels, the minimum and maximum of
// transform(K) and of transform(V). A group whose range is empty gets [lo - 1e-6, lo + 1e-6].
KvGroupRanges collect_kv_group_ranges(const Model& m, const std::vector<int>& stream,
                                      const CalibWindows& windows, int64_t group,
                                      const KvRowTransform& transform);

// Per-channel ranges (group 1) merged into groups of `group` channels: each group's lo the least
// of its channels' lo, hi the greatest hi (what collect_kv_group_ranges measures with that group,
// up to its padding of an empty range).
KvGroupRanges merge_kv_group_ranges(const KvGroupRanges& per_channel, int64_t group);

// The static ranges of the smoothed K~ = (K - dK) / sK and V~ (`smoothing` null: K and V) in
// groups of `group` channels: what rel8 group metadata is coded against (formats/kv_quant.h).
KvGroupRanges smoothed_kv_group_ranges(const Model& m, const std::vector<int>& stream,
                                       const CalibWindows& windows, int64_t group,
                                       const KvSmoothing* smoothing);

}  // namespace wkvq
