// The server's KV memory, in fixed-size blocks of `block_tokens` positions (all layers, K and V,
// in the cache's format) from one budget (--kv-budget). This is the API of the paged KV pool
// (runtime/kv_pool.h, KvBlockPool) that the scheduler is written against: KvBlockBudget counts
// the blocks, SequenceKv is one sequence's cache taking blocks as it grows. Until the paged pool
// is merged, SequenceKv keeps an ordinary KvCache of the sequence's largest length and the budget
// only counts (the memory is allocated per sequence when it starts, freed when it ends); with the
// pool, the two classes become thin wrappers of KvBlockPool and KvCache(pool, ...).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "formats/kv_quant.h"
#include "model/config.h"
#include "model/kv_smoothing.h"
#include "runtime/kv_cache.h"

namespace wkvq::serve {

class KvBlockBudget {
 public:
  // Throws when the budget holds less than one block.
  KvBlockBudget(const LlamaConfig& c, const KvQuantSettings& kv, int64_t budget_bytes,
                int block_tokens = 32);
  int block_tokens() const { return block_tokens_; }
  int64_t total_blocks() const { return total_; }
  int64_t free_blocks() const { return total_ - used_.load(); }
  int64_t bytes_per_block() const { return bytes_per_block_; }
  int64_t tokens_capacity() const { return total_ * block_tokens_; }
  // Blocks for n positions.
  int64_t blocks_for(int64_t n_positions) const {
    return (n_positions + block_tokens_ - 1) / block_tokens_;
  }
  // Takes n blocks: false (nothing taken) when fewer are free. One thread takes and gives (the
  // scheduler); others may read the counts.
  bool take(int64_t n);
  void give(int64_t n);

 private:
  int block_tokens_;
  int64_t bytes_per_block_, total_;
  std::atomic<int64_t> used_{0};
};

// Bytes one position of a cache with these settings holds (all layers, K and V).
int64_t kv_bytes_per_token(const LlamaConfig& c, const KvQuantSettings& kv);

// One sequence's KV cache (room for max_tokens positions) with blocks from `budget`.
class SequenceKv {
 public:
  SequenceKv(const LlamaConfig& c, KvBlockBudget& budget, int64_t max_tokens,
             const KvQuantSettings& kv, const KvSmoothing* smoothing);
  ~SequenceKv() { release(); }
  SequenceKv(const SequenceKv&) = delete;
  SequenceKv& operator=(const SequenceKv&) = delete;

  // Holds blocks for positions [0, n); false (no change) when the budget lacks them.
  bool reserve(int64_t n_positions);
  int64_t blocks_held() const { return held_; }
  // Blocks back to the budget.
  void release();
  KvCache& cache() { return *cache_; }

 private:
  KvBlockBudget& budget_;
  std::unique_ptr<KvCache> cache_;
  int64_t held_ = 0;
};

}  // namespace wkvq::serve
