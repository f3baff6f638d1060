// The server's counters and gauges, rendered for GET /metrics in Prometheus' text format.
// Written by the scheduler and the HTTP handlers, read by /metrics: all atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace wkvq::serve {

struct Metrics {
  std::atomic<int64_t> requests{0};          // completions and chat requests answered
  std::atomic<int64_t> rejected{0};          // 429: the queue was full
  std::atomic<int64_t> client_errors{0};     // other 4xx answers
  std::atomic<int64_t> cancelled{0};         // sequences ended by a client disconnect
  std::atomic<int64_t> prompt_tokens{0};     // prefilled
  std::atomic<int64_t> generated_tokens{0};  // sampled
  std::atomic<int64_t> active{0};            // sequences being prefilled or decoded
  std::atomic<int64_t> active_peak{0};       // most sequences in one decode step so far
  std::atomic<int64_t> queued{0};            // waiting for a slot or KV blocks
  std::atomic<int64_t> kv_blocks_used{0};
  std::atomic<int64_t> kv_blocks_total{0};
  std::atomic<int64_t> kv_bytes_per_block{0};
  std::atomic<double> decode_tok_s{0.0};  // over the last seconds of decode steps

  std::string render() const;
};

}  // namespace wkvq::serve
