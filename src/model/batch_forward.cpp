#include "model/batch_forward.h"

#include "core/error.h"
#include "kernels/vec_ops.h"

namespace wkvq {

void forward_batch(const Model& m, std::span<const BatchSeq> seqs, BatchScratch& s, float* logits) {
  const LlamaConfig& c = m.config;
  WKVQ_REQUIRE(!seqs.empty(), "forward_batch: no sequences given");
  int64_t n_rows = 0, n_logits = 0;
  s.tokens.clear();
  for (const BatchSeq& q : seqs) {
    WKVQ_REQUIRE(q.n > 0 && q.kv != nullptr, "forward_batch: a sequence without tokens or store");
    WKVQ_REQUIRE(q.pos0 >= 0 && q.pos0 + q.n <= c.seq_len, "forward_batch: positions ", q.pos0,
                 "..", q.pos0 + q.n - 1, " exceed the model context of ", c.seq_len, " tokens");
    for (int64_t t = 0; t < q.n; ++t) {
      WKVQ_REQUIRE(q.tokens[t] >= 0 && q.tokens[t] < c.vocab_size, "token id ", q.tokens[t],
                   " at position ", q.pos0 + t, " is outside the vocabulary [0, ", c.vocab_size,
                   ")");
      s.tokens.push_back(q.tokens[t]);
    }
    n_rows += q.n;
    n_logits += q.logits ? 1 : 0;
  }
  s.fwd.reserve(c, n_rows);
  if (s.rope.size() < seqs.size()) s.rope.resize(seqs.size());
  s.rows.clear();
  int64_t row0 = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    s.rope[i].build(seqs[i].pos0, seqs[i].n, c.head_dim, c.rope_theta, c.rope_scaling);
    s.rows.push_back({row0, seqs[i].n, seqs[i].pos0, seqs[i].kv, &s.rope[i]});
    row0 += seqs[i].n;
  }

  // x = embedding rows of the tokens                                      (n_rows, dim)
  for (int64_t t = 0; t < n_rows; ++t) {
    m.embedding_row(s.tokens[static_cast<size_t>(t)], s.fwd.x.data() + t * c.dim);
  }
  for (int layer = 0; layer < c.n_layers; ++layer) {
    block_forward_rows(m, layer, s.rows, n_rows, s.fwd, GemmUse::Exact);
  }
  if (n_logits == 0) return;

  // logits = rmsnorm(x) Wout^T for the last row of each sequence asking  (n_logits, vocab)
  s.normed.resize(static_cast<size_t>(n_logits * c.dim));
  int64_t k = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (!seqs[i].logits) continue;
    const int64_t last = s.rows[i].row0 + s.rows[i].n - 1;
    rmsnorm(s.normed.data() + k * c.dim, s.fwd.x.data() + last * c.dim, m.final_norm, c.dim,
            c.norm_eps);
    ++k;
  }
  m.output.forward(s.normed.data(), n_logits, logits);
}

}  // namespace wkvq
