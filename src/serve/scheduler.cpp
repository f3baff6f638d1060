#include "serve/scheduler.h"

#include <algorithm>

#include "core/error.h"
#include "core/parallel.h"
#include "runtime/sampler.h"
#include "runtime/utf8_stream.h"
#include "serve/stop_matcher.h"

namespace wkvq::serve {

using Clock = std::chrono::steady_clock;

// One admitted request: its cache, sampler and the text state of what it generated.
struct Scheduler::Sequence {
  GenerationRequest req;
  KvCache kv;
  Sampler sampler;
  std::vector<int> tokens;  // the prompt, then each generated token once it is to be fed
  int64_t fed = 0;          // tokens in the cache
  int64_t generated = 0;
  int64_t commit = 0;  // blocks promised at admission
  Utf8Stream utf8;
  StopMatcher stop;
  bool done = false;

  Sequence(GenerationRequest r, const Model& m, KvBlockPool& pool, const SchedulerOptions& o,
           int64_t blocks)
      : req(std::move(r)),
        kv(m.config, pool, static_cast<int64_t>(req.prompt.size()) + req.max_tokens, o.kv,
           o.smoothing),
        sampler(m.config.vocab_size, req.temperature, req.top_p, req.seed),
        tokens(req.prompt),
        commit(blocks),
        stop(req.stop) {}
  bool prefilling() const { return fed < static_cast<int64_t>(req.prompt.size()); }
  Usage usage() const { return {static_cast<int64_t>(req.prompt.size()), generated}; }
};

Scheduler::Scheduler(const Model& m, const SchedulerOptions& o, Metrics& metrics)
    : model_(m),
      opt_(o),
      metrics_(metrics),
      pool_(m.config, o.kv, o.kv_budget_bytes, o.block_tokens) {
  if (opt_.smoothing == nullptr && m.kv_smoothing.n_layers > 0) opt_.smoothing = &m.kv_smoothing;
  WKVQ_REQUIRE(o.parallel >= 1 && o.queue >= 0 && o.prefill_chunk >= 1,
               "scheduler: --parallel and --prefill-chunk must be >= 1, --queue >= 0");
  metrics_.kv_blocks_total = pool_.total_blocks();
  metrics_.kv_bytes_per_block = pool_.bytes_per_block();
  // OpenMP's thread count is per thread: the scheduler's forward runs with the creator's.
  thread_ = std::thread([this, threads = num_threads()] {
    set_num_threads(threads);
    run();
  });
}

Scheduler::~Scheduler() {
  if (thread_.joinable()) shutdown(std::chrono::milliseconds(0));
}

Scheduler::Submit Scheduler::submit(GenerationRequest r) {
  WKVQ_ASSERT(!r.prompt.empty() && r.max_tokens >= 1 && r.channel && r.tok);
  const int64_t len = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
  if (blocks_for(len) > pool_.total_blocks()) return Submit::TooLarge;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Submit::ShuttingDown;
    // room: the free slots (taken at the next step) and the queue behind them
    const int64_t free_slots = std::max<int64_t>(0, opt_.parallel - metrics_.active.load());
    if (static_cast<int64_t>(waiting_.size()) >= opt_.queue + free_slots) return Submit::QueueFull;
    waiting_.push_back(std::move(r));
    metrics_.queued = static_cast<int64_t>(waiting_.size());
  }
  cv_.notify_all();
  return Submit::Accepted;
}

void Scheduler::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) deadline_ = Clock::now() + grace;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::finish(Sequence& s, const std::string& reason, const std::string& error) {
  if (!s.stop.matched()) {  // what was held back (a partial character, a partial stop string)
    s.req.channel->push(s.stop.push(printable_text(s.utf8.flush())));
    if (!s.stop.matched()) s.req.channel->push(s.stop.flush());
  }
  s.req.channel->finish(reason, s.usage(), error);
  s.kv.release();
  committed_ -= s.commit;
  s.done = true;
}

void Scheduler::admit() {
  std::vector<std::pair<GenerationRequest, int64_t>> admitted;  // and its blocks
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (active_.size() + admitted.size() < static_cast<size_t>(opt_.parallel) &&
           !waiting_.empty()) {
      GenerationRequest& r = waiting_.front();
      if (r.channel->cancelled()) {
        r.channel->finish("cancelled", {});
        ++metrics_.cancelled;
        waiting_.pop_front();
        continue;
      }
      const int64_t need = blocks_for(static_cast<int64_t>(r.prompt.size()) + r.max_tokens);
      if (committed_ + need > pool_.total_blocks()) break;  // waits for blocks
      committed_ += need;
      admitted.emplace_back(std::move(r), need);
      waiting_.pop_front();
    }
    metrics_.queued = static_cast<int64_t>(waiting_.size());
  }
  for (auto& [r, blocks] : admitted) {
    active_.push_back(std::make_unique<Sequence>(std::move(r), model_, pool_, opt_, blocks));
  }
}

// The next token of `s` from its logits: an end token, a stop string or max_tokens end it.
void Scheduler::sample_next(Sequence& s, const float* logits) {
  const int next = s.sampler.sample(logits);
  const Tokenizer& tok = *s.req.tok;
  const std::vector<int>& stop_ids = s.req.stop_ids;
  if (next == tok.bos_id() || next == tok.eos_id() || next == model_.config.bos_id ||
      std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) {
    finish(s, "stop");
    return;
  }
  ++s.generated;
  ++metrics_.generated_tokens;
  // An id past the tokenizer's vocabulary is a padding row of the embedding: it has no text.
  if (next < tok.vocab_size()) {
    const std::string piece = s.utf8.push(tok.decode_piece(s.tokens.back(), next));
    s.req.channel->push(s.stop.push(printable_text(piece)));
  }
  if (s.stop.matched()) {
    finish(s, "stop");
  } else if (s.generated >= s.req.max_tokens) {
    finish(s, "length");
  } else {
    s.tokens.push_back(next);
  }
}

// One batched forward over every active sequence; false when there was none.
bool Scheduler::step() {
  for (auto& s : active_) {
    if (s->req.channel->cancelled()) {
      ++metrics_.cancelled;
      finish(*s, "cancelled");
    }
  }
  std::erase_if(active_, [](const auto& s) { return s->done; });
  if (active_.empty()) return false;

  std::vector<BatchSeq> batch;
  std::vector<Sequence*> owner;
  int64_t prefill_left = opt_.prefill_chunk, n_logits = 0, decode_rows = 0;
  for (auto& sp : active_) {
    Sequence& s = *sp;
    const int64_t pending = static_cast<int64_t>(s.tokens.size()) - s.fed;
    const int64_t n = s.prefilling() ? std::min(pending, prefill_left) : 1;
    if (n == 0) continue;
    if (s.prefilling()) prefill_left -= n;
    WKVQ_REQUIRE(s.kv.reserve(s.fed + n), "KV blocks promised to a sequence are not free");
    const bool last = s.fed + n == static_cast<int64_t>(s.tokens.size());
    batch.push_back({s.tokens.data() + s.fed, n, s.fed, &s.kv, last});
    owner.push_back(&s);
    n_logits += last ? 1 : 0;
    decode_rows += s.prefilling() ? 0 : 1;
  }
  logits_.resize(static_cast<size_t>(n_logits * model_.config.vocab_size));
  forward_batch(model_, batch, scratch_, logits_.data());
  metrics_.active_peak = std::max(metrics_.active_peak.load(), static_cast<int64_t>(batch.size()));
  publish_gauges();  // the blocks taken show before any client sees this step's text
  int64_t k = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence& s = *owner[i];
    if (s.prefilling()) metrics_.prompt_tokens += batch[i].n;
    s.fed += batch[i].n;
    if (batch[i].logits) sample_next(s, logits_.data() + (k++) * model_.config.vocab_size);
  }
  std::erase_if(active_, [](const auto& s) { return s->done; });
  recent_.emplace_back(Clock::now(), decode_rows);
  return true;
}

void Scheduler::publish_gauges() {
  const auto now = Clock::now();
  while (!recent_.empty() && now - recent_.front().first > std::chrono::seconds(5)) {
    recent_.pop_front();
  }
  int64_t tokens = 0;
  for (const auto& r : recent_) tokens += r.second;
  const double span =
      recent_.size() < 2
          ? 0.0
          : std::chrono::duration<double>(recent_.back().first - recent_.front().first).count();
  metrics_.decode_tok_s =
      span > 0.0 ? static_cast<double>(tokens - recent_.front().second) / span : 0.0;
  metrics_.active = static_cast<int64_t>(active_.size());
  metrics_.kv_blocks_used = pool_.total_blocks() - pool_.free_blocks();
}

void Scheduler::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_ && Clock::now() >= deadline_) {  // the grace period is over: cancel the rest
        for (GenerationRequest& r : waiting_) r.channel->cancel();
        for (auto& s : active_) s->req.channel->cancel();
      }
      if (active_.empty() && waiting_.empty()) {
        if (stopping_) break;
        cv_.wait_for(lock, std::chrono::seconds(1));
      }
    }
    admit();
    try {
      step();
    } catch (const std::exception& e) {
      for (auto& s : active_) finish(*s, "error", e.what());
      active_.clear();
    }
    publish_gauges();
  }
  publish_gauges();
}

}  // namespace wkvq::serve
