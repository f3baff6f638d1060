#include "kvlab/kv_ranges.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "runtime/kv_cache.h"

namespace wkvq {

namespace {

// Records the transformed ranges, then attends through a full-precision cache.
class RangeRecorder final : public KvStore {
 public:
  RangeRecorder(KvCache& inner, const KvLabMethod& method, KvGroupRanges& r, int64_t group,
                int64_t skip)
      : inner_(inner), method_(method), r_(r), group_(group), skip_(skip) {}
  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override {
    const int64_t c = method_.shape().kv_dim;
    std::vector<float> y(static_cast<size_t>(c));
    for (int64_t t = std::clamp<int64_t>(skip_ - pos0, 0, n); t < n; ++t) {
      record(layer, true, pos0 + t, k + t * c, y);
      record(layer, false, pos0 + t, v + t * c, y);
    }
    inner_.attend(layer, q, k, v, n, pos0, out);
  }

 private:
  void record(int layer, bool key, int64_t pos, const float* x, std::vector<float>& y) {
    method_.transform(key, layer, pos, x, y.data());
    float* lo = (key ? r_.klo : r_.vlo).data() + layer * r_.n_groups;
    float* hi = (key ? r_.khi : r_.vhi).data() + layer * r_.n_groups;
    for (size_t i = 0; i < y.size(); ++i) {
      const auto g = static_cast<int64_t>(i) / group_;
      lo[g] = std::min(lo[g], y[i]);
      hi[g] = std::max(hi[g], y[i]);
    }
  }
  KvCache& inner_;
  const KvLabMethod& method_;
  KvGroupRanges& r_;
  int64_t group_, skip_;
};

}  // namespace

KvGroupRanges calibrate_kv_ranges(const Model& m, const KvLabMethod& method,
                                  const std::vector<int>& stream, const CalibWindows& w) {
  const LlamaConfig& c = m.config;
  const int64_t group = method.range_group();
  KvGroupRanges r;
  r.n_layers = c.n_layers;
  r.n_groups = (c.kv_dim() + group - 1) / group;
  const auto n = static_cast<size_t>(r.n_layers * r.n_groups);
  const float inf = std::numeric_limits<float>::infinity();
  r.klo.assign(n, inf);
  r.vlo.assign(n, inf);
  r.khi.assign(n, -inf);
  r.vhi.assign(n, -inf);
  KvCache cache(c, calib_window_ctx(c, w));
  RangeRecorder rec(cache, method, r, group, w.sink_positions);
  run_calib_windows(m, stream, w, rec, "KV ranges");
  for (size_t i = 0; i < n; ++i) {
    for (auto* p : {&r.klo, &r.vlo}) {
      auto& lo = (*p)[i];
      auto& hi = (p == &r.klo ? r.khi : r.vhi)[i];
      if (!(hi > lo)) {
        hi = lo + 1e-6f;
        lo -= 1e-6f;
      }
    }
  }
  return r;
}

}  // namespace wkvq
