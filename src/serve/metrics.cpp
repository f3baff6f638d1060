#include "serve/metrics.h"

#include <cstdio>

namespace wkvq::serve {

namespace {

void add(std::string& out, const char* name, const char* type, const char* help, double value) {
  char line[512];
  std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                name, value);
  out += line;
}

}  // namespace

std::string Metrics::render() const {
  std::string o;
  const auto d = [](const std::atomic<int64_t>& v) { return static_cast<double>(v.load()); };
  add(o, "wkvq_requests_total", "counter", "Completion and chat requests accepted.", d(requests));
  add(o, "wkvq_requests_rejected_total", "counter", "Requests answered 429 (queue full).",
      d(rejected));
  add(o, "wkvq_client_errors_total", "counter", "Requests answered with another 4xx.",
      d(client_errors));
  add(o, "wkvq_sequences_cancelled_total", "counter", "Sequences ended by a client disconnect.",
      d(cancelled));
  add(o, "wkvq_prompt_tokens_total", "counter", "Prompt tokens prefilled.", d(prompt_tokens));
  add(o, "wkvq_generated_tokens_total", "counter", "Tokens generated.", d(generated_tokens));
  add(o, "wkvq_active_sequences", "gauge", "Sequences being prefilled or decoded.", d(active));
  add(o, "wkvq_active_sequences_peak", "gauge", "Most sequences batched in one step so far.",
      d(active_peak));
  add(o, "wkvq_queued_sequences", "gauge", "Requests waiting for a slot or KV blocks.", d(queued));
  add(o, "wkvq_kv_blocks_in_use", "gauge", "KV blocks held by sequences.", d(kv_blocks_used));
  add(o, "wkvq_kv_blocks_total", "gauge", "KV blocks of the budget.", d(kv_blocks_total));
  const double bpb = d(kv_bytes_per_block);
  add(o, "wkvq_kv_bytes_in_use", "gauge", "KV bytes held by sequences.", d(kv_blocks_used) * bpb);
  add(o, "wkvq_kv_bytes_free", "gauge", "KV bytes free in the budget.",
      (d(kv_blocks_total) - d(kv_blocks_used)) * bpb);
  add(o, "wkvq_decode_tokens_per_second", "gauge",
      "Tokens generated per second over the last decode steps.", decode_tok_s.load());
  return o;
}

}  // namespace wkvq::serve
