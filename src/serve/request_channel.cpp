#include "serve/request_channel.h"

namespace wkvq::serve {

void RequestChannel::push(const std::string& text) {
  if (text.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pieces_.push_back(text);
  }
  cv_.notify_all();
}

void RequestChannel::finish(const std::string& finish_reason, const Usage& usage,
                            const std::string& error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    finish_reason_ = finish_reason;
    usage_ = usage;
    error_ = error;
    ended_ = true;
  }
  cv_.notify_all();
}

std::vector<std::string> RequestChannel::take(std::chrono::milliseconds timeout, bool& ended) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return ended_ || !pieces_.empty(); });
  std::vector<std::string> out;
  out.swap(pieces_);
  ended = ended_;
  return out;
}

}  // namespace wkvq::serve
