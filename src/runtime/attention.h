// Attention over a quantized KV cache with past-only quantization (POQ, design.md §2.2).
//
// KvCache (runtime/kv_cache.h) stores and encodes keys and values; this unit reads them back. For
// a query at position pos, the positions [0, pos] split in two (full_precision_from below):
//   [0, from)    read from the cache as stored (f32, fp16 or int records of formats/kv_quant.h,
//                holding the smoothed K~ = (K - dK) / sK and V~ = (V - dV) / sV);
//   [from, pos]  the chunk's own full-precision k, v, which were just handed to the cache.
// Attention runs per token and KV head, for the G query heads sharing that KV head at once (GQA:
// each stored position is read and decoded once for all G; every head's floats are those of one
// head at a time, kernels/kv_attend.h), over tiles of at most kKvTile
// consecutive positions within one cache block (kernels/kv_attend.h). Four named steps plus the
// softmax between them, each over the G heads:
//   stored_scores   score_j = (qs . K~_j) / sqrt(hd), qs = q * sK, over the stored records
//                   decoded a tile at a time (q . K_j = qs . K~_j + q . dK), int records as their
//                   codes (kv_dot_tokens' sums);
//   current_scores  score_j = q . (k_j - dK) / sqrt(hd): every score of the query drops the same
//                   q . dK, so the softmax is unchanged (forgetting it on the full-precision
//                   positions is the silent accuracy bug of design.md §2.2);
//   stored_values   sV * sum_stored p_j V~_j + dV * sum_stored p_j: the smoothing undone, exactly,
//                   since the probabilities of a row sum to 1;
//   current_values  + sum_fp p_j v_j.
#pragma once

#include <cstdint>

#include "formats/kv_quant.h"
#include "kernels/kv_attend.h"

namespace wkvq {

// How the tokens of one chunk (several new tokens fed in one pass) see each other.
enum class ChunkAttention {
  // A prompt chunk (design.md §2.2 "prefill of a chunk"): under POQ every token sees the chunk's
  // earlier tokens, and itself, in full precision.
  FullPrecisionChunk,
  // Teacher-forced: every token sees exactly what it would see if the chunk's tokens were decoded
  // one at a time (the evaluation's decode modes, calibration's fake-quantized block).
  TeacherForced,
};

// Which positions a query sees in full precision: the first one, `from`; the query at position
// `pos` (in the chunk starting at `chunk_start`) reads [0, from) from the quantized cache and
// [from, pos] in full precision. Design.md §2.2:
//   Past-only quantization (POQ) (a switch, on by default; off gives conventional KV
//   quantization, where even a prefill chunk is quantized before its own attention):
//   - prefill of a chunk: attention uses the chunk's full-precision K/V (plus the quantized cache
//     of earlier chunks); afterwards the chunk's K/V are quantized into the cache;
//   - decode step t: attention uses the dequantized cache for j < t and the full-precision k_t,
//     v_t for j = t; then k_t, v_t are quantized and appended.
//   Teacher-forced parallel form (used by evaluation and calibration; must equal token-by-token
//   decoding up to float rounding): scores use dequantized K for j < t and full-precision K on
//   the diagonal; outputs use dequantized V off the diagonal and full-precision V on it.
// So: poq off -> pos + 1 (nothing in full precision); FullPrecisionChunk -> chunk_start;
// TeacherForced -> pos (the diagonal only).
int64_t full_precision_from(bool poq, ChunkAttention mode, int64_t chunk_start, int64_t pos);

// What attention reads of one layer of a KV cache: the stored K and V of positions 0, 1, ..., in
// blocks of `block_tokens` positions (a paged cache, runtime/kv_pool.h), and the smoothing applied
// before storing them. Positions [b * B, (b + 1) * B) sit in block b: their K records start at
// k_block(b), one record of record_bytes per position (f32 or fp16: kv_dim values; int: a token
// record of `format`); V likewise (vrecord_bytes, vformat). Attention loops over blocks, never
// dividing per position. contiguous_f32_layer() describes plain contiguous f32 arrays as one block.
struct StoredKvLayer {
  int bits = 32;                    // 32: f32, 16: fp16, 2/3/4/8: int records of `format`
  int kv_dim = 0;                   // channels of one position (n_kv_heads * head_dim)
  const uint8_t* k = nullptr;       // K records of pool block 0 (blocks[b] * block_bytes further)
  const uint8_t* v = nullptr;       // V records, likewise
  const int64_t* blocks = nullptr;  // pool ids of the sequence's blocks 0, 1, ...
  int64_t block_tokens = 0;         // B: positions per block
  int64_t block_bytes = 0;          // bytes from one pool id to the next
  int64_t record_bytes = 0;         // bytes of one position's K record
  int64_t vrecord_bytes = 0;        // bytes of one position's V record
  KvQuantFormat format{};           // int storage: the K records' format
  KvQuantFormat vformat{};          // int storage: the V records' (other bits: vbits)
  const float* dk = nullptr;        // int storage with smoothing: dK, sK, dV, sV (kv_dim each);
  const float* sk = nullptr;        // null: no smoothing
  const float* dv = nullptr;        //
  const float* sv = nullptr;        //
  bool quantized() const { return bits <= 8; }
  bool smoothed() const { return dk != nullptr; }
  const uint8_t* k_block(int64_t b) const { return k + blocks[b] * block_bytes; }
  const uint8_t* v_block(int64_t b) const { return v + blocks[b] * block_bytes; }
};

// Positions [0, n) of plain contiguous f32 storage: K of position j at k + j * kv_dim, V at
// v + j * kv_dim (n >= 1; one block of n positions). The arrays must outlive the result.
StoredKvLayer contiguous_f32_layer(const float* k, const float* v, int kv_dim, int64_t n);

struct AttentionShape {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
};

// A full-precision window (KvQuantSettings::window, runtime/kv_cache.h): the `size` most recent
// positions a query's cache holds are read from these f32 rows (fp16 values widened) instead of
// from `stored`. Rows hold positions [pos0, pos0 + rows), kv_dim floats apart, k and v alike.
struct WindowRows {
  int64_t size = 0;          // W: positions in the window
  const float* k = nullptr;  // rows of positions [pos0, pos0 + rows)
  const float* v = nullptr;  //
  int64_t pos0 = 0;          // the first position the rows hold
};

// Which positions a query at `pos` reads from a window of W positions: [window_from(...), from),
// from = full_precision_from(poq, mode, chunk_start, pos). The cache holds the tokens before pos
// under POQ (pos itself without), its W most recent in the window, so the window starts at
// max(0, held - W), held = poq ? pos : pos + 1, and never after `from`. W = 0: `from`.
int64_t window_from(bool poq, int64_t window, int64_t from, int64_t pos);

// KvStore::attend's contract (model/kv_store.h) for n new tokens at positions [pos0, pos0 + n):
// q (n, n_heads * head_dim), k, v (n, kv_dim) in full precision, out (n, n_heads * head_dim);
// every position of the chunk already stored in `stored`. Each query reads the positions before
// full_precision_from(poq, mode, pos0, pos) from `stored`, the rest from k, v; with a window
// (`window` non-null, size > 0), positions [window_from(...), from) from the window's rows, which
// must hold them (pos0 of the rows <= max(0, pos0 - W); through pos0 + n - 1 when a query reads
// chunk positions through the window: TeacherForced, or POQ off).
void attend_chunk(const StoredKvLayer& stored, const AttentionShape& shape, bool poq,
                  ChunkAttention mode, const float* q, const float* k, const float* v, int64_t n,
                  int64_t pos0, float* out, const WindowRows* window = nullptr);

// Positions per tile: a tile of decoded K or V (kKvTile x head_dim floats) stays in L1.
constexpr int64_t kKvTile = 32;

// The G query heads of one token that share one KV head (channels [c0, c0 + hd)), as the four
// steps read them; row r of every (G, ...) array is the group's r-th query head.
struct HeadGroup {
  const float* q = nullptr;     // (G, hd) the query heads
  const float* qs = nullptr;    // (G, hd) q * sK on the KV head's channels (q without smoothing)
  const float* q_dk = nullptr;  // (G) q . dK (0 without smoothing)
  int g = 0, c0 = 0, hd = 0;    // G, the KV head's first channel, head_dim
  float inv_sqrt_hd = 0.0f;     // 1 / sqrt(hd)
  // qs rounded to int8 per key group (kernels/kv_attend.h) when the stored keys are scored with
  // int8 queries (KernelTable::kv_scores Int8, 4-bit keys); q8.q8 null otherwise.
  QueryQ8 q8;
};

// The four steps (see the top of this file). Scores and probabilities are (G, ld): row r over
// positions [0, pos]. The stored steps run over j in [0, from), the current ones over j in
// [from, pos], whose k, v are the chunk's rows j - pos0 (kv_dim floats apart). Scratch: `tile`
// holds kKvTile * hd floats (int storage: at least gqa_scores_int_work(format, kKvTile, hd) and
// gqa_scores_q8_work),
// `acc` G * hd.
void stored_scores(const StoredKvLayer& s, const HeadGroup& h, int64_t from, float* scores,
                   int64_t ld, float* tile);
void current_scores(const HeadGroup& h, const float* k, int kv_dim, int64_t pos0, int64_t from,
                    int64_t pos, float* scores, int64_t ld);
// out (G, hd) = the stored positions' share of the output (p: the softmax of the scores).
void stored_values(const StoredKvLayer& s, const HeadGroup& h, const float* p, int64_t ld,
                   int64_t from, float* out, float* acc, float* tile);
// out (G, hd) += the full-precision positions' share.
void current_values(const HeadGroup& h, const float* v, int kv_dim, const float* p, int64_t ld,
                    int64_t pos0, int64_t from, int64_t pos, float* out);

}  // namespace wkvq
