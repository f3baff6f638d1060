#include "runtime/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "core/parallel.h"
#include "kernels/kv_quant.h"
#include "kernels/vec_ops.h"

namespace wkvq {

namespace {

// The stored positions [0, from) as runs within one block: f(j0, count, b) for positions
// [j0, j0 + count) of block b, in position order.
template <class F>
void for_each_block_run(const StoredKvLayer& s, int64_t from, F&& f) {
  for (int64_t b = 0, j0 = 0; j0 < from; ++b, j0 += s.block_tokens) {
    f(j0, std::min(s.block_tokens, from - j0), b);
  }
}

const int64_t kOneBlock[1] = {0};

}  // namespace

StoredKvLayer contiguous_f32_layer(const float* k, const float* v, int kv_dim, int64_t n) {
  StoredKvLayer s;
  s.bits = 32;
  s.kv_dim = kv_dim;
  s.k = reinterpret_cast<const uint8_t*>(k);
  s.v = reinterpret_cast<const uint8_t*>(v);
  s.blocks = kOneBlock;
  s.block_tokens = std::max<int64_t>(n, 1);
  s.block_bytes = 0;
  s.record_bytes = int64_t{kv_dim} * 4;
  return s;
}

int64_t full_precision_from(bool poq, ChunkAttention mode, int64_t chunk_start, int64_t pos) {
  if (!poq) return pos + 1;
  return mode == ChunkAttention::FullPrecisionChunk ? chunk_start : pos;
}

void stored_scores(const StoredKvLayer& s, const HeadQuery& h, int64_t from, float* scores,
                   float* partial, float* tmp) {
  if (s.quantized()) {
    // the groups holding this head's channels [c0, c0 + hd); records of consecutive positions
    const KvQuantFormat& f = s.format;
    const int64_t g0 = h.c0 / f.group, g1 = (h.c0 + h.hd - 1) / f.group;
    for_each_block_run(s, from, [&](int64_t j0, int64_t count, int64_t b) {
      for (int64_t g = g0; g <= g1; ++g) {
        float* dst = (g == g0 ? scores : partial) + j0;
        kv_dot_tokens(f, s.k_block(b), s.record_bytes, count, g, h.qs + f.group_first(g), dst);
        if (g != g0) {
          for (int64_t j = j0; j < j0 + count; ++j) scores[j] += partial[j];
        }
      }
    });
    for (int64_t j = 0; j < from; ++j) scores[j] *= h.inv_sqrt_hd;
    return;
  }
  for_each_block_run(s, from, [&](int64_t j0, int64_t count, int64_t b) {
    const uint8_t* rec = s.k_block(b);
    for (int64_t j = j0; j < j0 + count; ++j, rec += s.record_bytes) {
      const float* kj = reinterpret_cast<const float*>(rec) + h.c0;
      if (s.bits == 16) {
        const auto* kh = reinterpret_cast<const uint16_t*>(rec) + h.c0;
        for (int i = 0; i < h.hd; ++i) tmp[i] = fp16_to_f32(kh[i]);
        kj = tmp;
      }
      scores[j] = dot(h.q, kj, h.hd) * h.inv_sqrt_hd;
    }
  });
}

void current_scores(const HeadQuery& h, const float* k, int kv_dim, int64_t pos0, int64_t from,
                    int64_t pos, float* scores) {
  for (int64_t j = from; j <= pos; ++j) {  // q . (k_j - dK)
    const float* kj = k + (j - pos0) * kv_dim + h.c0;
    scores[j] = (dot(h.q, kj, h.hd) - h.q_dk) * h.inv_sqrt_hd;
  }
}

void stored_values(const StoredKvLayer& s, const HeadQuery& h, const float* p, int64_t from,
                   float* out, float* acc, float* tmp) {
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(h.hd));
  if (!s.quantized()) {
    for_each_block_run(s, from, [&](int64_t j0, int64_t count, int64_t b) {
      const uint8_t* rec = s.v_block(b);
      for (int64_t j = j0; j < j0 + count; ++j, rec += s.record_bytes) {
        const float* vj = reinterpret_cast<const float*>(rec) + h.c0;
        if (s.bits == 16) {
          const auto* vh = reinterpret_cast<const uint16_t*>(rec) + h.c0;
          for (int i = 0; i < h.hd; ++i) tmp[i] = fp16_to_f32(vh[i]);
          vj = tmp;
        }
        axpy(out, p[j], vj, h.hd);
      }
    });
    return;
  }
  // acc = sum_stored p_j V~_j on the groups of this head
  const KvQuantFormat& f = s.format;
  const int64_t g0 = h.c0 / f.group, g1 = (h.c0 + h.hd - 1) / f.group;
  for_each_block_run(s, from, [&](int64_t j0, int64_t count, int64_t b) {
    for (int64_t g = g0; g <= g1; ++g) {
      kv_axpy_tokens(f, s.v_block(b), s.record_bytes, count, g, p + j0, acc + f.group_first(g));
    }
  });
  if (!s.smoothed()) {
    for (int i = 0; i < h.hd; ++i) out[i] = acc[h.c0 + i];
    return;
  }
  // the smoothing undone: sV * acc + dV * sum_stored p_j
  float p_stored = 0.0f;
  for (int64_t j = 0; j < from; ++j) p_stored += p[j];
  const float* sv = s.sv + h.c0;
  const float* dv = s.dv + h.c0;
  for (int i = 0; i < h.hd; ++i) out[i] = sv[i] * acc[h.c0 + i] + dv[i] * p_stored;
}

void current_values(const HeadQuery& h, const float* v, int kv_dim, const float* p, int64_t pos0,
                    int64_t from, int64_t pos, float* out) {
  for (int64_t j = from; j <= pos; ++j) axpy(out, p[j], v + (j - pos0) * kv_dim + h.c0, h.hd);
}

namespace {

// Attention of query head `head` of new token t (position pos0 + t): the steps above.
void attend_head(const StoredKvLayer& s, const AttentionShape& shape, int64_t from, const float* q,
                 const float* k, const float* v, int64_t pos0, int64_t t, int head, float* out,
                 std::vector<float>& work) {
  const int hd = shape.head_dim;
  const int q_dim = shape.n_heads * hd;
  const int64_t pos = pos0 + t;
  // work: scores, partial (pos + 1 each) | qs (kv_dim) | acc (kv_dim) | tmp (hd), all zero
  work.assign(static_cast<size_t>(2 * (pos + 1) + 2 * int64_t{s.kv_dim} + hd), 0.0f);
  float* scores = work.data();
  float* partial = scores + pos + 1;
  float* qs = partial + pos + 1;
  float* acc = qs + s.kv_dim;
  float* tmp = acc + s.kv_dim;

  HeadQuery h;
  h.q = q + t * q_dim + int64_t{head} * hd;
  h.c0 = (head / (shape.n_heads / shape.n_kv_heads)) * hd;
  h.hd = hd;
  h.inv_sqrt_hd = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int i = 0; i < hd; ++i) {
    qs[h.c0 + i] = s.smoothed() ? h.q[i] * s.sk[h.c0 + i] : h.q[i];
    if (s.smoothed()) h.q_dk += h.q[i] * s.dk[h.c0 + i];
  }
  h.qs = qs;

  stored_scores(s, h, from, scores, partial, tmp);
  current_scores(h, k, s.kv_dim, pos0, from, pos, scores);
  softmax_inplace(scores, pos + 1);
  float* oh = out + t * q_dim + int64_t{head} * hd;
  stored_values(s, h, scores, from, oh, acc, tmp);
  current_values(h, v, s.kv_dim, scores, pos0, from, pos, oh);
}

}  // namespace

void attend_chunk(const StoredKvLayer& stored, const AttentionShape& shape, bool poq,
                  ChunkAttention mode, const float* q, const float* k, const float* v, int64_t n,
                  int64_t pos0, float* out) {
  const int n_heads = shape.n_heads;
  parallel_for(n * n_heads, 4, [&](int64_t b, int64_t e) {
    std::vector<float> work;
    for (int64_t item = b; item < e; ++item) {
      const int64_t t = item / n_heads;
      const int64_t from = full_precision_from(poq, mode, pos0, pos0 + t);
      attend_head(stored, shape, from, q, k, v, pos0, t, static_cast<int>(item % n_heads), out,
                  work);
    }
  });
}

}  // namespace wkvq
