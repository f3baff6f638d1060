// KvBlockPool: the memory of paged KV caches (issue 14 item 3). A fixed number of blocks, each
// holding `block_tokens` consecutive positions of one sequence for every layer, K and V, in the
// cache's storage format (f32, fp16, or the int-b token records of formats/kv_quant.h). A KvCache
// (runtime/kv_cache.h) takes blocks as its sequence grows and gives them back when released, so
// several sequences share one budget: positions [b * B, (b + 1) * B) of a sequence live in the
// b-th block it took, wherever that block sits in the pool.
//
// Block layout (bytes_per_block, a multiple of 64): for layer l, K records of the B positions,
// then V records, then the next layer:
//   K of layer l at  l * B * (rk + rv),  V at l * B * (rk + rv) + B * rk
// one record per position (rk, rv: the K and V record bytes, kv_dim * 4, kv_dim * 2 or the
// formats' token_bytes; they differ when the values have their own bits, KvQuantSettings::vbits).
//
// The pool must outlive every cache using it. take/give_back are thread-safe (one mutex), so
// sequences on different threads may grow at once; the blocks themselves belong to their cache.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "formats/kv_quant.h"
#include "model/config.h"

namespace wkvq {

class KvBlockPool {
 public:
  // As many blocks as fit in `budget_bytes` (at least one: a budget below one block is an error
  // naming both sizes). `kv` is normalised as KvCache does (group 0 = head_dim) and validated.
  KvBlockPool(const LlamaConfig& c, const KvQuantSettings& kv, int64_t budget_bytes,
              int block_tokens = 32);
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  int block_tokens() const { return block_tokens_; }
  int64_t total_blocks() const { return total_blocks_; }
  int64_t free_blocks() const;
  int64_t bytes_per_block() const { return bytes_per_block_; }
  int64_t tokens_capacity() const { return total_blocks_ * block_tokens_; }
  // bytes_per_block() of a pool with these arguments (for sizing a budget).
  static int64_t block_bytes(const LlamaConfig& c, const KvQuantSettings& kv, int block_tokens);

  // The storage every cache of this pool uses (normalised settings), its shape and records.
  const KvQuantSettings& settings() const { return settings_; }
  // The int record format of K (kv = 0) or V (kv = 1); int storage only.
  const KvQuantFormat& format(int kv) const { return format_[kv]; }
  int n_layers() const { return n_layers_; }
  int kv_dim() const { return kv_dim_; }
  // Bytes of one position's K (kv = 0) or V (kv = 1) record.
  int64_t record_bytes(int kv) const { return record_bytes_[kv]; }

  // Appends `n` free block ids to `ids` and returns true, or returns false and changes nothing
  // when fewer than n are free.
  bool take(int64_t n, std::vector<int64_t>& ids);
  // Returns blocks taken before (each once).
  void give_back(const std::vector<int64_t>& ids);

  // Start of the K (or V) records of `layer` in the pool's block 0; block id's are
  // bytes_per_block() further per id.
  uint8_t* k_base(int layer) const { return data_.get() + layer_offset(layer, 0); }
  uint8_t* v_base(int layer) const { return data_.get() + layer_offset(layer, 1); }

 private:
  int64_t layer_offset(int layer, int kv) const {
    return (int64_t{layer} * (record_bytes_[0] + record_bytes_[1]) + kv * record_bytes_[0]) *
           block_tokens_;
  }
  struct AlignedFree {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };

  int n_layers_, kv_dim_, block_tokens_;
  KvQuantSettings settings_;
  KvQuantFormat format_[2] = {};  // K, V
  int64_t record_bytes_[2] = {};  // K, V
  int64_t bytes_per_block_ = 0, total_blocks_ = 0;
  std::unique_ptr<uint8_t[], AlignedFree> data_;  // total_blocks * bytes_per_block, untouched
  mutable std::mutex mu_;                         // guards free_
  std::vector<int64_t> free_;                     // free block ids (a stack)
};

// Bytes of one position of one layer's K (or V) in the storage `kv` describes (kv normalised).
int64_t kv_record_bytes(const KvQuantSettings& kv, int kv_dim, const KvQuantFormat& format);

}  // namespace wkvq
