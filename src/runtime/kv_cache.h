// KvCache: the per-session key/value cache of every layer, and causal attention over it.
// Storage today: f32, (layer, position, kv_dim) with K after RoPE. The quantized storage of
// design.md §2.2 (int-b per-token groups, smoothing, POQ) extends this type.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/kv_store.h"

namespace wkvq {

class KvCache final : public KvStore {
 public:
  // Room for `max_tokens` positions of every layer of a model with config `c`.
  KvCache(const LlamaConfig& c, int64_t max_tokens);

  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override;

  int64_t max_tokens() const { return max_tokens_; }
  // Bytes the cache holds per token position (all layers, K and V).
  int64_t bytes_per_token() const;

 private:
  float* key(int layer, int64_t pos) { return k_.data() + offset(layer, pos); }
  float* value(int layer, int64_t pos) { return v_.data() + offset(layer, pos); }
  size_t offset(int layer, int64_t pos) const {
    return static_cast<size_t>((layer * max_tokens_ + pos) * kv_dim_);
  }

  int n_layers_, n_heads_, n_kv_heads_, head_dim_, kv_dim_;
  int64_t max_tokens_;
  std::vector<float> k_, v_;  // (layer, position, kv_dim)
};

}  // namespace wkvq
