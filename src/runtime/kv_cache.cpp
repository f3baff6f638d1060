#include "runtime/kv_cache.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/vec_ops.h"

namespace wkvq {

KvCache::KvCache(const LlamaConfig& c, int64_t max_tokens)
    : n_layers_(c.n_layers),
      n_heads_(c.n_heads),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      kv_dim_(c.kv_dim()),
      max_tokens_(max_tokens) {
  WKVQ_REQUIRE(max_tokens > 0, "KV cache: need room for at least one token");
  const size_t n = static_cast<size_t>(n_layers_ * max_tokens_ * kv_dim_);
  k_.resize(n);
  v_.resize(n);
}

int64_t KvCache::bytes_per_token() const {
  return int64_t{2} * n_layers_ * kv_dim_ * static_cast<int64_t>(sizeof(float));
}

void KvCache::attend(int layer, const float* q, const float* k, const float* v, int64_t n,
                     int64_t pos0, float* out) {
  WKVQ_REQUIRE(pos0 + n <= max_tokens_, "KV cache full: positions up to ", pos0 + n - 1,
               " requested, room for ", max_tokens_);
  // append the new keys and values                                  (n, kv_dim) each
  std::memcpy(key(layer, pos0), k, sizeof(float) * static_cast<size_t>(n * kv_dim_));
  std::memcpy(value(layer, pos0), v, sizeof(float) * static_cast<size_t>(n * kv_dim_));

  const int q_dim = n_heads_ * head_dim_;
  const int group = n_heads_ / n_kv_heads_;  // query heads per KV head (GQA)
  const float inv_sqrt_hd = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  // one work item per (token, head): scores over positions 0..pos, softmax, weighted V sum
  parallel_for(n * n_heads_, 4, [&](int64_t b, int64_t e) {
    std::vector<float> scores(static_cast<size_t>(pos0 + n));
    for (int64_t item = b; item < e; ++item) {
      const int64_t t = item / n_heads_;
      const int h = static_cast<int>(item % n_heads_);
      const int64_t kv_off = int64_t{h / group} * head_dim_;
      const float* qh = q + t * q_dim + int64_t{h} * head_dim_;
      const int64_t len = pos0 + t + 1;
      for (int64_t j = 0; j < len; ++j) {
        scores[static_cast<size_t>(j)] =
            dot(qh, key(layer, j) + kv_off, head_dim_) * inv_sqrt_hd;
      }
      softmax_inplace(scores.data(), len);
      float* oh = out + t * q_dim + int64_t{h} * head_dim_;
      std::memset(oh, 0, sizeof(float) * static_cast<size_t>(head_dim_));
      for (int64_t j = 0; j < len; ++j) {
        axpy(oh, scores[static_cast<size_t>(j)], value(layer, j) + kv_off, head_dim_);
      }
    }
  });
}

}  // namespace wkvq
