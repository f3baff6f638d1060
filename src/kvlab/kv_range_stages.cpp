#include "kvlab/kv_range_stages.h"

#include "kvlab/kv_method.h"
#include "kvlab/kv_ranges.h"

namespace wkvq {

namespace {
// The raw statistics as per-channel group ranges.
KvGroupRanges ranges_of(const KvChannelStats& st) {
  KvGroupRanges r;
  r.n_layers = st.n_layers;
  r.group = 1;
  r.n_groups = st.kv_dim;
  r.klo = st.kmin;
  r.khi = st.kmax;
  r.vlo = st.vmin;
  r.vhi = st.vmax;
  return r;
}

bool power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }
}  // namespace

KvRangeStages measure_kv_range_stages(const Model& m, const std::vector<int>& stream,
                                      const CalibWindows& w) {
  KvRangeStages out{collect_kv_stats(m, stream, w), {}, false, {}, ""};
  out.model_smoothing = m.kv_smoothing.n_layers > 0;
  out.smoothing = out.model_smoothing ? m.kv_smoothing : smoothing_from_stats(out.stats);
  out.stages.push_back({"raw", ranges_of(out.stats)});
  // One channel per range group: the ranges of every transformed channel.
  const KvLabMethod smooth(parse_kv_method("wkvq:g=1"), m.config, &out.smoothing, nullptr);
  out.stages.push_back({"smoothed", calibrate_kv_ranges(m, smooth, stream, w)});
  if (power_of_two(m.config.head_dim)) {
    const KvLabMethod rot(parse_kv_method("wkvq-rot:g=1"), m.config, &out.smoothing, nullptr);
    out.stages.push_back({"smoothed + rotated", calibrate_kv_ranges(m, rot, stream, w)});
  } else {
    out.note =
        "no rotated ranges: the Hadamard rotation needs a power-of-two head_dim, this "
        "model's is " +
        std::to_string(m.config.head_dim);
  }
  return out;
}

}  // namespace wkvq
