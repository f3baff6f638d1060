#include "runtime/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/kv_attend.h"
#include "kernels/kv_quant.h"

namespace wkvq {

namespace {

constexpr int kPrivateBlockTokens = 32;

// The private pool of a cache of max_tokens positions: whole blocks covering them.
std::unique_ptr<KvBlockPool> private_pool(const LlamaConfig& c, const KvQuantSettings& kv,
                                          int64_t max_tokens) {
  WKVQ_REQUIRE(max_tokens > 0, "KV cache: need room for at least one token");
  const int b = static_cast<int>(std::min<int64_t>(kPrivateBlockTokens, max_tokens));
  const int64_t blocks = (max_tokens + b - 1) / b;
  return std::make_unique<KvBlockPool>(c, kv, blocks * KvBlockPool::block_bytes(c, kv, b), b);
}

}  // namespace

KvCache::KvCache(const LlamaConfig& c, int64_t max_tokens, const KvQuantSettings& settings,
                 const KvSmoothing* smoothing)
    : KvCache(c, private_pool(c, settings, max_tokens), nullptr, max_tokens, settings, smoothing) {}

KvCache::KvCache(const LlamaConfig& c, KvBlockPool& pool, int64_t max_tokens,
                 const KvQuantSettings& settings, const KvSmoothing* smoothing)
    : KvCache(c, nullptr, &pool, max_tokens, settings, smoothing) {}

KvCache::KvCache(const LlamaConfig& c, std::unique_ptr<KvBlockPool> own, KvBlockPool* shared,
                 int64_t max_tokens, const KvQuantSettings& settings, const KvSmoothing* smoothing)
    : n_layers_(c.n_layers),
      n_heads_(c.n_heads),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      kv_dim_(c.kv_dim()),
      max_tokens_(max_tokens),
      settings_(settings),
      smoothing_(smoothing),
      own_pool_(std::move(own)),
      pool_(shared != nullptr ? shared : own_pool_.get()),
      block_tokens_(pool_->block_tokens()) {
  WKVQ_REQUIRE(max_tokens > 0, "KV cache: need room for at least one token");
  validate_kv_settings(settings_, kv_dim_);
  if (settings_.group == 0) settings_.group = head_dim_;
  const KvQuantSettings& ps = pool_->settings();
  WKVQ_REQUIRE(pool_->n_layers() == n_layers_ && pool_->kv_dim() == kv_dim_, "KV cache: the pool ",
               "holds ", pool_->n_layers(), " layers x ", pool_->kv_dim(), " channels, the model ",
               n_layers_, " x ", kv_dim_);
  WKVQ_REQUIRE(ps.bits == settings_.bits &&
                   (!ps.quantized() ||
                    (ps.group == settings_.group && ps.value_bits() == settings_.value_bits() &&
                     ps.rel8 == settings_.rel8)),
               "KV cache: the pool stores ", ps.bits, "-bit K (", ps.value_bits(), "-bit V) in ",
               "groups of ", ps.group, ", the cache asks for ", settings_.bits, "-bit K (",
               settings_.value_bits(), "-bit V) in groups of ", settings_.group,
               " (group metadata ", ps.rel8 ? "rel8" : "fp16", " / ",
               settings_.rel8 ? "rel8" : "fp16", "); make the pool with the cache's KV settings");
  if (smoothing_ != nullptr) {
    identity_smoothing_ = smoothing_->is_identity();
    WKVQ_REQUIRE(smoothing_->n_layers == c.n_layers && smoothing_->kv_dim == kv_dim_,
                 "KV smoothing is for ", smoothing_->n_layers, " layers x ", smoothing_->kv_dim,
                 " channels, the model has ", c.n_layers, " x ", kv_dim_);
  }
  if (settings_.window > 0) {
    ring_.resize(static_cast<size_t>(window_bytes() / 2));
    ring_end_.assign(static_cast<size_t>(n_layers_), 0);
  }
}

KvCache::~KvCache() { release(); }

bool KvCache::reserve(int64_t n_positions) {
  WKVQ_REQUIRE(n_positions >= 0 && n_positions <= max_tokens_, "KV cache: reserve of ", n_positions,
               " positions, the cache holds at most ", max_tokens_);
  const int64_t need = (n_positions + block_tokens_ - 1) / block_tokens_ - blocks_held();
  return need <= 0 || pool_->take(need, blocks_);
}

void KvCache::release() {
  if (blocks_.empty()) return;
  pool_->give_back(blocks_);
  blocks_.clear();
}

void KvCache::copy_prefix(const KvCache& other, int64_t n) {
  WKVQ_REQUIRE(other.settings_.bits == settings_.bits && other.settings_.group == settings_.group &&
                   other.settings_.value_bits() == settings_.value_bits() &&
                   other.settings_.rel8 == settings_.rel8 && other.smoothing_ == smoothing_ &&
                   other.kv_dim_ == kv_dim_ && other.n_layers_ == n_layers_ &&
                   n <= other.blocks_held() * other.block_tokens_,
               "KV cache: copy_prefix needs a cache of the same storage holding the positions");
  WKVQ_REQUIRE(
      settings_.window == other.settings_.window &&
          (settings_.window == 0 || std::all_of(other.ring_end_.begin(), other.ring_end_.end(),
                                                [n](int64_t e) { return e == n; })),
      "KV cache: copy_prefix of ", n, " positions with a full-precision window needs ",
      "the same window and a cache holding exactly those positions");
  WKVQ_REQUIRE(reserve(n), "KV cache: no free blocks for ", n, " copied positions");
  ring_ = other.ring_;
  ring_end_ = other.ring_end_;
  for (int layer = 0; layer < n_layers_; ++layer) {
    for (int kv = 0; kv < 2; ++kv) {
      const auto bytes = static_cast<size_t>(pool_->record_bytes(kv));
      for (int64_t pos = 0; pos < n; ++pos) {
        std::memcpy(record(layer, kv, pos), other.record(layer, kv, pos), bytes);
      }
    }
  }
}

int64_t KvCache::bytes_per_token() const {
  return int64_t{n_layers_} * (pool_->record_bytes(0) + pool_->record_bytes(1));
}

double KvCache::bits_per_element() const {
  if (!settings_.quantized()) return settings_.bits;
  return 8.0 * static_cast<double>(pool_->format(0).token_bytes + pool_->format(1).token_bytes) /
         (2.0 * kv_dim_);
}

int64_t KvCache::window_bytes() const {
  return 2 * int64_t{n_layers_} * settings_.window * kv_dim_ * int64_t{sizeof(uint16_t)};
}

double KvCache::bits_per_element_at(int64_t tokens) const {
  WKVQ_REQUIRE(tokens > 0, "KV cache: bits per element of an empty sequence");
  return bits_per_element() + 16.0 * static_cast<double>(std::min(settings_.window, tokens)) /
                                  static_cast<double>(tokens);
}

std::string KvCache::attention_kernel() const {
  const std::string k = kv_attend_kernel({settings_.bits, pool_->format(0)}, head_dim_);
  const std::string meta = settings_.rel8 ? ", rel8 metadata" : "";
  if (!settings_.quantized() || settings_.value_bits() == settings_.bits) return k + meta;
  return "K " + k + "; V " +
         kv_attend_kernel({settings_.value_bits(), pool_->format(1)}, head_dim_) + meta;
}

KvQuantFormat KvCache::layer_format(int layer, int kv) const {
  KvQuantFormat f = pool_->format(kv);
  if (!f.rel8) return f;
  // Checked here, not at construction: a cache made only for its sizes needs no ranges.
  WKVQ_REQUIRE(smoothing_ != nullptr && smoothing_->has_ranges(),
               "KV cache: --kv-meta rel8 codes each group's scale and minimum against a static ",
               "range of calibration text, and none was given; pass --calib FILE (or load a ",
               "model directory quantized with --kv-meta rel8)");
  WKVQ_REQUIRE(smoothing_->ranges.group == settings_.group, "KV cache: the static group ranges ",
               "are for groups of ", smoothing_->ranges.group, " channels, the cache uses ",
               settings_.group, "; calibrate the ranges with the cache's --kvgroup");
  f.rel8_groups = smoothing_->rel8_groups(layer, kv);
  return f;
}

uint8_t* KvCache::record(int layer, int kv, int64_t pos) const {
  uint8_t* base = kv == 0 ? pool_->k_base(layer) : pool_->v_base(layer);
  const int64_t b = pos / block_tokens_;
  return base + blocks_[static_cast<size_t>(b)] * pool_->bytes_per_block() +
         (pos - b * block_tokens_) * pool_->record_bytes(kv);
}

void KvCache::store(int layer, const float* k, const float* v, int64_t n, int64_t pos0) {
  if (settings_.bits == 32) {
    for (int64_t t = 0; t < n; ++t) {
      std::memcpy(record(layer, 0, pos0 + t), k + t * kv_dim_, sizeof(float) * kv_dim_);
      std::memcpy(record(layer, 1, pos0 + t), v + t * kv_dim_, sizeof(float) * kv_dim_);
    }
    return;
  }
  if (settings_.bits == 16) {
    for (int64_t t = 0; t < n; ++t) {
      auto* kh = reinterpret_cast<uint16_t*>(record(layer, 0, pos0 + t));
      auto* vh = reinterpret_cast<uint16_t*>(record(layer, 1, pos0 + t));
      for (int i = 0; i < kv_dim_; ++i) {
        kh[i] = f32_to_fp16(k[t * kv_dim_ + i]);
        vh[i] = f32_to_fp16(v[t * kv_dim_ + i]);
      }
    }
    return;
  }
  // int: smooth, then quantize each token's vector into its record
  const float* dk = smoothing_ ? smoothing_->dK(layer) : nullptr;
  const float* sk = smoothing_ ? smoothing_->sK(layer) : nullptr;
  const float* dv = smoothing_ ? smoothing_->dV(layer) : nullptr;
  const float* sv = smoothing_ ? smoothing_->sV(layer) : nullptr;
  const KvQuantFormat kformat = layer_format(layer, 0);
  const KvQuantFormat vformat = layer_format(layer, 1);
  parallel_for(n, 8, [&](int64_t b, int64_t e) {
    std::vector<float> ks(static_cast<size_t>(kv_dim_)), vs(static_cast<size_t>(kv_dim_));
    for (int64_t t = b; t < e; ++t) {
      const float* kt = k + t * kv_dim_;
      const float* vt = v + t * kv_dim_;
      for (int c = 0; c < kv_dim_; ++c) {
        ks[c] = smoothing_ ? (kt[c] - dk[c]) / sk[c] : kt[c];
        vs[c] = smoothing_ ? (vt[c] - dv[c]) / sv[c] : vt[c];
      }
      quantize_token(kformat, ks.data(), record(layer, 0, pos0 + t));
      quantize_token(vformat, vs.data(), record(layer, 1, pos0 + t));
    }
  });
}

StoredKvLayer KvCache::stored_layer(int layer) const {
  StoredKvLayer s;
  s.bits = settings_.bits;
  s.kv_dim = kv_dim_;
  s.k = pool_->k_base(layer);
  s.v = pool_->v_base(layer);
  s.blocks = blocks_.data();
  s.block_tokens = block_tokens_;
  s.block_bytes = pool_->bytes_per_block();
  s.record_bytes = pool_->record_bytes(0);
  s.vrecord_bytes = pool_->record_bytes(1);
  if (settings_.quantized()) {
    s.format = layer_format(layer, 0);
    s.vformat = layer_format(layer, 1);
    if (smoothing_ != nullptr && !identity_smoothing_) {  // identity: nothing to undo
      s.dk = smoothing_->dK(layer);
      s.sk = smoothing_->sK(layer);
      s.dv = smoothing_->dV(layer);
      s.sv = smoothing_->sV(layer);
    }
  }
  return s;
}

WindowRows KvCache::window_rows(int layer, const float* k, const float* v, int64_t n,
                                int64_t pos0) {
  const int64_t w = settings_.window;
  WindowRows r;
  r.size = w;
  r.pos0 = std::max<int64_t>(0, pos0 - w);
  // A prompt chunk under POQ reads its own rows in f32 (window_from <= from = pos0): only the
  // ring's positions then; teacher-forced or without POQ, queries read chunk rows in fp16 too.
  const bool chunk_rows = !settings_.poq || chunk_mode_ == ChunkAttention::TeacherForced;
  const int64_t end = chunk_rows ? pos0 + n : pos0;
  const int64_t rows = end - r.pos0;
  window_k_.resize(static_cast<size_t>(rows * kv_dim_));
  window_v_.resize(static_cast<size_t>(rows * kv_dim_));
  for (int64_t p = r.pos0; p < end; ++p) {
    float* kd = window_k_.data() + (p - r.pos0) * kv_dim_;
    float* vd = window_v_.data() + (p - r.pos0) * kv_dim_;
    if (p < pos0) {
      const uint16_t* kh = ring_slot(layer, 0, p);
      const uint16_t* vh = ring_slot(layer, 1, p);
      for (int c = 0; c < kv_dim_; ++c) {
        kd[c] = fp16_to_f32(kh[c]);
        vd[c] = fp16_to_f32(vh[c]);
      }
    } else {
      const float* ks = k + (p - pos0) * kv_dim_;
      const float* vs = v + (p - pos0) * kv_dim_;
      for (int c = 0; c < kv_dim_; ++c) {
        kd[c] = fp16_to_f32(f32_to_fp16(ks[c]));
        vd[c] = fp16_to_f32(f32_to_fp16(vs[c]));
      }
    }
  }
  r.k = window_k_.data();
  r.v = window_v_.data();
  return r;
}

void KvCache::keep_in_window(int layer, const float* k, const float* v, int64_t n, int64_t pos0) {
  for (int64_t p = std::max(pos0, pos0 + n - settings_.window); p < pos0 + n; ++p) {
    uint16_t* kh = ring_slot(layer, 0, p);
    uint16_t* vh = ring_slot(layer, 1, p);
    for (int c = 0; c < kv_dim_; ++c) {
      kh[c] = f32_to_fp16(k[(p - pos0) * kv_dim_ + c]);
      vh[c] = f32_to_fp16(v[(p - pos0) * kv_dim_ + c]);
    }
  }
  ring_end_[static_cast<size_t>(layer)] = pos0 + n;
}

void KvCache::attend(int layer, const float* q, const float* k, const float* v, int64_t n,
                     int64_t pos0, float* out) {
  WKVQ_REQUIRE(pos0 + n <= max_tokens_, "KV cache full: positions up to ", pos0 + n - 1,
               " requested, room for ", max_tokens_);
  WKVQ_REQUIRE(reserve(pos0 + n), "KV pool full: positions up to ", pos0 + n - 1, " need ",
               (pos0 + n + block_tokens_ - 1) / block_tokens_, " blocks of ", block_tokens_,
               " positions, this cache holds ", blocks_held(), " and the pool has ",
               pool_->free_blocks(), " free; reserve() before attending, or raise the budget");
  if (settings_.window > 0) {
    const int64_t end = ring_end_[static_cast<size_t>(layer)];
    WKVQ_REQUIRE(pos0 == 0 || pos0 == end, "KV cache with a full-precision window: layer ", layer,
                 " holds positions up to ", end, ", a chunk starts at ", pos0,
                 "; the window needs positions in order (continue at ", end,
                 ", or start again at 0)");
  }
  store(layer, k, v, n, pos0);
  const AttentionShape shape{n_heads_, n_kv_heads_, head_dim_};
  if (settings_.window == 0) {
    attend_chunk(stored_layer(layer), shape, settings_.poq, chunk_mode_, q, k, v, n, pos0, out);
    return;
  }
  const WindowRows win = window_rows(layer, k, v, n, pos0);
  attend_chunk(stored_layer(layer), shape, settings_.poq, chunk_mode_, q, k, v, n, pos0, out, &win);
  keep_in_window(layer, k, v, n, pos0);
}

}  // namespace wkvq
