#include "serve/kv_budget.h"

#include "core/error.h"

namespace wkvq::serve {

int64_t kv_bytes_per_token(const LlamaConfig& c, const KvQuantSettings& kv) {
  return KvCache(c, 1, kv).bytes_per_token();
}

KvBlockBudget::KvBlockBudget(const LlamaConfig& c, const KvQuantSettings& kv, int64_t budget_bytes,
                             int block_tokens)
    : block_tokens_(block_tokens),
      bytes_per_block_(kv_bytes_per_token(c, kv) * block_tokens),
      total_(0) {
  WKVQ_REQUIRE(block_tokens > 0, "KV blocks need at least one position, got ", block_tokens);
  total_ = budget_bytes / bytes_per_block_;
  WKVQ_REQUIRE(total_ > 0, "the KV budget of ", budget_bytes, " bytes holds no block of ",
               block_tokens, " positions (", bytes_per_block_,
               " bytes); give a larger --kv-budget");
}

bool KvBlockBudget::take(int64_t n) {
  if (used_.load() + n > total_) return false;
  used_ += n;
  return true;
}

void KvBlockBudget::give(int64_t n) {
  WKVQ_ASSERT(n <= used_.load());
  used_ -= n;
}

SequenceKv::SequenceKv(const LlamaConfig& c, KvBlockBudget& budget, int64_t max_tokens,
                       const KvQuantSettings& kv, const KvSmoothing* smoothing)
    : budget_(budget), cache_(std::make_unique<KvCache>(c, max_tokens, kv, smoothing)) {}

bool SequenceKv::reserve(int64_t n_positions) {
  WKVQ_REQUIRE(n_positions <= cache_->max_tokens(), "KV reserve: ", n_positions,
               " positions asked, the sequence has room for ", cache_->max_tokens());
  const int64_t need = budget_.blocks_for(n_positions) - held_;
  if (need <= 0) return true;
  if (!budget_.take(need)) return false;
  held_ += need;
  return true;
}

void SequenceKv::release() {
  budget_.give(held_);
  held_ = 0;
}

}  // namespace wkvq::serve
