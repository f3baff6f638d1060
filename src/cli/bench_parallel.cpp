#include "cli/bench_parallel.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>

#include "cli/common.h"
#include "cli/console.h"
#include "core/error.h"
#include "model/batch_forward.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"

namespace wkvq::cli {

namespace {

struct Row {
  int n = 0;
  double step_s = 0;  // one batched decode step
};

// `decode` batched steps of the n sequences, each continuing from a copy of `prefilled`'s first
// `context` positions.
Row run_steps(const Model& m, const KvCache& prefilled, const KvSmoothing* smoothing, int first,
              int context, int decode, int n) {
  std::vector<std::unique_ptr<KvCache>> caches;
  for (int i = 0; i < n; ++i) {
    caches.push_back(std::make_unique<KvCache>(m.config, prefilled.max_tokens(),
                                               prefilled.settings(), smoothing));
    caches.back()->copy_prefix(prefilled, context);
  }
  std::vector<int> tokens(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) tokens[static_cast<size_t>(i)] = (first + i) % m.config.vocab_size;
  BatchScratch scratch;
  std::vector<float> logits(static_cast<size_t>(n) * m.config.vocab_size);
  std::vector<BatchSeq> batch(static_cast<size_t>(n));
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < decode; ++step) {
    for (int i = 0; i < n; ++i) {
      batch[static_cast<size_t>(i)] = {&tokens[static_cast<size_t>(i)], 1, context + step,
                                       caches[static_cast<size_t>(i)].get(), true};
    }
    forward_batch(m, batch, scratch, logits.data());
    for (int i = 0; i < n; ++i) {
      tokens[static_cast<size_t>(i)] =
          argmax(logits.data() + static_cast<size_t>(i) * m.config.vocab_size, m.config.vocab_size);
    }
  }
  return {n, seconds_since(t0) / decode};
}

}  // namespace

nlohmann::json bench_parallel(const PreparedModel& p, const std::vector<int>& parallel, int context,
                              int decode, uint64_t seed, bool json) {
  const Model& m = p.model;
  const LlamaConfig& c = m.config;
  WKVQ_REQUIRE(context + decode <= c.seq_len, "--prefill + --decode (", context + decode,
               ") exceeds the model context of ", c.seq_len);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_int_distribution<int> pick(0, c.vocab_size - 1);
  std::vector<int> prompt(static_cast<size_t>(context));
  for (int& t : prompt) t = pick(rng);
  // the smoothing as Session picks it: the given one, else the model's own
  const KvSmoothing* smoothing = p.smoothing_or_null() != nullptr ? p.smoothing_or_null()
                                 : m.kv_smoothing.n_layers > 0    ? &m.kv_smoothing
                                                                  : nullptr;
  KvCache cache(c, context + decode, p.kv, smoothing);
  ForwardScratch fs;
  const auto t0 = std::chrono::steady_clock::now();
  forward(m, prompt.data(), context, 0, cache, fs, LogitsFor::None, nullptr, GemmUse::Prompt);
  const double prefill_s = seconds_since(t0);
  info("prefilled %d tokens once in %.1f s (copied to every sequence)\n", context, prefill_s);

  KvQuantSettings fp16;  // the fp16 cache the ratio is against (no group, window or value bits)
  fp16.bits = 16;
  const int64_t per_token = cache.bytes_per_token();
  const int64_t fp16_per_token = KvCache(c, 1, fp16).bytes_per_token();
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    std::printf("%s, context %d, %d decode steps\n", p.describe().c_str(), context, decode);
    std::printf("%4s %12s %16s %14s %18s %22s\n", "N", "step ms", "aggregate tok/s", "KV MiB used",
                "fp16 KV MiB", "tokens in fp16's MiB");
  }
  for (const int n : parallel) {
    const Row r = run_steps(m, cache, smoothing, prompt.back(), context, decode, n);
    const double kv_bytes = static_cast<double>(per_token) * n * (context + decode);
    const double fp16_bytes = static_cast<double>(fp16_per_token) * n * (context + decode);
    const auto tokens_same = static_cast<int64_t>(fp16_bytes / static_cast<double>(per_token));
    rows.push_back({{"parallel", n},
                    {"context", context},
                    {"step_ms", r.step_s * 1e3},
                    {"per_sequence_ms_per_token", r.step_s * 1e3},
                    {"aggregate_decode_tok_s", n / r.step_s},
                    {"kv_bytes", kv_bytes},
                    {"fp16_kv_bytes", fp16_bytes},
                    {"tokens_in_fp16_budget", tokens_same}});
    if (!json) {
      std::printf("%4d %12.1f %16.2f %14.1f %18.1f %22lld\n", n, r.step_s * 1e3, n / r.step_s,
                  kv_bytes / 1048576.0, fp16_bytes / 1048576.0,
                  static_cast<long long>(tokens_same));
      std::fflush(stdout);
    }
  }
  return {{"quantization", p.describe()},
          {"kv_bytes_per_token", per_token},
          {"fp16_kv_bytes_per_token", fp16_per_token},
          {"prefill_s", prefill_s},
          {"parallel", rows}};
}

}  // namespace wkvq::cli
