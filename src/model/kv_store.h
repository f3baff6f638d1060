// KvStore: where a block's keys and values go and how attention reads them back.
// The block forward (model/forward.h) computes q, k, v and RoPE, then hands them to the store;
// the store appends k, v to its cache and computes causal attention. This keeps the block
// independent of how the cache is stored (f32, f16, int-b with smoothing, POQ): runtime/ and
// eval/ provide the implementations.
#pragma once

#include <cstdint>

namespace wkvq {

class KvStore {
 public:
  virtual ~KvStore() = default;

  // Attention of n new tokens at positions [pos0, pos0 + n) of layer `layer`:
  //   q   (n, n_heads * head_dim)     after RoPE
  //   k,v (n, n_kv_heads * head_dim)  k after RoPE
  //   out (n, n_heads * head_dim)     softmax(q . K^T / sqrt(head_dim)) V, causal
  // Token i attends to every cached position < pos0 and to the new tokens 0..i.
  virtual void attend(int layer, const float* q, const float* k, const float* v, int64_t n,
                      int64_t pos0, float* out) = 0;
};

}  // namespace wkvq
