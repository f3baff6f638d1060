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
  if (kv.quantized()) kv.vbits = kv.value_bits();
  return kv;
}

// The record format of K (kv = 0) or V (kv = 1).
KvQuantFormat format_of(const LlamaConfig& c, const KvQuantSettings& kv, int which) {
  if (!kv.quantized()) return KvQuantFormat{};
  return make_kv_format(c.kv_dim(), kv.group, which == 0 ? kv.key_bits() : kv.value_bits(),
                        kv.rel8);
}

int64_t raw_block_bytes(const LlamaConfig& c, const KvQuantSettings& kv, int block_tokens) {
  const int64_t per_position = kv_record_bytes(kv, c.kv_dim(), format_of(c, kv, 0)) +
                               kv_record_bytes(kv, c.kv_dim(), format_of(c, kv, 1));
  const int64_t raw = int64_t{c.n_layers} * block_tokens * per_position;
  return (raw + 63) / 64 * 64;
}

}  // namespace

int64_t KvBlockPool::block_bytes(const LlamaConfig& c, const KvQuantSettings& kv,
                                 int block_tokens) {
  return raw_block_bytes(c, normalised(c, kv), block_tokens);
}

KvBlockPool::KvBlockPool(const LlamaConfig& c, const KvQuantSettings& kv, int64_t budget_bytes,
                         int block_tokens)
    : n_layers_(c.n_layers), kv_dim_(c.kv_dim()), block_tokens_(block_tokens), settings_(kv) {
  WKVQ_REQUIRE(block_tokens > 0, "KV pool: blocks of ", block_tokens,
               " positions; need at least 1");
  WKVQ_REQUIRE(n_layers_ > 0 && kv_dim_ > 0, "KV pool: model shape ", n_layers_, " layers x ",
               kv_dim_, " KV channels; need both positive");
  settings_ = normalised(c, kv);
  for (int which = 0; which < 2; ++which) {
    format_[which] = format_of(c, settings_, which);
    record_bytes_[which] = kv_record_bytes(settings_, kv_dim_, format_[which]);
  }
  bytes_per_block_ = raw_block_bytes(c, settings_, block_tokens_);
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
