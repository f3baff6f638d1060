// KvCache: the per-session key/value cache of every layer, and causal attention over it
// (design.md §2.2).
//
// Storage, per layer and position (K after RoPE):
//   bits 32: f32 (layer, pos, kv_dim)           bits 16: fp16, same shape
//   bits 2/3/4/8: one token record of formats/kv_quant.h per (layer, pos) for K and for V,
//                 holding the smoothed K~ = (K - dK) / sK and V~ = (V - dV) / sV
// Attention reads the int records without dequantizing them: with qs = q * sK,
//   score_j = (q . K_j - q . dK) / sqrt(hd) = (qs . K~_j) / sqrt(hd)       (stored j)
//   score_t = q . (k_t - dK) / sqrt(hd)                                   (full-precision j)
// (every score of a query drops the same q . dK, so softmax is unchanged), and, since the
// probabilities of a row sum to 1,
//   out = sV * sum_stored p_j V~_j + dV * sum_stored p_j + sum_fp p_j v_j.
//
// Which K/V a token sees in full precision (POQ = past-only quantization):
//   its own (the diagonal) when poq; earlier tokens of the same chunk when poq and the chunk is
//   a prefill (ChunkAttention::Prefill); everything else from the (quantized) store. With
//   ChunkAttention::TeacherForced a chunk behaves exactly like the same tokens decoded one by
//   one (the evaluation's decode modes).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/kv_quant.h"
#include "model/config.h"
#include "model/kv_smoothing.h"
#include "model/kv_store.h"

namespace wkvq {

struct KvCacheSettings {
  int bits = 32;    // 32: f32, 16: fp16, 2/3/4/8: int-b per-token groups
  int group = 0;    // channels per quantization group; 0: head_dim
  bool poq = true;  // past-only quantization
  bool quantized() const { return bits <= 8; }
  // validate_kv_settings (formats/kv_quant.h) for a model with `channels` KV channels.
  void validate(int64_t channels) const;
};

enum class ChunkAttention { Prefill, TeacherForced };

class KvCache final : public KvStore {
 public:
  // Room for `max_tokens` positions of every layer of a model with config `c`. `smoothing` (kept
  // by reference, may be null = identity) applies to int storage only.
  KvCache(const LlamaConfig& c, int64_t max_tokens, const KvCacheSettings& settings = {},
          const KvSmoothing* smoothing = nullptr);

  void attend(int layer, const float* q, const float* k, const float* v, int64_t n, int64_t pos0,
              float* out) override;

  void set_chunk_attention(ChunkAttention mode) { chunk_mode_ = mode; }
  int64_t max_tokens() const { return max_tokens_; }
  const KvCacheSettings& settings() const { return settings_; }
  // Bytes the cache holds per token position (all layers, K and V, scales included).
  int64_t bytes_per_token() const;
  // Stored bits per K/V element (b + 32 / g for int storage).
  double bits_per_element() const;

 private:
  void store(int layer, const float* k, const float* v, int64_t n, int64_t pos0);
  void attend_head(int layer, const float* q, const float* k, const float* v, int64_t n,
                   int64_t pos0, int64_t t, int h, float* out, std::vector<float>& work) const;
  size_t index(int layer, int64_t pos) const {
    return static_cast<size_t>(int64_t{layer} * max_tokens_ + pos);
  }

  int n_layers_, n_heads_, n_kv_heads_, head_dim_, kv_dim_;
  int64_t max_tokens_;
  KvCacheSettings settings_;
  const KvSmoothing* smoothing_;
  ChunkAttention chunk_mode_ = ChunkAttention::Prefill;
  KvQuantFormat format_{};         // int storage
  std::vector<float> kf_, vf_;     // f32 storage (index * kv_dim)
  std::vector<uint16_t> kh_, vh_;  // fp16 storage
  std::vector<uint8_t> kq_, vq_;   // int storage (index * token_bytes)
};

}  // namespace wkvq
