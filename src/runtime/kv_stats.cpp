#include "runtime/kv_stats.h"

#include <algorithm>

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

}  // namespace wkvq
