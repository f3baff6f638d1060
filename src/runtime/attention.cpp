#include "runtime/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "kernels/kv_attend.h"
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
  s.vrecord_bytes = s.record_bytes;
  return s;
}

int64_t full_precision_from(bool poq, ChunkAttention mode, int64_t chunk_start, int64_t pos) {
  if (!poq) return pos + 1;
  return mode == ChunkAttention::FullPrecisionChunk ? chunk_start : pos;
}

int64_t window_from(bool poq, int64_t window, int64_t from, int64_t pos) {
  const int64_t held = poq ? pos : pos + 1;
  return std::min(from, std::max<int64_t>(0, held - window));
}

namespace {

// The stored positions [0, from) of K (kv = 0) or V (kv = 1) as tiles: f(j0, n, records) for
// positions [j0, j0 + n) within one block (n <= kKvTile), records of position j0 on, in order.
template <class F>
void for_each_tile(const StoredKvLayer& s, int kv, int64_t from, F&& f) {
  for_each_block_run(s, from, [&](int64_t j0, int64_t count, int64_t b) {
    const uint8_t* block = kv == 0 ? s.k_block(b) : s.v_block(b);
    const int64_t bytes = kv == 0 ? s.record_bytes : s.vrecord_bytes;
    for (int64_t i = 0; i < count; i += kKvTile) {
      f(j0 + i, std::min(kKvTile, count - i), block + i * bytes);
    }
  });
}

// The head's channels of n K (kv = 0) or V (kv = 1) records as f32 rows: in place for f32
// storage, else decoded into `tile`. Sets *ldx to the distance between rows.
const float* head_rows(const StoredKvLayer& s, int kv, const HeadGroup& h, const uint8_t* records,
                       int64_t n, float* tile, int64_t* ldx) {
  if (s.bits == 32) {
    *ldx = s.kv_dim;
    return reinterpret_cast<const float*>(records) + h.c0;
  }
  const KvQuantFormat& f = kv == 0 ? s.format : s.vformat;
  kv_decode_head({s.quantized() ? f.bits : s.bits, f}, records,
                 kv == 0 ? s.record_bytes : s.vrecord_bytes, n, h.c0, h.hd, tile);
  *ldx = h.hd;
  return tile;
}

}  // namespace

void stored_scores(const StoredKvLayer& s, const HeadGroup& h, int64_t from, float* scores,
                   int64_t ld, float* tile) {
  if (h.q8.q8 != nullptr) {  // int8 queries against the 4-bit codes
    for_each_tile(s, 0, from, [&](int64_t j0, int64_t n, const uint8_t* records) {
      gqa_scores_q8(s.format, records, s.record_bytes, n, h.c0, h.q8, h.g, h.hd, h.inv_sqrt_hd,
                    scores + j0, ld, tile);
    });
    return;
  }
  if (s.quantized()) {  // kv_dot_tokens' sums per group, the codes decoded once for the G heads
    for_each_tile(s, 0, from, [&](int64_t j0, int64_t n, const uint8_t* records) {
      gqa_scores_int(s.format, records, s.record_bytes, n, h.c0, h.qs, h.g, h.hd, h.inv_sqrt_hd,
                     scores + j0, ld, tile);
    });
    return;
  }
  for_each_tile(s, 0, from, [&](int64_t j0, int64_t n, const uint8_t* records) {
    int64_t ldx = 0;
    const float* x = head_rows(s, 0, h, records, n, tile, &ldx);
    gqa_scores(h.qs, h.g, h.hd, x, ldx, n, h.inv_sqrt_hd, scores + j0, ld);
  });
}

void current_scores(const HeadGroup& h, const float* k, int kv_dim, int64_t pos0, int64_t from,
                    int64_t pos, float* scores, int64_t ld) {
  const int64_t n = pos + 1 - from;
  if (n <= 0) return;
  gqa_scores(h.q, h.g, h.hd, k + (from - pos0) * kv_dim + h.c0, kv_dim, n, 1.0f, scores + from, ld);
  for (int r = 0; r < h.g; ++r) {  // q . (k_j - dK)
    float* row = scores + r * ld;
    for (int64_t j = from; j <= pos; ++j) row[j] = (row[j] - h.q_dk[r]) * h.inv_sqrt_hd;
  }
}

namespace {

constexpr int kMassRows = 8;  // rows stored_mass sums at once

// mass[r] = sum_{j < from} p[r * ld + j] in float, j in order, for rows r < rows <= kMassRows:
// the sums interleaved, so that their additions overlap instead of each waiting for the previous
// one (the same floats).
void stored_mass(const float* p, int64_t ld, int rows, int64_t from, float* mass) {
  float m[kMassRows] = {};
  for (int64_t j = 0; j < from; ++j) {
    for (int r = 0; r < kMassRows; ++r) {
      if (r < rows) m[r] += p[r * ld + j];
    }
  }
  for (int r = 0; r < rows; ++r) mass[r] = m[r];
}

}  // namespace

void stored_values(const StoredKvLayer& s, const HeadGroup& h, const float* p, int64_t ld,
                   int64_t from, float* out, float* acc, float* tile) {
  // acc = sum_stored p_j V~_j (V_j itself for float storage)
  std::memset(acc, 0, sizeof(float) * static_cast<size_t>(h.g * h.hd));
  for_each_tile(s, 1, from, [&](int64_t j0, int64_t n, const uint8_t* records) {
    int64_t ldx = 0;
    const float* x = head_rows(s, 1, h, records, n, tile, &ldx);
    gqa_values(p + j0, ld, h.g, h.hd, x, ldx, n, acc);
  });
  if (!s.smoothed()) {
    std::memcpy(out, acc, sizeof(float) * static_cast<size_t>(h.g * h.hd));
    return;
  }
  // the smoothing undone: sV * acc + dV * sum_stored p_j
  const float* sv = s.sv + h.c0;
  const float* dv = s.dv + h.c0;
  float p_stored[kMassRows];
  for (int r = 0; r < h.g; ++r) {
    if (r % kMassRows == 0)
      stored_mass(p + r * ld, ld, std::min(kMassRows, h.g - r), from, p_stored);
    const float* a = acc + r * h.hd;
    float* o = out + r * h.hd;
    for (int i = 0; i < h.hd; ++i) o[i] = sv[i] * a[i] + dv[i] * p_stored[r % kMassRows];
  }
}

void current_values(const HeadGroup& h, const float* v, int kv_dim, const float* p, int64_t ld,
                    int64_t pos0, int64_t from, int64_t pos, float* out) {
  const int64_t n = pos + 1 - from;
  if (n <= 0) return;
  gqa_values(p + from, ld, h.g, h.hd, v + (from - pos0) * kv_dim + h.c0, kv_dim, n, out);
}

namespace {

// Attention of the query heads sharing KV head `kv_head` for new token t (position pos0 + t):
// the steps above.
// Positions [wfrom, from) come from the window's rows (none when wfrom == from).
void attend_group(const StoredKvLayer& s, const AttentionShape& shape, int64_t wfrom, int64_t from,
                  const WindowRows* win, const float* q, const float* k, const float* v,
                  int64_t pos0, int64_t t, int kv_head, float* out, std::vector<float>& work) {
  const int hd = shape.head_dim;
  const int g = shape.n_heads / shape.n_kv_heads;
  const int q_dim = shape.n_heads * hd;
  const int64_t pos = pos0 + t;
  const int64_t ld = (pos + 16) / 16 * 16;  // >= pos + 1
  // work: scores (g, ld) | qs (g, hd) | q_dk (g) | acc (g, hd) | tile (a decoded tile or the
  // int scores' scratch) | with int8 key scores: q8 (g, hd bytes), d and qsum (g * groups)
  const int64_t gh = int64_t{g} * hd;
  const bool q8 = kernel_table().kv_scores.form == KvScores::Int8 && s.quantized() &&
                  gqa_scores_q8_applies(s.format, int64_t{kv_head} * hd, hd);
  const int64_t tile_floats =
      s.quantized() ? std::max({kKvTile * hd, gqa_scores_int_work(s.format, kKvTile, hd),
                                gqa_scores_q8_work(s.format, kKvTile, hd)})
                    : kKvTile * hd;
  const int64_t q8_groups = q8 ? g * (hd / s.format.group) : 0;
  const int64_t q8_floats = q8 ? (gh + 3) / 4 + 2 * q8_groups : 0;
  work.resize(static_cast<size_t>(g * ld + 2 * gh + g + tile_floats + q8_floats));
  float* scores = work.data();
  float* qs = scores + g * ld;
  float* q_dk = qs + gh;
  float* acc = q_dk + g;
  float* tile = acc + gh;
  float* q8_d = tile + tile_floats;
  float* q8_qsum = q8_d + q8_groups;
  auto* q8_codes = reinterpret_cast<int8_t*>(q8_qsum + q8_groups);

  HeadGroup h;
  h.q = q + t * q_dim + int64_t{kv_head} * gh;
  h.g = g;
  h.c0 = kv_head * hd;
  h.hd = hd;
  h.inv_sqrt_hd = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int r = 0; r < g; ++r) {
    const float* qr = h.q + r * hd;
    q_dk[r] = 0.0f;
    for (int i = 0; i < hd; ++i) {
      qs[r * hd + i] = s.smoothed() ? qr[i] * s.sk[h.c0 + i] : qr[i];
      if (s.smoothed()) q_dk[r] += qr[i] * s.dk[h.c0 + i];
    }
  }
  h.qs = qs;
  h.q_dk = q_dk;
  if (q8) {
    quantize_query_q8(qs, g, hd, s.format.group, q8_codes, q8_d, q8_qsum);
    h.q8 = {q8_codes, q8_d, q8_qsum};
  }

  stored_scores(s, h, wfrom, scores, ld, tile);
  if (wfrom < from) current_scores(h, win->k, s.kv_dim, win->pos0, wfrom, from - 1, scores, ld);
  current_scores(h, k, s.kv_dim, pos0, from, pos, scores, ld);
  gqa_softmax(scores, g, pos + 1, ld);
  float* oh = out + t * q_dim + int64_t{kv_head} * gh;
  stored_values(s, h, scores, ld, wfrom, oh, acc, tile);
  if (wfrom < from) current_values(h, win->v, s.kv_dim, scores, ld, win->pos0, wfrom, from - 1, oh);
  current_values(h, v, s.kv_dim, scores, ld, pos0, from, pos, oh);
}

}  // namespace

void attend_chunk(const StoredKvLayer& stored, const AttentionShape& shape, bool poq,
                  ChunkAttention mode, const float* q, const float* k, const float* v, int64_t n,
                  int64_t pos0, float* out, const WindowRows* window) {
  const int n_kv = shape.n_kv_heads;
  const int64_t w = window != nullptr ? window->size : 0;
  parallel_for(n * n_kv, 1, [&](int64_t b, int64_t e) {
    std::vector<float> work;
    for (int64_t item = b; item < e; ++item) {
      const int64_t t = item / n_kv;
      const int64_t from = full_precision_from(poq, mode, pos0, pos0 + t);
      const int64_t wfrom = window_from(poq, w, from, pos0 + t);  // W = 0: from
      attend_group(stored, shape, wfrom, from, window, q, k, v, pos0, t,
                   static_cast<int>(item % n_kv), out, work);
    }
  });
}

}  // namespace wkvq
