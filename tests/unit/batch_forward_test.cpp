// The batched forward of continuous batching (model/batch_forward.h): the logits of several
// sequences at different positions, run in one batch (decode rows and a prompt chunk mixed),
// equal each sequence run alone through a Session, within the rounding of the matmuls' other
// summation order for another row count.
#include "model/batch_forward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "model/random_model.h"
#include "runtime/kv_cache.h"
#include "runtime/session.h"

namespace wkvq {
namespace {

LlamaConfig small_shape() {
  LlamaConfig c = shape_preset("stories260k-shape");
  c.seq_len = 64;
  return c;
}

std::vector<int> tokens_from(int seed, int n, int vocab) {
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back((seed * 131 + i * 17 + 3) % vocab);
  return t;
}

// Each dot product of the forward has at most K = max(dim, hidden_dim, q_dim) terms; a change of
// summation order moves it by at most about K * u relative to the sum of |terms| (u = 2^-24),
// and the error passes through every layer's residual stream. The bound below is that per-layer
// figure times the layers and the head, times 8 for the growth through norms and softmax, on the
// scale of the logits.
double tolerance(const LlamaConfig& c, double logit_scale) {
  const double k = std::max({c.dim, c.hidden_dim, c.q_dim()});
  return 8.0 * (c.n_layers + 1) * k * std::ldexp(1.0, -24) * std::max(1.0, logit_scale);
}

TEST(BatchForward, SequencesAtDifferentPositionsMatchEachRunAlone) {
  const LlamaConfig c = small_shape();
  const Model m = make_random_model(c, 7);
  const int vocab = c.vocab_size;
  // three sequences with prompts of 5, 11 and 2 tokens, decoding their next token together with
  // a fourth sequence's 9-token prompt chunk
  const std::vector<int> lens = {5, 11, 2};
  std::vector<std::vector<int>> prompts;
  for (size_t i = 0; i < lens.size(); ++i) {
    prompts.push_back(tokens_from(static_cast<int>(i) + 1, lens[i] + 1, vocab));
  }
  const std::vector<int> chunk = tokens_from(9, 9, vocab);

  // alone: prefill the prompt, then decode its last token
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) {
    Session s(m, c.seq_len);
    s.prefill(std::vector<int>(p.begin(), p.end() - 1));
    const float* l = s.decode(p.back());
    alone.emplace_back(l, l + vocab);
  }
  {
    Session s(m, c.seq_len);
    const float* l = s.prefill(chunk);
    alone.emplace_back(l, l + vocab);
  }

  // batched: the same prompts prefilled into their own caches, then one step over all four
  std::vector<std::unique_ptr<KvCache>> caches;
  for (const auto& p : prompts) {
    caches.push_back(std::make_unique<KvCache>(c, c.seq_len));
    ForwardScratch fs;
    forward(m, p.data(), static_cast<int64_t>(p.size()) - 1, 0, *caches.back(), fs, LogitsFor::None,
            nullptr, GemmUse::Exact);
  }
  caches.push_back(std::make_unique<KvCache>(c, c.seq_len));
  std::vector<BatchSeq> batch;
  for (size_t i = 0; i < prompts.size(); ++i) {
    batch.push_back({&prompts[i].back(), 1, lens[i], caches[i].get(), true});
  }
  batch.push_back({chunk.data(), static_cast<int64_t>(chunk.size()), 0, caches.back().get(), true});
  BatchScratch scratch;
  std::vector<float> logits(batch.size() * static_cast<size_t>(vocab));
  forward_batch(m, batch, scratch, logits.data());

  for (size_t i = 0; i < batch.size(); ++i) {
    double scale = 0, worst = 0;
    for (int v = 0; v < vocab; ++v) {
      scale = std::max(scale, std::fabs(static_cast<double>(alone[i][static_cast<size_t>(v)])));
      worst = std::max(worst, std::fabs(static_cast<double>(logits[i * vocab + v]) -
                                        alone[i][static_cast<size_t>(v)]));
    }
    EXPECT_LE(worst, tolerance(c, scale)) << "sequence " << i;
    EXPECT_GT(scale, 0.0);
  }
}

// A sequence that asks for no logits still fills its cache: its next decode alone gives the
// logits of running it alone all along.
TEST(BatchForward, ChunkWithoutLogitsFillsItsCache) {
  const LlamaConfig c = small_shape();
  const Model m = make_random_model(c, 3);
  const std::vector<int> p = tokens_from(4, 12, c.vocab_size);
  Session s(m, c.seq_len);
  const float* want = s.prefill(p);

  KvCache a(c, c.seq_len), b(c, c.seq_len);
  const std::vector<int> other = tokens_from(5, 3, c.vocab_size);
  BatchScratch scratch;
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  const std::vector<BatchSeq> first = {{p.data(), 6, 0, &a, false}, {other.data(), 3, 0, &b, true}};
  forward_batch(m, first, scratch, logits.data());
  const std::vector<BatchSeq> second = {{p.data() + 6, 6, 6, &a, true}};
  forward_batch(m, second, scratch, logits.data());
  double worst = 0, scale = 0;
  for (int v = 0; v < c.vocab_size; ++v) {
    scale = std::max(scale, std::fabs(static_cast<double>(want[v])));
    worst =
        std::max(worst, std::fabs(static_cast<double>(logits[static_cast<size_t>(v)]) - want[v]));
  }
  EXPECT_LE(worst, tolerance(c, scale));
}

TEST(BatchForward, RefusesTokensOutsideTheVocabularyAndTheContext) {
  const LlamaConfig c = small_shape();
  const Model m = make_random_model(c, 3);
  KvCache kv(c, c.seq_len);
  BatchScratch scratch;
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  const int bad = c.vocab_size;
  const std::vector<BatchSeq> b1 = {{&bad, 1, 0, &kv, true}};
  EXPECT_THROW(forward_batch(m, b1, scratch, logits.data()), Error);
  const int ok = 1;
  const std::vector<BatchSeq> b2 = {{&ok, 1, c.seq_len, &kv, true}};
  EXPECT_THROW(forward_batch(m, b2, scratch, logits.data()), Error);
}

}  // namespace
}  // namespace wkvq
