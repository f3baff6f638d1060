// KvCache: the per-session key/value cache of every layer (design.md §2.2). It stores and encodes;
// the attention over what it stores is runtime/attention.h (past-only quantization, the smoothing
// undone inside the dot products).
//
// Storage is paged: positions [b * B, (b + 1) * B) of every layer live in the b-th block the cache
// took from a KvBlockPool (runtime/kv_pool.h: layout, formats), either a pool shared with other
// caches (the server's one budget) or a private one sized for max_tokens. Per position and layer,
// in the pool's format (K after RoPE):
//   bits 32: f32 (kv_dim)   bits 16: fp16 (kv_dim)
//   bits 2/3/4/8: one token record of formats/kv_quant.h for K and for V (V at vbits when the
//                 settings give the values their own bits), holding the smoothed
//                 K~ = (K - dK) / sK and V~ = (V - dV) / sV; with rel8 metadata
//                 (settings.rel8) coded against the smoothing's static group ranges
//                 (KvSmoothing::ranges: the smoothing must carry them)
// attend() stores the chunk's k, v first (taking blocks for them if reserve() did not), then runs
// attend_chunk over the layer, which reads the positions before full_precision_from(...) from the
// store and the rest from the chunk's own full-precision k, v. ChunkAttention::FullPrecisionChunk
// (the default: a prompt chunk) or TeacherForced (a chunk behaves exactly like the same tokens
// decoded one by one: the evaluation's decode modes) is set per cache.
//
// Full-precision window (settings.window = W > 0, int storage): besides its int record, each of the
// W most recent positions of a layer is kept in fp16 (raw K after RoPE and V, unsmoothed) in a ring
// of W slots per layer (position p in slot p % W), and attention reads positions
// [window_from(...), from) from it (runtime/attention.h). Positions are stored in order: a chunk
// starts where the previous one of that layer ended, or at 0 (a new sequence); anything else is an
// error (the ring no longer holds the positions before it). The ring is the cache's own memory,
// not the pool's: window_bytes().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/kv_quant.h"
#include "model/config.h"
#include "model/kv_smoothing.h"
#include "model/kv_store.h"
#include "runtime/attention.h"
#include "runtime/kv_pool.h"

namespace wkvq {

class KvCache final : public KvStore {
 public:
  // Room for `max_tokens` positions of every layer of a model with config `c`, in a private pool
  // of ceil(max_tokens / 32) blocks. `smoothing` (kept by reference, may be null = identity)
  // applies to int storage only.
  KvCache(const LlamaConfig& c, int64_t max_tokens, const KvQuantSettings& settings = {},
          const KvSmoothing* smoothing = nullptr);
  // Up to `max_tokens` positions in blocks of `pool` (which must outlive the cache), taken as the
  // sequence grows. `settings` must describe the pool's storage (bits, group; poq is the cache's).
  KvCache(const LlamaConfig& c, KvBlockPool& pool, int64_t max_tokens,
          const KvQuantSettings& settings, const KvSmoothing* smoothing);
  ~KvCache() override;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Takes blocks for positions [0, n) (n <= max_tokens); false, with nothing taken, when the pool
  // has too few free blocks. Blocks already held stay.
  bool reserve(int64_t n_positions);
  int64_t blocks_held() const { return static_cast<int64_t>(blocks_.size()); }
  // Every block back to the pool: the stored positions are gone (start again at position 0).
  void release();
  // Positions [0, n) of `other` (same storage settings and shape) copied into this cache, its
  // blocks reserved first (an error when the pool lacks them): many sequences at one context
  // without prefilling each (wkvq bench --parallel).
  void copy_prefix(const KvCache& other, int64_t n);

  // Stores k, v of positions [pos0, pos0 + n) (reserving their blocks; the pool being full is a
  // wkvq::Error) and attends (model/kv_store.h).
  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override;

  void set_chunk_attention(ChunkAttention mode) { chunk_mode_ = mode; }
  int64_t max_tokens() const { return max_tokens_; }
  const KvQuantSettings& settings() const { return settings_; }
  const KvBlockPool& pool() const { return *pool_; }
  // Bytes the cache holds per token position (all layers, K and V, scales included).
  int64_t bytes_per_token() const;
  // Stored bits per K/V element (b + 32 / g for int storage; the mean of K's and V's when they
  // differ), the window not counted.
  double bits_per_element() const;
  // Bytes of the full-precision window's rings (all layers, K and V: W * kv_dim * 2 * 2 each).
  int64_t window_bytes() const;
  // What a sequence of `tokens` positions costs per K/V element: the records' bits plus the
  // window's fp16 rings amortised over the positions (bits_per_element() + 16 min(W, tokens) /
  // tokens: the records of the window's positions are kept too).
  double bits_per_element_at(int64_t tokens) const;
  // The attention kernels this cache runs (kernels/kv_attend.h), e.g.
  // "avx512: int4 decode, GQA tiles"; for `bench` and stderr.
  std::string attention_kernel() const;

 private:
  KvCache(const LlamaConfig& c, std::unique_ptr<KvBlockPool> own, KvBlockPool* shared,
          int64_t max_tokens, const KvQuantSettings& settings, const KvSmoothing* smoothing);
  void store(int layer, const float* k, const float* v, int64_t n, int64_t pos0);
  // The record format of `layer`'s K (kv = 0) or V (kv = 1): the pool's, with the layer's static
  // group ranges when the metadata is rel8.
  KvQuantFormat layer_format(int layer, int kv) const;
  // The record of `layer`'s K (kv = 0) or V (kv = 1) at position pos (its block reserved).
  uint8_t* record(int layer, int kv, int64_t pos) const;
  // What attention reads of `layer`: its stored positions and smoothing.
  StoredKvLayer stored_layer(int layer) const;
  // The window's rows for a chunk of n positions from pos0 of `layer`: positions
  // [max(0, pos0 - W), pos0) from the ring, then (when queries read them through the window:
  // teacher-forced, or POQ off) the chunk's k, v rounded to fp16.
  WindowRows window_rows(int layer, const float* k, const float* v, int64_t n, int64_t pos0);
  // The chunk's last min(n, W) positions into the ring.
  void keep_in_window(int layer, const float* k, const float* v, int64_t n, int64_t pos0);
  uint16_t* ring_slot(int layer, int kv, int64_t pos) {
    return ring_.data() +
           ((int64_t{layer} * 2 + kv) * settings_.window + pos % settings_.window) * kv_dim_;
  }

  int n_layers_, n_heads_, n_kv_heads_, head_dim_, kv_dim_;
  int64_t max_tokens_;
  KvQuantSettings settings_;
  const KvSmoothing* smoothing_;
  bool identity_smoothing_ = false;  // (K - 0) / 1: attention has nothing to undo (rel8 ranges
                                     // on an unsmoothed cache)
  ChunkAttention chunk_mode_ = ChunkAttention::FullPrecisionChunk;
  std::unique_ptr<KvBlockPool> own_pool_;  // the private pool of the first constructor
  KvBlockPool* pool_;
  int64_t block_tokens_;
  std::vector<int64_t> blocks_;  // pool ids of blocks 0, 1, ... of this sequence
  // The full-precision window (W = settings_.window > 0): per layer, K then V, W slots of kv_dim
  // fp16 values; ring_end_[layer] is the position after the layer's last stored one.
  std::vector<uint16_t> ring_;
  std::vector<int64_t> ring_end_;
  std::vector<float> window_k_, window_v_;  // window_rows' f32 rows (reused)
};

}  // namespace wkvq
