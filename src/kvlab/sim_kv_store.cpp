#include "kvlab/sim_kv_store.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "runtime/attention.h"

namespace wkvq {

SimKvStore::SimKvStore(const KvLabMethod& method, const LlamaConfig& c, int64_t max_tokens,
                       bool poq)
    : method_(method),
      n_heads_(c.n_heads),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      kv_dim_(c.kv_dim()),
      max_tokens_(max_tokens),
      poq_(poq),
      layers_(static_cast<size_t>(c.n_layers)) {
  WKVQ_REQUIRE(max_tokens > 0, "KV lab store: need room for at least one token");
  const auto floats = static_cast<size_t>(max_tokens * kv_dim_);
  for (Layer& l : layers_) {
    for (auto* a : {&l.fk, &l.fv, &l.hk, &l.hv, &l.qk, &l.qv}) a->resize(floats);
  }
}

void SimKvStore::reset() {
  for (Layer& l : layers_) l.stored = l.done_k = l.done_v = 0;
}

bool SimKvStore::prefix_stable() const {
  return method_.key_quantized_end(max_tokens_) == max_tokens_ &&
         method_.value_quantized_end(max_tokens_) == max_tokens_ && method_.key_block() == 1;
}

void SimKvStore::build_view(const Layer& l, int64_t from, int64_t tokens, float* vk,
                            float* vv) const {
  const int64_t kq = method_.key_quantized_end(tokens);
  const int64_t vq = method_.value_quantized_end(tokens);
  const auto rows = [&](float* dst, const std::vector<float>& src, int64_t a, int64_t b) {
    if (b > a) {
      std::memcpy(dst + a * kv_dim_, src.data() + a * kv_dim_,
                  sizeof(float) * static_cast<size_t>((b - a) * kv_dim_));
    }
  };
  rows(vk, l.qk, from, kq);
  rows(vk, l.hk, std::max(from, kq), tokens);
  rows(vv, l.qv, from, vq);
  rows(vv, l.hv, std::max(from, vq), tokens);
}

void SimKvStore::attend_view(const float* vk, const float* vv, const float* q, const float* k,
                             const float* v, int64_t n, int64_t pos, float* out) const {
  // The view holds positions [0, pos + n): one contiguous f32 block.
  const StoredKvLayer s = contiguous_f32_layer(vk, vv, static_cast<int>(kv_dim_), pos + n);
  attend_chunk(s, {n_heads_, n_kv_heads_, head_dim_}, poq_, ChunkAttention::TeacherForced, q, k, v,
               n, pos, out);
}

void SimKvStore::append(Layer& l, int layer, const float* k, const float* v, int64_t n,
                        int64_t pos0, int64_t horizon) {
  WKVQ_REQUIRE(pos0 == l.stored, "KV lab store: tokens must come in order (position ", pos0,
               " after ", l.stored, " stored)");
  WKVQ_REQUIRE(pos0 + n <= max_tokens_, "KV lab store full: positions up to ", pos0 + n - 1,
               " requested, room for ", max_tokens_);
  const auto at = static_cast<size_t>(pos0 * kv_dim_);
  const auto count = static_cast<size_t>(n * kv_dim_);
  std::memcpy(&l.fk[at], k, sizeof(float) * count);
  std::memcpy(&l.fv[at], v, sizeof(float) * count);
  for (size_t i = at; i < at + count; ++i) {
    l.hk[i] = fp16_to_f32(f32_to_fp16(l.fk[i]));
    l.hv[i] = fp16_to_f32(f32_to_fp16(l.fv[i]));
  }
  l.stored = pos0 + n;
  const int64_t kq = method_.key_quantized_end(horizon);
  const int64_t vq = method_.value_quantized_end(horizon);
  const auto row = [&](int64_t j) { return static_cast<size_t>(j * kv_dim_); };
  if (kq > l.done_k) {
    method_.round_trip_keys(layer, &l.fk[row(l.done_k)], kq - l.done_k, l.done_k,
                            &l.qk[row(l.done_k)]);
    l.done_k = kq;
  }
  if (vq > l.done_v) {
    method_.round_trip_values(layer, &l.fv[row(l.done_v)], vq - l.done_v, &l.qv[row(l.done_v)]);
    l.done_v = vq;
  }
}

void SimKvStore::store_and_view(int layer, const float* k, const float* v, int64_t n, int64_t pos0,
                                int64_t tokens, float* vk, float* vv) {
  WKVQ_REQUIRE(tokens <= pos0 + n, "KV lab store: a view of ", tokens, " tokens needs them stored");
  Layer& l = layers_[static_cast<size_t>(layer)];
  append(l, layer, k, v, n, pos0, tokens);
  build_view(l, 0, tokens, vk, vv);
}

void SimKvStore::attend(int layer, const float* q, const float* k, const float* v, int64_t n,
                        int64_t pos0, float* out) {
  Layer& l = layers_[static_cast<size_t>(layer)];
  // every row the last query's view (or, without POQ, the cache after it) round-trips
  append(l, layer, k, v, n, pos0, poq_ ? pos0 + n - 1 : pos0 + n);
  if (prefix_stable()) {  // every query's view is a prefix of the round-tripped rows
    attend_view(l.qk.data(), l.qv.data(), q, k, v, n, pos0, out);
    return;
  }
  // each query over the view of the cache when it is decoded: blocks of consecutive queries, each
  // with its own view, moved forward query by query
  const int64_t q_dim = int64_t{n_heads_} * head_dim_;
  const int64_t block = (n + num_threads() - 1) / num_threads();
  parallel_for(n, block, [&](int64_t b, int64_t e) {
    const int64_t end = poq_ ? pos0 + e - 1 : pos0 + e;
    std::vector<float> vk(static_cast<size_t>(std::max<int64_t>(end, 1) * kv_dim_));
    std::vector<float> vv(vk.size());
    int64_t built = 0;
    for (int64_t i = b; i < e; ++i) {
      const int64_t tokens = poq_ ? pos0 + i : pos0 + i + 1;
      // rows that became round-tripped since the last view, and the new rows
      const int64_t from =
          std::min({built, method_.key_quantized_end(built), method_.value_quantized_end(built)});
      build_view(l, from, tokens, vk.data(), vv.data());
      built = tokens;
      attend_view(vk.data(), vv.data(), q + i * q_dim, k + i * kv_dim_, v + i * kv_dim_, 1,
                  pos0 + i, out + i * q_dim);
    }
  });
}

}  // namespace wkvq
