#include "cli/kv_auto.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cli/console.h"
#include "core/clock.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "runtime/kv_stats.h"

namespace wkvq::cli {

std::vector<KvAutoCandidate> kv_auto_candidates(const LlamaConfig& c, double budget, int64_t t) {
  const int64_t kv_dim = c.kv_dim();
  std::vector<KvAutoCandidate> out;
  double cheapest = 1e30;
  // Groups of whole heads: head_dim x 2^k, at most 128 channels and a token's KV channels.
  const int64_t widest = std::min<int64_t>(128, kv_dim);
  for (int64_t g = c.head_dim; g <= std::max<int64_t>(c.head_dim, widest); g *= 2) {
    if (g > kv_dim) break;
    for (const int vbits : {4, 3, 2}) {
      const double records = (4.0 + vbits) / 2.0 + 16.0 / static_cast<double>(g);
      cheapest = std::min(cheapest, records);
      if (records > budget + 1e-9) continue;
      KvAutoCandidate k;
      k.kv.bits = 4;
      k.kv.vbits = vbits == 4 ? 0 : vbits;
      k.kv.group = g;
      k.kv.rel8 = true;
      k.kv.window = std::min<int64_t>(
          t, static_cast<int64_t>(
                 std::floor((budget - records) * static_cast<double>(t) / 16.0 + 1e-9)));
      k.bits = records + 16.0 * static_cast<double>(k.kv.window) / static_cast<double>(t);
      out.push_back(k);
    }
  }
  WKVQ_REQUIRE(!out.empty(), "--kv-auto ", budget, ": the cheapest candidate (4-bit keys, 2-bit ",
               "values, rel8 metadata in groups of up to 128 channels) takes ", cheapest,
               " bits per element on this model; give a budget of at least that");
  return out;
}

void choose_kv_format(PreparedModel& p, const QuantCliOptions& o, const std::vector<int>& stream,
                      const Model* reference) {
  const auto t0 = std::chrono::steady_clock::now();
  const LlamaConfig& c = p.model.config;
  const int64_t t = ppl_window(p.model, o.calib_ctx);
  std::vector<KvAutoCandidate> cands = kv_auto_candidates(c, o.kv_auto, t);
  // The static ranges of every channel once, merged into each candidate's groups.
  CalibWindows w;
  w.ctx = o.calib_ctx;
  w.max_windows = o.calib_windows;
  w.sink_positions = o.calib_sinks;
  if (p.smoothing.n_layers == 0) p.smoothing = KvSmoothing::identity(c.n_layers, c.kv_dim());
  const KvGroupRanges per_channel = smoothed_kv_group_ranges(p.model, stream, w, 1, &p.smoothing);
  std::vector<KvSmoothing> smoothings(cands.size(), p.smoothing);
  std::vector<EvalSpec> specs;
  for (size_t i = 0; i < cands.size(); ++i) {
    cands[i].kv.poq = !o.kv_given.poq || o.kv.poq;  // --poq off is honoured
    cands[i].kv.smooth = p.kv.smooth;
    smoothings[i].set_ranges(merge_kv_group_ranges(per_channel, cands[i].kv.group), "--calib");
    specs.push_back({&p.model, EvalMode::Decode, cands[i].kv, &smoothings[i], {}, 0});
  }
  PplOptions opt;
  opt.ctx = t;
  opt.max_windows = std::min(o.calib_windows, kKvAutoWindows);
  opt.kld_reference = reference;
  const std::vector<PplResult> r = perplexity_many(specs, stream, opt);
  size_t best = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    cands[i].score = reference != nullptr ? r[i].kld : r[i].nll;
    if (cands[i].score < cands[best].score) best = i;
  }
  info("kv auto %.3g bits at context %lld: %zu candidates on %lld windows of %s (%s, %.1f s)\n",
       o.kv_auto, static_cast<long long>(t), cands.size(), static_cast<long long>(r[0].windows),
       o.calib.c_str(), reference != nullptr ? "KLD from the float model" : "NLL",
       seconds_since(t0));
  for (size_t i = 0; i < cands.size(); ++i) {
    const KvQuantSettings& k = cands[i].kv;
    info("  %s K4 V%d g%lld w%lld rel8: %.3f bits, %s %.6f\n", i == best ? "*" : " ",
         k.value_bits(), static_cast<long long>(k.group), static_cast<long long>(k.window),
         cands[i].bits, reference != nullptr ? "KLD" : "NLL", cands[i].score);
  }
  p.kv = cands[best].kv;
  p.smoothing = std::move(smoothings[best]);
}

}  // namespace wkvq::cli
