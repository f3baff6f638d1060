#include "runtime/kv_cache.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/kv_quant.h"

namespace wkvq {

KvCache::KvCache(const LlamaConfig& c, int64_t max_tokens, const KvQuantSettings& settings,
                 const KvSmoothing* smoothing)
    : n_layers_(c.n_layers),
      n_heads_(c.n_heads),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      kv_dim_(c.kv_dim()),
      max_tokens_(max_tokens),
      settings_(settings),
      smoothing_(smoothing) {
  WKVQ_REQUIRE(max_tokens > 0, "KV cache: need room for at least one token");
  validate_kv_settings(settings_, kv_dim_);
  if (settings_.group == 0) settings_.group = head_dim_;
  const auto slots = static_cast<size_t>(int64_t{c.n_layers} * max_tokens_);
  const auto floats = slots * static_cast<size_t>(kv_dim_);
  if (settings_.bits == 32) {
    kf_.resize(floats);
    vf_.resize(floats);
  } else if (settings_.bits == 16) {
    kh_.resize(floats);
    vh_.resize(floats);
  } else {
    format_ = make_kv_format(kv_dim_, settings_.group, settings_.bits);
    kq_.resize(slots * static_cast<size_t>(format_.token_bytes));
    vq_.resize(slots * static_cast<size_t>(format_.token_bytes));
  }
  if (smoothing_ != nullptr) {
    WKVQ_REQUIRE(smoothing_->n_layers == c.n_layers && smoothing_->kv_dim == kv_dim_,
                 "KV smoothing is for ", smoothing_->n_layers, " layers x ", smoothing_->kv_dim,
                 " channels, the model has ", c.n_layers, " x ", kv_dim_);
  }
}

int64_t KvCache::bytes_per_token() const {
  const int64_t per_layer = settings_.bits == 32   ? int64_t{kv_dim_} * 4
                            : settings_.bits == 16 ? int64_t{kv_dim_} * 2
                                                   : format_.token_bytes;
  return 2 * int64_t{n_layers_} * per_layer;
}

double KvCache::bits_per_element() const {
  if (!settings_.quantized()) return settings_.bits;
  return 8.0 * static_cast<double>(format_.token_bytes) / kv_dim_;
}

void KvCache::store(int layer, const float* k, const float* v, int64_t n, int64_t pos0) {
  if (settings_.bits == 32) {
    std::memcpy(&kf_[index(layer, pos0) * kv_dim_], k,
                sizeof(float) * static_cast<size_t>(n * kv_dim_));
    std::memcpy(&vf_[index(layer, pos0) * kv_dim_], v,
                sizeof(float) * static_cast<size_t>(n * kv_dim_));
    return;
  }
  if (settings_.bits == 16) {
    for (int64_t i = 0; i < n * kv_dim_; ++i) {
      kh_[index(layer, pos0) * kv_dim_ + i] = f32_to_fp16(k[i]);
      vh_[index(layer, pos0) * kv_dim_ + i] = f32_to_fp16(v[i]);
    }
    return;
  }
  // int: smooth, then quantize each token's vector into its record
  const float* dk = smoothing_ ? smoothing_->dK(layer) : nullptr;
  const float* sk = smoothing_ ? smoothing_->sK(layer) : nullptr;
  const float* dv = smoothing_ ? smoothing_->dV(layer) : nullptr;
  const float* sv = smoothing_ ? smoothing_->sV(layer) : nullptr;
  const auto tb = static_cast<size_t>(format_.token_bytes);
  parallel_for(n, 8, [&](int64_t b, int64_t e) {
    std::vector<float> ks(static_cast<size_t>(kv_dim_)), vs(static_cast<size_t>(kv_dim_));
    for (int64_t t = b; t < e; ++t) {
      const float* kt = k + t * kv_dim_;
      const float* vt = v + t * kv_dim_;
      for (int c = 0; c < kv_dim_; ++c) {
        ks[c] = smoothing_ ? (kt[c] - dk[c]) / sk[c] : kt[c];
        vs[c] = smoothing_ ? (vt[c] - dv[c]) / sv[c] : vt[c];
      }
      quantize_token(format_, ks.data(), &kq_[index(layer, pos0 + t) * tb]);
      quantize_token(format_, vs.data(), &vq_[index(layer, pos0 + t) * tb]);
    }
  });
}

StoredKvLayer KvCache::stored_layer(int layer) const {
  StoredKvLayer s;
  s.bits = settings_.bits;
  s.kv_dim = kv_dim_;
  const size_t at = index(layer, 0);
  if (settings_.bits == 32) {
    s.kf = kf_.data() + at * kv_dim_;
    s.vf = vf_.data() + at * kv_dim_;
  } else if (settings_.bits == 16) {
    s.kh = kh_.data() + at * kv_dim_;
    s.vh = vh_.data() + at * kv_dim_;
  } else {
    s.format = format_;
    s.kq = kq_.data() + at * static_cast<size_t>(format_.token_bytes);
    s.vq = vq_.data() + at * static_cast<size_t>(format_.token_bytes);
    if (smoothing_ != nullptr) {
      s.dk = smoothing_->dK(layer);
      s.sk = smoothing_->sK(layer);
      s.dv = smoothing_->dV(layer);
      s.sv = smoothing_->sV(layer);
    }
  }
  return s;
}

void KvCache::attend(int layer, const float* q, const float* k, const float* v, int64_t n,
                     int64_t pos0, float* out) {
  WKVQ_REQUIRE(pos0 + n <= max_tokens_, "KV cache full: positions up to ", pos0 + n - 1,
               " requested, room for ", max_tokens_);
  store(layer, k, v, n, pos0);
  attend_chunk(stored_layer(layer), {n_heads_, n_kv_heads_, head_dim_}, settings_.poq, chunk_mode_,
               q, k, v, n, pos0, out);
}

}  // namespace wkvq
