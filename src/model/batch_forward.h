// The forward pass over a batch of sequences (continuous batching: wkvq serve, bench --parallel):
// each sequence contributes a run of consecutive rows (a prompt chunk, or the one token of a
// decode step) at its own positions with its own KV store, and every linear runs once over all
// rows, so one step reads the weights once for all sequences (a GEMM with n = rows, not n GEMVs).
// Each sequence's result is the one its rows would give run alone through forward() with
// GemmUse::Exact (f32 activations, whatever the batch's rows), up to the matmul's rounding for a
// different row count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/rope.h"
#include "model/forward.h"
#include "model/kv_store.h"
#include "model/model.h"

namespace wkvq {

// One sequence's part of a batch: its n >= 1 tokens at positions [pos0, pos0 + n) through `kv`.
struct BatchSeq {
  const int* tokens = nullptr;
  int64_t n = 0;
  int64_t pos0 = 0;
  KvStore* kv = nullptr;
  bool logits = false;  // the logits of its last row are wanted
};

// Buffers reused across steps: activations for the rows and one RoPE table per sequence.
struct BatchScratch {
  ForwardScratch fwd;
  std::vector<RopeTable> rope;
  std::vector<SeqRows> rows;
  std::vector<int> tokens;
  std::vector<float> normed;  // (sequences with logits, dim)
};

// Runs the batch; writes one row of vocab logits for each sequence with `logits` set, in the
// order of `seqs`, to `logits` (that many rows). Throws before computing anything when a token id
// is outside the vocabulary or a sequence would pass the model's context.
void forward_batch(const Model& m, std::span<const BatchSeq> seqs, BatchScratch& s, float* logits);

}  // namespace wkvq
