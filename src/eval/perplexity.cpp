#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "runtime/session.h"

namespace wkvq {

double token_nll(const float* logits, int vocab, int target) {
  float mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return std::log(sum) + mx - static_cast<double>(logits[target]);
}

int64_t ppl_window(const Model& m, int64_t ctx) {
  const int64_t model_ctx = m.config.seq_len;
  if (ctx == 0) return std::min<int64_t>(2048, model_ctx);
  WKVQ_REQUIRE(ctx >= 2, "--ctx must be at least 2 tokens, found ", ctx);
  WKVQ_REQUIRE(ctx <= model_ctx, "--ctx ", ctx, " exceeds the model's context of ", model_ctx,
               " tokens; choose --ctx <= ", model_ctx);
  return ctx;
}

PplResult perplexity(const Model& m, const std::vector<int>& stream, const PplOptions& opt,
                     const PplProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int vocab = m.config.vocab_size;
  PplResult r;
  r.ctx = ppl_window(m, opt.ctx);
  r.stream_tokens = static_cast<int64_t>(stream.size());
  int64_t windows = r.stream_tokens / r.ctx;
  WKVQ_REQUIRE(windows > 0, "the text has ", r.stream_tokens,
               " tokens, fewer than one window of --ctx ", r.ctx,
               "; give a longer text or a smaller --ctx");
  if (opt.max_windows > 0) windows = std::min(windows, opt.max_windows);
  const int64_t chunk = std::max<int64_t>(1, std::min(opt.chunk, r.ctx));

  Session session(m, r.ctx);
  std::vector<float> logits(static_cast<size_t>(chunk * vocab));
  double sum = 0.0, sum_sq = 0.0;
  for (int64_t w = 0; w < windows; ++w) {
    const int* win = stream.data() + w * r.ctx;
    session.reset();
    for (int64_t c0 = 0; c0 < r.ctx - 1; c0 += chunk) {  // the last position predicts nothing
      const int64_t n = std::min(chunk, r.ctx - 1 - c0);
      session.forward_all(win + c0, n, logits.data());
      for (int64_t t = 0; t < n; ++t) {  // logits at position c0+t predict token c0+t+1
        const double nll = token_nll(logits.data() + t * vocab, vocab, win[c0 + t + 1]);
        WKVQ_REQUIRE(std::isfinite(nll), "non-finite loss at window ", w, " position ",
                     c0 + t + 1, "; the model produced NaN/Inf logits");
        sum += nll;
        sum_sq += nll * nll;
      }
    }
    r.tokens += r.ctx - 1;
    if (progress) progress(w + 1, windows, sum / static_cast<double>(r.tokens));
  }
  const auto count = static_cast<double>(r.tokens);
  r.windows = windows;
  r.nll = sum / count;
  const double var = r.tokens > 1 ? (sum_sq - count * r.nll * r.nll) / (count - 1) : 0.0;
  r.nll_stderr = std::sqrt(std::max(0.0, var) / count);
  r.ppl = std::exp(r.nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace wkvq
