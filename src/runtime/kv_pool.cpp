#include "runtime/kv_pool.h"

#include "core/error.h"

namespace wkvq {

int64_t kv_record_bytes(const KvQuantSettings& kv, int kv_dim, const KvQuantFormat& format) {
  if (kv.bits == 32) return int64_t{kv_dim} * 4;
  if (kv.bits == 16) return int64_t{kv_dim} * 2;
  return format.token_bytes;
}

namespace {

KvQuantSettings normalised(const LlamaConfig& c, KvQuantSettings kv) {
  validate_kv_settings(kv, c.kv_dim());
  if (kv.group == 0) kv.group = c.head_dim;
  return kv;
}

KvQuantFormat format_of(const LlamaConfig& c, const KvQuantSettings& kv) {
  return kv.quantized() ? make_kv_format(c.kv_dim(), kv.group, kv.bits) : KvQuantFormat{};
}

int64_t raw_block_bytes(const LlamaConfig& c, const KvQuantSettings& kv, const KvQuantFormat& f,
                        int block_tokens) {
  const int64_t raw = 2 * int64_t{c.n_layers} * block_tokens * kv_record_bytes(kv, c.kv_dim(), f);
  return (raw + 63) / 64 * 64;
}

}  // namespace

int64_t KvBlockPool::block_bytes(const LlamaConfig& c, const KvQuantSettings& kv,
                                 int block_tokens) {
  const KvQuantSettings n = normalised(c, kv);
  return raw_block_bytes(c, n, format_of(c, n), block_tokens);
}

KvBlockPool::KvBlockPool(const LlamaConfig& c, const KvQuantSettings& kv, int64_t budget_bytes,
                         int block_tokens)
    : n_layers_(c.n_layers), kv_dim_(c.kv_dim()), block_tokens_(block_tokens), settings_(kv) {
  WKVQ_REQUIRE(block_tokens > 0, "KV pool: blocks of ", block_tokens,
               " positions; need at least 1");
  WKVQ_REQUIRE(n_layers_ > 0 && kv_dim_ > 0, "KV pool: model shape ", n_layers_, " layers x ",
               kv_dim_, " KV channels; need both positive");
  settings_ = normalised(c, kv);
  format_ = format_of(c, settings_);
  record_bytes_ = kv_record_bytes(settings_, kv_dim_, format_);
  bytes_per_block_ = raw_block_bytes(c, settings_, format_, block_tokens_);
  total_blocks_ = budget_bytes / bytes_per_block_;
  WKVQ_REQUIRE(total_blocks_ >= 1, "KV pool: a budget of ", budget_bytes,
               " bytes holds no block (one block of ", block_tokens_, " positions takes ",
               bytes_per_block_, " bytes); raise the budget");
  const auto bytes = static_cast<size_t>(total_blocks_ * bytes_per_block_);
  // Raw storage: pages are touched (and count in RSS) only when a cache writes them.
  data_.reset(static_cast<uint8_t*>(::operator new[](bytes, std::align_val_t{64})));
  free_.resize(static_cast<size_t>(total_blocks_));
  // a stack popped from the back: blocks are handed out in increasing order at first
  for (int64_t i = 0; i < total_blocks_; ++i) free_[static_cast<size_t>(i)] = total_blocks_ - 1 - i;
}

int64_t KvBlockPool::free_blocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(free_.size());
}

bool KvBlockPool::take(int64_t n, std::vector<int64_t>& ids) {
  WKVQ_REQUIRE(n >= 0, "KV pool: asked for ", n, " blocks");
  std::lock_guard<std::mutex> lock(mu_);
  if (n > static_cast<int64_t>(free_.size())) return false;
  ids.reserve(ids.size() + static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    ids.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvBlockPool::give_back(const std::vector<int64_t>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  WKVQ_REQUIRE(free_.size() + ids.size() <= static_cast<size_t>(total_blocks_),
               "KV pool: ", ids.size(), " blocks given back to a pool of ", total_blocks_, " with ",
               free_.size(), " free (a block returned twice?)");
  for (const int64_t id : ids) {
    WKVQ_REQUIRE(id >= 0 && id < total_blocks_, "KV pool: block ", id, " is not in the pool");
    free_.push_back(id);
  }
}

}  // namespace wkvq
