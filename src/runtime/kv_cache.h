// KvCache: the per-session key/value cache of every layer (design.md §2.2). It stores and encodes;
// the attention over what it stores is runtime/attention.h (past-only quantization, the smoothing
// undone inside the dot products).
//
// Storage, per layer and position (K after RoPE):
//   bits 32: f32 (layer, pos, kv_dim)           bits 16: fp16, same shape
//   bits 2/3/4/8: one token record of formats/kv_quant.h per (layer, pos) for K and for V,
//                 holding the smoothed K~ = (K - dK) / sK and V~ = (V - dV) / sV
// attend() stores the chunk's k, v first, then runs attend_chunk over the layer, which reads the
// positions before full_precision_from(...) from the store and the rest from the chunk's own
// full-precision k, v. ChunkAttention::FullPrecisionChunk (the default: a prompt chunk) or
// TeacherForced (a chunk behaves exactly like the same tokens decoded one by one: the
// evaluation's decode modes) is set per cache.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/kv_quant.h"
#include "model/config.h"
#include "model/kv_smoothing.h"
#include "model/kv_store.h"
#include "runtime/attention.h"

namespace wkvq {

class KvCache final : public KvStore {
 public:
  // Room for `max_tokens` positions of every layer of a model with config `c`. `smoothing` (kept
  // by reference, may be null = identity) applies to int storage only.
  KvCache(const LlamaConfig& c, int64_t max_tokens, const KvQuantSettings& settings = {},
          const KvSmoothing* smoothing = nullptr);

  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override;

  void set_chunk_attention(ChunkAttention mode) { chunk_mode_ = mode; }
  int64_t max_tokens() const { return max_tokens_; }
  const KvQuantSettings& settings() const { return settings_; }
  // Bytes the cache holds per token position (all layers, K and V, scales included).
  int64_t bytes_per_token() const;
  // Stored bits per K/V element (b + 32 / g for int storage).
  double bits_per_element() const;

 private:
  void store(int layer, const float* k, const float* v, int64_t n, int64_t pos0);
  // What attention reads of `layer`: its stored positions and smoothing.
  StoredKvLayer stored_layer(int layer) const;
  size_t index(int layer, int64_t pos) const {
    return static_cast<size_t>(int64_t{layer} * max_tokens_ + pos);
  }

  int n_layers_, n_heads_, n_kv_heads_, head_dim_, kv_dim_;
  int64_t max_tokens_;
  KvQuantSettings settings_;
  const KvSmoothing* smoothing_;
  ChunkAttention chunk_mode_ = ChunkAttention::FullPrecisionChunk;
  KvQuantFormat format_{};         // int storage
  std::vector<float> kf_, vf_;     // f32 storage (index * kv_dim)
  std::vector<uint16_t> kh_, vh_;  // fp16 storage
  std::vector<uint8_t> kq_, vq_;   // int storage (index * token_bytes)
};

}  // namespace wkvq
