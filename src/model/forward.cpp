#include "model/forward.h"

#include <array>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/vec_ops.h"

namespace wkvq {

void ForwardScratch::reserve(const LlamaConfig& c, int64_t n) {
  if (n <= capacity) return;
  capacity = n;
  auto sz = [n](int width) { return static_cast<size_t>(n * width); };
  x.resize(sz(c.dim));
  xb.resize(sz(c.dim));
  q.resize(sz(c.q_dim()));
  k.resize(sz(c.kv_dim()));
  v.resize(sz(c.kv_dim()));
  att.resize(sz(c.q_dim()));
  hb.resize(sz(c.hidden_dim));
  hb2.resize(sz(c.hidden_dim));
}

int64_t ForwardScratch::bytes() const {
  size_t n = 0;
  for (const std::vector<float>* b : {&x, &xb, &q, &k, &v, &att, &hb, &hb2, &rope.cos, &rope.sin}) {
    n += b->capacity();
  }
  return static_cast<int64_t>(n * sizeof(float));
}

namespace {

// out[t] = rmsnorm(x[t]) * w for each of the n rows of width `dim`.
void rmsnorm_rows(float* out, const float* x, const float* w, int64_t n, int dim, float eps) {
  parallel_for(n, 16, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) rmsnorm(out + t * dim, x + t * dim, w, dim, eps);
  });
}

}  // namespace

void block_forward(const Model& m, int layer, int64_t n, int64_t pos0, KvStore& kv,
                   ForwardScratch& s, GemmUse use) {
  const SeqRows one{0, n, pos0, &kv, &s.rope};
  block_forward_rows(m, layer, {&one, 1}, n, s, use);
}

void block_forward_rows(const Model& m, int layer, std::span<const SeqRows> seqs, int64_t n,
                        ForwardScratch& s, GemmUse use) {
  const LlamaConfig& c = m.config;
  const LayerWeights& l = m.layers[static_cast<size_t>(layer)];
  const int dim = c.dim;

  // attention: xb = rmsnorm(x); q, k, v = xb Wq^T (+ bq), xb Wk^T (+ bk), xb Wv^T (+ bv)
  //                                                                     (n, q_dim / kv_dim)
  rmsnorm_rows(s.xb.data(), s.x.data(), l.attn_norm, n, dim, c.norm_eps);
  forward_group(std::array{&l.wq, &l.wk, &l.wv}, s.xb.data(), n,
                std::array{s.q.data(), s.k.data(), s.v.data()}, use);
  // qk_norm: every head of q and k RMS-normed with q_norm / k_norm         (n * heads, head_dim)
  if (l.q_norm != nullptr) {
    rmsnorm_rows(s.q.data(), s.q.data(), l.q_norm, n * c.n_heads, c.head_dim, c.norm_eps);
    rmsnorm_rows(s.k.data(), s.k.data(), l.k_norm, n * c.n_kv_heads, c.head_dim, c.norm_eps);
  }
  for (const SeqRows& r : seqs) {
    // RoPE on q and k, position r.pos0 + t for row r.row0 + t
    for (int64_t t = 0; t < r.n; ++t) {
      const int64_t row = r.row0 + t;
      rope_apply(s.q.data() + row * c.q_dim(), c.n_heads, c.head_dim, *r.rope, t, c.rope_layout);
      rope_apply(s.k.data() + row * c.kv_dim(), c.n_kv_heads, c.head_dim, *r.rope, t,
                 c.rope_layout);
    }
    // att = softmax(q K^T / sqrt(hd)) V over the sequence's cache and its new tokens (n, q_dim)
    r.kv->attend(layer, s.q.data() + r.row0 * c.q_dim(), s.k.data() + r.row0 * c.kv_dim(),
                 s.v.data() + r.row0 * c.kv_dim(), r.n, r.pos0, s.att.data() + r.row0 * c.q_dim());
  }
  // x += att Wo^T                                                        (n, dim)
  l.wo.forward(s.att.data(), n, s.xb.data(), use);
  add_inplace(s.x.data(), s.xb.data(), n * dim);

  // MLP: x += (silu(xb Wg^T) * (xb Wu^T)) Wd^T with xb = rmsnorm(x)     (n, hidden) -> (n, dim)
  rmsnorm_rows(s.xb.data(), s.x.data(), l.ffn_norm, n, dim, c.norm_eps);
  forward_group(std::array{&l.w_gate, &l.w_up}, s.xb.data(), n,
                std::array{s.hb.data(), s.hb2.data()}, use);
  silu_mul(s.hb.data(), s.hb2.data(), n * c.hidden_dim);
  l.w_down.forward(s.hb.data(), n, s.xb.data(), use);
  add_inplace(s.x.data(), s.xb.data(), n * dim);
}

void forward(const Model& m, const int* tokens, int64_t n, int64_t pos0, KvStore& kv,
             ForwardScratch& s, LogitsFor which, float* logits, GemmUse use) {
  const LlamaConfig& c = m.config;
  WKVQ_REQUIRE(n > 0, "forward: no tokens given");
  WKVQ_REQUIRE(pos0 >= 0 && pos0 + n <= c.seq_len, "forward: positions ", pos0, "..", pos0 + n - 1,
               " exceed the model context of ", c.seq_len,
               " tokens; use a shorter text, --ctx or --steps");
  s.reserve(c, n);
  s.rope.build(pos0, n, c.head_dim, c.rope_theta, c.rope_scaling);

  // x = embedding rows of the tokens                                      (n, dim)
  for (int64_t t = 0; t < n; ++t) {
    const int tok = tokens[t];
    WKVQ_REQUIRE(tok >= 0 && tok < c.vocab_size, "token id ", tok, " at position ", pos0 + t,
                 " is outside the vocabulary [0, ", c.vocab_size, ")");
    m.embedding_row(tok, s.x.data() + t * c.dim);
  }
  for (int layer = 0; layer < c.n_layers; ++layer) block_forward(m, layer, n, pos0, kv, s, use);
  if (which == LogitsFor::None) return;

  // logits = rmsnorm(x) Wout^T, for the rows asked                        (rows, vocab)
  const int64_t first = which == LogitsFor::All ? 0 : n - 1;
  const int64_t rows = n - first;
  rmsnorm_rows(s.xb.data(), s.x.data() + first * c.dim, m.final_norm, rows, c.dim, c.norm_eps);
  m.output.forward(s.xb.data(), rows, logits);
}

}  // namespace wkvq
