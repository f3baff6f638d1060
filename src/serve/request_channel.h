// What passes between an HTTP handler thread and the scheduler for one request: the text the
// scheduler produces, piece by piece, then the end (finish reason and token counts); and, the
// other way, a cancel flag (the client went away). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace wkvq::serve {

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

class RequestChannel {
 public:
  // Scheduler side.
  void push(const std::string& text);
  // finish_reason: "stop", "length", "cancelled"; error: non-empty when the request failed.
  void finish(const std::string& finish_reason, const Usage& usage, const std::string& error = "");

  // Handler side: waits up to `timeout` for text or the end; returns the pieces pushed so far
  // (taken; one per generated token) and sets `ended` when the request is over (then
  // finish_reason(), usage(), error() are set).
  std::vector<std::string> take(std::chrono::milliseconds timeout, bool& ended);
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  const std::string& finish_reason() const { return finish_reason_; }
  const Usage& usage() const { return usage_; }
  const std::string& error() const { return error_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> pieces_;
  bool ended_ = false;
  std::string finish_reason_, error_;
  Usage usage_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace wkvq::serve
