// Continuous batching (design.md §4, serve): one thread runs every admitted sequence through the
// model. Each step is one batched forward (model/batch_forward.h): the one new token of every
// decoding sequence plus prompt chunks of sequences being prefilled (at most prefill_chunk prompt
// tokens per step, so a long prompt does not stall the others), reading the weights once.
// Sequences join and leave at token boundaries. Each has its own KV cache with the model's
// settings: a prompt chunk attends to itself in full precision and to earlier chunks through the
// cache, a decode step to its own token in full precision (POQ, design.md §2.2), exactly as a
// single-sequence Session does.
//
// KV memory: one KvBlockPool (runtime/kv_pool.h) of --kv-budget bytes; each sequence's KvCache
// takes blocks from it as it grows and gives them back when it ends or is cancelled. A request
// commits the blocks of its largest length (prompt + max_tokens) when it is admitted, so a
// running sequence never finds the pool empty; a request waits in a bounded queue until a slot
// (--parallel) and its blocks are free; beyond the queue, submit() refuses it (the server
// answers 429).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/batch_forward.h"
#include "model/model.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_pool.h"
#include "runtime/tokenizer.h"
#include "serve/metrics.h"
#include "serve/request_channel.h"

namespace wkvq::serve {

struct GenerationRequest {
  std::vector<int> prompt;   // >= 1 token
  int64_t max_tokens = 16;   // tokens to generate at most (prompt + max_tokens <= context)
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;   // stop strings
  std::vector<int> stop_ids;       // besides the tokenizer's BOS/EOS (a chat's end of turn)
  const Tokenizer* tok = nullptr;  // decodes the generated ids
  std::shared_ptr<RequestChannel> channel;
};

struct SchedulerOptions {
  int parallel = 4;             // sequences decoded together at most
  int queue = 16;               // requests waiting at most, besides those a free slot takes
  int64_t prefill_chunk = 256;  // prompt tokens per step, over all sequences
  int64_t kv_budget_bytes = 0;
  int block_tokens = 32;
  KvQuantSettings kv;
  const KvSmoothing* smoothing = nullptr;  // null: the model's own, if any (as Session)
};

class Scheduler {
 public:
  Scheduler(const Model& m, const SchedulerOptions& o, Metrics& metrics);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Submit { Accepted, QueueFull, ShuttingDown, TooLarge };
  Submit submit(GenerationRequest r);
  // Stops accepting; sequences in flight finish, until `grace` has passed, then the rest are
  // cancelled (finish reason "cancelled"). Returns when the scheduler thread has ended.
  void shutdown(std::chrono::milliseconds grace);
  const KvBlockPool& pool() const { return pool_; }

 private:
  struct Sequence;
  void run();
  void admit();
  bool step();
  void finish(Sequence& s, const std::string& reason, const std::string& error = "");
  void sample_next(Sequence& s, const float* logits);
  void publish_gauges();
  int64_t blocks_for(int64_t positions) const {
    return (positions + pool_.block_tokens() - 1) / pool_.block_tokens();
  }

  const Model& model_;
  SchedulerOptions opt_;
  Metrics& metrics_;
  KvBlockPool pool_;
  int64_t committed_ = 0;  // blocks promised to admitted sequences

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationRequest> waiting_;  // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
  std::chrono::steady_clock::time_point deadline_;

  std::list<std::unique_ptr<Sequence>> active_;  // the scheduler thread's own
  BatchScratch scratch_;
  std::vector<float> logits_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> recent_;  // decode rate
  std::thread thread_;
};

}  // namespace wkvq::serve
