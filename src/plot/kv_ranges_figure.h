// The figure of `wkvq inspect --plot`: per layer (rows) the channel ranges of K and V (columns),
// one band [min, max] per channel for each stage of kvlab/kv_range_stages.h (raw, smoothed,
// smoothed + rotated), head boundaries dotted.
#pragma once

#include <string>
#include <vector>

#include "kvlab/kv_range_stages.h"

namespace wkvq {

// The SVG of `st` for the given layers (each in [0, n_layers)), titled `title`; head_dim places
// the head boundaries. Throws on a layer out of range or an empty list.
std::string kv_ranges_svg(const KvRangeStages& st, const std::string& title,
                          const std::vector<int>& layers, int64_t head_dim);

}  // namespace wkvq
