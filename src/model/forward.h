// The Llama decoder forward pass of the runtime (llama2.c's forward, batched over n tokens).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/rope.h"
#include "model/kv_store.h"
#include "model/model.h"

namespace wkvq {

// Activation buffers for up to `capacity` tokens at once; reused across calls.
struct ForwardScratch {
  int64_t capacity = 0;
  std::vector<float> x;    // (n, dim)          residual stream
  std::vector<float> xb;   // (n, dim)          normed input / branch output
  std::vector<float> q;    // (n, q_dim)
  std::vector<float> k;    // (n, kv_dim)
  std::vector<float> v;    // (n, kv_dim)
  std::vector<float> att;  // (n, q_dim)        attention output before wo
  std::vector<float> hb;   // (n, hidden_dim)   gate, then silu(gate) * up
  std::vector<float> hb2;  // (n, hidden_dim)   up
  RopeTable rope;
  void reserve(const LlamaConfig& c, int64_t n);
  // Bytes the buffers hold (capacity, not size).
  int64_t bytes() const;
};

// Which positions of the chunk get logits.
enum class LogitsFor { None, Last, All };

// Runs n tokens at positions [pos0, pos0 + n) through the model, attending through `kv`.
// logits: (n, vocab) for All, (vocab) for Last, unused for None. `use` picks the int4 GEMM of the
// block linears when n is more rows than the dot kernels take (kernels/kernel_table.h: Exact for
// evaluation, Prompt for a session's prompt); the output head always runs Exact.
void forward(const Model& m, const int* tokens, int64_t n, int64_t pos0, KvStore& kv,
             ForwardScratch& s, LogitsFor which, float* logits, GemmUse use);

// One decoder block on the residual stream s.x (n, dim), in place.
void block_forward(const Model& m, int layer, int64_t n, int64_t pos0, KvStore& kv,
                   ForwardScratch& s, GemmUse use = GemmUse::Exact);

// The rows of one sequence in a batch of several (continuous batching, serve/): rows
// [row0, row0 + n) of the scratch are that sequence's tokens at positions [pos0, pos0 + n),
// attending through its own `kv`; RoPE row t - row0 of `rope` (built for pos0, n) rotates row t.
struct SeqRows {
  int64_t row0 = 0, n = 0, pos0 = 0;
  KvStore* kv = nullptr;
  const RopeTable* rope = nullptr;
};

// block_forward over a batch: every linear runs once over all rows (one pass over the weights),
// RoPE and attention per sequence. `seqs` cover rows [0, n_rows) in order.
void block_forward_rows(const Model& m, int layer, std::span<const SeqRows> seqs, int64_t n_rows,
                        ForwardScratch& s, GemmUse use);

}  // namespace wkvq
