#include "runtime/kv_stats.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "model/forward.h"
#include "runtime/kv_cache.h"

namespace wkvq {

namespace {
// A KvStore that records K/V ranges, then attends through a full-precision cache.
class RecordingStore final : public KvStore {
 public:
  RecordingStore(KvCache& inner, KvChannelStats& stats, int64_t skip)
      : inner_(inner), stats_(stats), skip_(skip) {}
  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override {
    const int64_t first = std::clamp<int64_t>(skip_ - pos0, 0, n);  // rows of the sink positions
    const int64_t at = first * stats_.kv_dim;
    if (first < n) stats_.add(layer, k + at, v + at, n - first);
    inner_.attend(layer, q, k, v, n, pos0, out);
  }

 private:
  KvCache& inner_;
  KvChannelStats& stats_;
  int64_t skip_;
};

// Ranges of n_layers x ceil(channels / group) groups, each [+inf, -inf] until values are seen.
KvGroupRanges empty_group_ranges(int n_layers, int64_t channels, int64_t group) {
  KvGroupRanges r;
  r.n_layers = n_layers;
  r.group = group;
  r.n_groups = (channels + group - 1) / group;
  const auto n = static_cast<size_t>(r.n_layers * r.n_groups);
  const float inf = std::numeric_limits<float>::infinity();
  r.klo.assign(n, inf);
  r.vlo.assign(n, inf);
  r.khi.assign(n, -inf);
  r.vhi.assign(n, -inf);
  return r;
}

// Records the transformed group ranges, then attends through a full-precision cache.
class RangeRecorder final : public KvStore {
 public:
  RangeRecorder(KvCache& inner, const KvRowTransform& transform, KvGroupRanges& r, int64_t kv_dim,
                int64_t skip)
      : inner_(inner), transform_(transform), r_(r), kv_dim_(kv_dim), skip_(skip) {}
  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override {
    std::vector<float> y(static_cast<size_t>(kv_dim_));
    for (int64_t t = std::clamp<int64_t>(skip_ - pos0, 0, n); t < n; ++t) {
      record(layer, true, pos0 + t, k + t * kv_dim_, y);
      record(layer, false, pos0 + t, v + t * kv_dim_, y);
    }
    inner_.attend(layer, q, k, v, n, pos0, out);
  }

 private:
  void record(int layer, bool key, int64_t pos, const float* x, std::vector<float>& y) {
    transform_(key, layer, pos, x, y.data());
    float* lo = (key ? r_.klo : r_.vlo).data() + layer * r_.n_groups;
    float* hi = (key ? r_.khi : r_.vhi).data() + layer * r_.n_groups;
    for (size_t i = 0; i < y.size(); ++i) {
      const auto g = static_cast<int64_t>(i) / r_.group;
      lo[g] = std::min(lo[g], y[i]);
      hi[g] = std::max(hi[g], y[i]);
    }
  }
  KvCache& inner_;
  const KvRowTransform& transform_;
  KvGroupRanges& r_;
  int64_t kv_dim_, skip_;
};
}  // namespace

int64_t calib_window_ctx(const LlamaConfig& c, const CalibWindows& w) {
  return w.ctx > 0 ? std::min<int64_t>(w.ctx, c.seq_len) : std::min<int64_t>(2048, c.seq_len);
}

void run_calib_windows(const Model& m, const std::vector<int>& stream, const CalibWindows& w,
                       KvStore& store, const char* what) {
  const int64_t ctx = calib_window_ctx(m.config, w);
  int64_t windows = static_cast<int64_t>(stream.size()) / ctx;
  WKVQ_REQUIRE(windows > 0, "calibration text: ", stream.size(),
               " tokens, fewer than one window of ", ctx, "; give a longer --calib text");
  if (w.max_windows > 0) windows = std::min(windows, w.max_windows);
  WKVQ_REQUIRE(w.sink_positions >= 0 && w.sink_positions < ctx, what, ": ", w.sink_positions,
               " sink positions left out of windows of ", ctx,
               " tokens leave nothing to record; choose 0 <= --calib-sinks < ", ctx);
  ForwardScratch scratch;
  for (int64_t i = 0; i < windows; ++i) {
    forward(m, stream.data() + i * ctx, ctx, 0, store, scratch, LogitsFor::None, nullptr,
            GemmUse::Exact);
  }
}

KvChannelStats collect_kv_stats(const Model& m, const std::vector<int>& stream,
                                const CalibWindows& w) {
  const LlamaConfig& c = m.config;
  KvChannelStats stats(c.n_layers, c.kv_dim());
  KvCache cache(c, calib_window_ctx(c, w));
  RecordingStore store(cache, stats, w.sink_positions);
  run_calib_windows(m, stream, w, store, "KV statistics");
  return stats;
}

KvGroupRanges collect_kv_group_ranges(const Model& m, const std::vector<int>& stream,
                                      const CalibWindows& w, int64_t group,
                                      const KvRowTransform& transform) {
  const LlamaConfig& c = m.config;
  WKVQ_REQUIRE(group >= 1 && group <= c.kv_dim(), "KV group ranges: groups of ", group,
               " channels, the model has ", c.kv_dim(), " KV channels per token");
  KvGroupRanges r = empty_group_ranges(c.n_layers, c.kv_dim(), group);
  const auto n = static_cast<size_t>(r.n_layers * r.n_groups);
  KvCache cache(c, calib_window_ctx(c, w));
  RangeRecorder rec(cache, transform, r, c.kv_dim(), w.sink_positions);
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

KvGroupRanges merge_kv_group_ranges(const KvGroupRanges& r, int64_t group) {
  WKVQ_REQUIRE(r.group == 1 && group >= 1, "KV group ranges: merging needs per-channel ranges");
  const int64_t channels = r.n_groups;
  KvGroupRanges out = empty_group_ranges(r.n_layers, channels, std::min(group, channels));
  for (int l = 0; l < r.n_layers; ++l) {
    for (int64_t c = 0; c < channels; ++c) {
      const auto from = static_cast<size_t>(l * channels + c);
      const auto to = static_cast<size_t>(l * out.n_groups + c / out.group);
      out.klo[to] = std::min(out.klo[to], r.klo[from]);
      out.khi[to] = std::max(out.khi[to], r.khi[from]);
      out.vlo[to] = std::min(out.vlo[to], r.vlo[from]);
      out.vhi[to] = std::max(out.vhi[to], r.vhi[from]);
    }
  }
  return out;
}

KvGroupRanges smoothed_kv_group_ranges(const Model& m, const std::vector<int>& stream,
                                       const CalibWindows& w, int64_t group,
                                       const KvSmoothing* smoothing) {
  const int64_t c = m.config.kv_dim();
  return collect_kv_group_ranges(
      m, stream, w, group, [&](bool key, int layer, int64_t, const float* x, float* y) {
        for (int64_t i = 0; i < c; ++i) y[i] = x[i];
        if (smoothing == nullptr) return;
        const float* d = key ? smoothing->dK(layer) : smoothing->dV(layer);
        const float* s = key ? smoothing->sK(layer) : smoothing->sV(layer);
        for (int64_t i = 0; i < c; ++i) y[i] = (y[i] - d[i]) / s[i];
      });
}

}  // namespace wkvq
