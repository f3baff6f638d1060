#include "kvlab/kv_ranges.h"

namespace wkvq {

KvGroupRanges calibrate_kv_ranges(const Model& m, const KvLabMethod& method,
                                  const std::vector<int>& stream, const CalibWindows& w) {
  return collect_kv_group_ranges(m, stream, w, method.range_group(),
                                 [&method](bool key, int layer, int64_t pos, const float* x,
                                           float* y) { method.transform(key, layer, pos, x, y); });
}

}  // namespace wkvq
