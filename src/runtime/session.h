// Session: the mutable state of one conversation with a Model: the KV cache, the activation
// scratch and the current position. The Model itself is shared and immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/forward.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

namespace wkvq {

class Session {
 public:
  // A session with room for `max_tokens` positions (default and maximum: the model's context),
  // its KV cache stored as `kv` says; `smoothing` (null: the model's own, if any) applies to an
  // int-b cache and must outlive the session.
  explicit Session(const Model& m, int64_t max_tokens = 0, const KvQuantSettings& kv = {},
                   const KvSmoothing* smoothing = nullptr);
  // The same with its cache in blocks of `pool` (runtime/kv_pool.h; it must outlive the session
  // and store what `kv` says), taken as the session grows and given back when it is destroyed
  // (or cache().release()).
  Session(const Model& m, KvBlockPool& pool, int64_t max_tokens, const KvQuantSettings& kv = {},
          const KvSmoothing* smoothing = nullptr);

  // Feeds tokens at the current position in one batched pass (prefill; a prompt's GEMM,
  // GemmUse::Prompt in kernels/kernel_table.h); returns the logits of the last one (vocab floats,
  // valid until the next call).
  const float* prefill(const std::vector<int>& tokens);
  // Feeds one token (decode step); returns its logits.
  const float* decode(int token);
  // Feeds n tokens in one pass and writes the logits of every one of them: (n, vocab), with the
  // f32 GEMM of evaluation (GemmUse::Exact), whose rows equal token-by-token decoding up to
  // rounding order.
  void forward_all(const int* tokens, int64_t n, float* logits);

  void reset() { pos_ = 0; }
  int64_t pos() const { return pos_; }
  int64_t max_tokens() const { return cache_.max_tokens(); }
  const KvCache& cache() const { return cache_; }
  KvCache& cache() { return cache_; }
  const Model& model() const { return model_; }
  // Bytes of the activation scratch and the logits buffer (the KV cache not included).
  int64_t scratch_bytes() const {
    return scratch_.bytes() + static_cast<int64_t>(logits_.capacity() * sizeof(float));
  }

 private:
  // Feeds n >= 1 tokens; returns the last one's logits.
  const float* feed(const int* tokens, int64_t n);

  const Model& model_;
  KvCache cache_;
  ForwardScratch scratch_;
  std::vector<float> logits_;  // (vocab)
  int64_t pos_ = 0;
};

}  // namespace wkvq
