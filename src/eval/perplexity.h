// Perplexity by the protocol of design.md §3: one token stream (BOS first), non-overlapping
// windows of T tokens, each a fresh context; loss over positions 1..T-1 of every window.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"

namespace wkvq {

struct PplOptions {
  int64_t ctx = 0;          // window length T (0: min(2048, model context))
  int64_t max_windows = 0;  // 0: all full windows of the stream
  int64_t chunk = 512;      // tokens per forward pass inside a window (bounds logits memory)
};

struct PplResult {
  std::string mode = "prefill";
  double ppl = 0;         // exp(mean NLL)
  double nll = 0;         // mean NLL, nats per token
  double nll_stderr = 0;  // standard error of the mean NLL
  int64_t tokens = 0;     // scored tokens
  int64_t windows = 0;
  int64_t ctx = 0;
  int64_t stream_tokens = 0;
  double seconds = 0;
};

// Called after each window with (windows done, windows total, running mean NLL).
using PplProgress = std::function<void(int64_t, int64_t, double)>;

// Effective window length for a model: opt.ctx, or min(2048, context); validated.
int64_t ppl_window(const Model& m, int64_t ctx);

PplResult perplexity(const Model& m, const std::vector<int>& stream, const PplOptions& opt,
                     const PplProgress& progress = {});

// NLL of `target` under logits (vocab): logsumexp(logits) - logits[target], in double.
double token_nll(const float* logits, int vocab, int target);

}  // namespace wkvq
