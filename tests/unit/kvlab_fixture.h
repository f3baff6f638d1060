// Helpers of the KV lab's tests (kvlab_test.cpp, kvlab_runtime_test.cpp): a small model shape,
// logits through a KV store, and the relative gap between two sets of logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/config.h"
#include "model/forward.h"
#include "model/kv_store.h"
#include "model/model.h"

namespace wkvq::kvlabtest {

inline LlamaConfig lab_config() {
  LlamaConfig c;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.dim = 64;
  c.hidden_dim = 96;
  c.vocab_size = 48;
  c.seq_len = 80;
  return c;
}

// Logits through a store (teacher-forced chunk, or token by token).
inline std::vector<float> store_logits(const Model& model, const std::vector<int>& toks,
                                       KvStore& store, bool stepwise) {
  const int64_t n = static_cast<int64_t>(toks.size());
  const int vocab = model.config.vocab_size;
  std::vector<float> logits(static_cast<size_t>(n * vocab));
  ForwardScratch scratch;
  if (!stepwise) {
    forward(model, toks.data(), n, 0, store, scratch, LogitsFor::All, logits.data(),
            GemmUse::Exact);
    return logits;
  }
  for (int64_t t = 0; t < n; ++t) {
    forward(model, &toks[t], 1, t, store, scratch, LogitsFor::All, &logits[t * vocab],
            GemmUse::Exact);
  }
  return logits;
}

// max |got - want| / max |want|: logits apart, relative to their size.
inline float relative_gap(const std::vector<float>& got, const std::vector<float>& want) {
  float worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return worst / scale;
}

}  // namespace wkvq::kvlabtest
