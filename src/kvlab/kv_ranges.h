// Static ranges of a KV lab method's transformed K and V (smoothed, rotated) per layer and channel
// group, from the full-precision model on calibration text: the range the 8-bit relative
// metadata of wkvq2d (kvlab/kv_codecs.h rel8_groups_round_trip) is coded against.
#pragma once

#include <vector>

#include "kvlab/kv_lab_method.h"
#include "model/model.h"
#include "runtime/kv_stats.h"

namespace wkvq {

// Runs `m` over the windows of `stream` (as collect_kv_stats: the first sink_positions of every
// window left out) and records, per layer and group of `method`'s channel groups, the minimum and
// maximum of method.transform(K) and of method.transform(V). A group whose range is empty gets
// [lo - 1e-6, lo + 1e-6]. `method` needs no ranges itself (its spec may have rel8 off).
KvGroupRanges calibrate_kv_ranges(const Model& m, const KvLabMethod& method,
                                  const std::vector<int>& stream, const CalibWindows& windows);

}  // namespace wkvq
