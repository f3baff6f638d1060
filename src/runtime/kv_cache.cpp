#include "runtime/kv_cache.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/kv_quant.h"
#include "kernels/vec_ops.h"

namespace wkvq {

void KvCacheSettings::validate(int64_t channels) const {
  validate_kv_settings(bits, group, channels);
}

KvCache::KvCache(const LlamaConfig& c, int64_t max_tokens, const KvCacheSettings& settings,
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
  settings_.validate(kv_dim_);
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

void KvCache::attend(int layer, const float* q, const float* k, const float* v, int64_t n,
                     int64_t pos0, float* out) {
  WKVQ_REQUIRE(pos0 + n <= max_tokens_, "KV cache full: positions up to ", pos0 + n - 1,
               " requested, room for ", max_tokens_);
  store(layer, k, v, n, pos0);
  parallel_for(n * n_heads_, 4, [&](int64_t b, int64_t e) {
    std::vector<float> work;
    for (int64_t item = b; item < e; ++item) {
      attend_head(layer, q, k, v, n, pos0, item / n_heads_, static_cast<int>(item % n_heads_), out,
                  work);
    }
  });
}

// Attention of new token t (position pos0 + t) for query head h; see the header for the math.
void KvCache::attend_head(int layer, const float* q, const float* k, const float* v, int64_t n,
                          int64_t pos0, int64_t t, int h, float* out,
                          std::vector<float>& work) const {
  (void)n;
  const int hd = head_dim_;
  const int q_dim = n_heads_ * hd;
  const int c0 = (h / (n_heads_ / n_kv_heads_)) * hd;  // first channel of the KV head
  const float* qh = q + t * q_dim + int64_t{h} * hd;
  float* oh = out + t * q_dim + int64_t{h} * hd;
  const int64_t pos = pos0 + t;
  const float inv_sqrt_hd = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool poq = settings_.poq;
  // positions [fp_from, pos] come from the new full-precision k, v; [0, fp_from) from the store
  const int64_t fp_from = !poq ? pos + 1 : chunk_mode_ == ChunkAttention::Prefill ? pos0 : pos;
  const bool smooth = smoothing_ != nullptr && settings_.quantized();
  const float* dk = smooth ? smoothing_->dK(layer) + c0 : nullptr;
  const float* sk = smooth ? smoothing_->sK(layer) + c0 : nullptr;
  const float* dv = smooth ? smoothing_->dV(layer) + c0 : nullptr;
  const float* sv = smooth ? smoothing_->sV(layer) + c0 : nullptr;

  // work: scores, partial (pos + 1 each) | qs (kv_dim, zero outside this head) | acc (kv_dim) |
  // tmp (hd)
  work.assign(static_cast<size_t>(2 * (pos + 1) + 2 * int64_t{kv_dim_} + hd), 0.0f);
  float* scores = work.data();
  float* partial = scores + pos + 1;
  float* qs = partial + pos + 1;
  float* acc = qs + kv_dim_;
  float* tmp = acc + kv_dim_;
  float q_dk = 0.0f;
  for (int i = 0; i < hd; ++i) {
    qs[c0 + i] = smooth ? qh[i] * sk[i] : qh[i];
    if (smooth) q_dk += qh[i] * dk[i];
  }
  // int storage: the groups holding this head's channels [c0, c0 + hd)
  const int64_t g0 = settings_.quantized() ? c0 / format_.group : 0;
  const int64_t g1 = settings_.quantized() ? (c0 + hd - 1) / format_.group : -1;
  const auto tb = static_cast<size_t>(format_.token_bytes);

  // scores of the stored positions [0, fp_from)
  if (settings_.quantized()) {
    const uint8_t* recs = kq_.data() + index(layer, 0) * tb;  // consecutive positions
    for (int64_t g = g0; g <= g1; ++g) {
      float* dst = g == g0 ? scores : partial;
      kv_dot_tokens(format_, recs, static_cast<int64_t>(tb), fp_from, g,
                    qs + format_.group_first(g), dst);
      if (g != g0) {
        for (int64_t j = 0; j < fp_from; ++j) scores[j] += partial[j];
      }
    }
    for (int64_t j = 0; j < fp_from; ++j) scores[j] *= inv_sqrt_hd;
  } else {
    for (int64_t j = 0; j < fp_from; ++j) {
      const size_t at = index(layer, j) * kv_dim_ + c0;
      if (settings_.bits == 16) {
        for (int i = 0; i < hd; ++i) tmp[i] = fp16_to_f32(kh_[at + i]);
      }
      scores[j] = dot(qh, settings_.bits == 32 ? &kf_[at] : tmp, hd) * inv_sqrt_hd;
    }
  }
  for (int64_t j = fp_from; j <= pos; ++j) {  // full precision: q . (k_j - dK)
    const float* kj = k + (j - pos0) * kv_dim_ + c0;
    scores[j] = (dot(qh, kj, hd) - q_dk) * inv_sqrt_hd;
  }
  softmax_inplace(scores, pos + 1);

  // values
  std::memset(oh, 0, sizeof(float) * static_cast<size_t>(hd));
  float p_stored = 0.0f;
  if (settings_.quantized()) {
    const uint8_t* recs = vq_.data() + index(layer, 0) * tb;
    for (int64_t g = g0; g <= g1; ++g) {
      kv_axpy_tokens(format_, recs, static_cast<int64_t>(tb), fp_from, g, scores,
                     acc + format_.group_first(g));
    }
    for (int64_t j = 0; j < fp_from; ++j) p_stored += scores[j];
  } else {
    for (int64_t j = 0; j < fp_from; ++j) {
      const size_t at = index(layer, j) * kv_dim_ + c0;
      if (settings_.bits == 16) {
        for (int i = 0; i < hd; ++i) tmp[i] = fp16_to_f32(vh_[at + i]);
      }
      axpy(oh, scores[j], settings_.bits == 32 ? &vf_[at] : tmp, hd);
    }
  }
  if (settings_.quantized()) {  // undo the smoothing on the stored part: sV * acc + dV * p
    for (int i = 0; i < hd; ++i) {
      oh[i] = smooth ? sv[i] * acc[c0 + i] + dv[i] * p_stored : acc[c0 + i];
    }
  }
  for (int64_t j = fp_from; j <= pos; ++j) {
    axpy(oh, scores[j], v + (j - pos0) * kv_dim_ + c0, hd);
  }
}

}  // namespace wkvq
