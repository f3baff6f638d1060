#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "runtime/session.h"

namespace wkvq {

const char* eval_mode_name(EvalMode m) {
  switch (m) {
    case EvalMode::Prefill:
      return "prefill";
    case EvalMode::Decode:
      return "decode";
    case EvalMode::DecodeNoPoq:
      return "decode-nopoq";
  }
  return "?";
}

EvalMode parse_eval_mode(const std::string& s) {
  if (s == "prefill") return EvalMode::Prefill;
  if (s == "decode") return EvalMode::Decode;
  if (s == "decode-nopoq") return EvalMode::DecodeNoPoq;
  fail("unknown evaluation mode '", s, "'; expected prefill, decode or decode-nopoq");
}

namespace {

double log_sum_exp(const float* x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  return std::log(sum) + mx;
}

// The session of one evaluation mode: its cache settings and chunk semantics.
std::unique_ptr<Session> make_eval_session(const Model& m, int64_t ctx, const PplOptions& opt) {
  KvCacheSettings kv = opt.kv;
  if (opt.mode == EvalMode::Prefill) kv = KvCacheSettings{};  // full precision
  if (opt.mode == EvalMode::DecodeNoPoq) kv.poq = false;
  if (opt.mode == EvalMode::Decode) kv.poq = true;
  auto s = std::make_unique<Session>(m, ctx, kv, opt.smoothing);
  s->cache().set_chunk_attention(opt.mode == EvalMode::Prefill ? ChunkAttention::Prefill
                                                               : ChunkAttention::TeacherForced);
  return s;
}

// Runs the windows and calls on_token(nll, kld) for every scored position.
template <class OnToken>
void run_windows(const Model& m, const std::vector<int>& stream, const PplOptions& opt, int64_t ctx,
                 int64_t windows, const PplProgress& progress, OnToken&& on_token) {
  const int vocab = m.config.vocab_size;
  const int64_t chunk = std::max<int64_t>(1, std::min(opt.chunk, ctx));
  auto session = make_eval_session(m, ctx, opt);
  std::unique_ptr<Session> ref;
  if (opt.kld_reference != nullptr) {
    WKVQ_REQUIRE(opt.kld_reference->config.vocab_size == vocab,
                 "KL divergence: the reference model's vocabulary (",
                 opt.kld_reference->config.vocab_size, ") differs from the model's (", vocab, ")");
    ref = std::make_unique<Session>(*opt.kld_reference, ctx);
  }
  std::vector<float> logits(static_cast<size_t>(chunk * vocab));
  std::vector<float> ref_logits(ref ? logits.size() : 0);
  double nll_sum = 0.0;
  int64_t count = 0;
  for (int64_t w = 0; w < windows; ++w) {
    const int* win = stream.data() + w * ctx;
    session->reset();
    if (ref) ref->reset();
    for (int64_t c0 = 0; c0 < ctx - 1; c0 += chunk) {  // the last position predicts nothing
      const int64_t n = std::min(chunk, ctx - 1 - c0);
      session->forward_all(win + c0, n, logits.data());
      if (ref) ref->forward_all(win + c0, n, ref_logits.data());
      for (int64_t t = 0; t < n; ++t) {  // logits at position c0+t predict token c0+t+1
        const float* l = logits.data() + t * vocab;
        const double nll = token_nll(l, vocab, win[c0 + t + 1]);
        WKVQ_REQUIRE(std::isfinite(nll), "non-finite loss at window ", w, " position ", c0 + t + 1,
                     "; the model produced NaN/Inf logits");
        const double kld = ref ? token_kld(ref_logits.data() + t * vocab, l, vocab) : 0.0;
        on_token(nll, kld);
        nll_sum += nll;
        ++count;
      }
    }
    if (progress) progress(w + 1, windows, nll_sum / static_cast<double>(count));
  }
}

int64_t window_count(const std::vector<int>& stream, int64_t ctx, int64_t max_windows) {
  int64_t windows = static_cast<int64_t>(stream.size()) / ctx;
  WKVQ_REQUIRE(windows > 0, "the text has ", stream.size(),
               " tokens, fewer than one window of --ctx ", ctx,
               "; give a longer text or a smaller --ctx");
  if (max_windows > 0) windows = std::min(windows, max_windows);
  return windows;
}

// Mean and standard error of the mean from a sum and a sum of squares.
void mean_stderr(double sum, double sum_sq, int64_t n, double* mean, double* se) {
  const auto cnt = static_cast<double>(n);
  *mean = sum / cnt;
  const double var = n > 1 ? (sum_sq - cnt * *mean * *mean) / (cnt - 1) : 0.0;
  *se = std::sqrt(std::max(0.0, var) / cnt);
}

}  // namespace

double token_nll(const float* logits, int vocab, int target) {
  return log_sum_exp(logits, vocab) - static_cast<double>(logits[target]);
}

double token_kld(const float* ref_logits, const float* logits, int vocab) {
  const double lz_ref = log_sum_exp(ref_logits, vocab), lz = log_sum_exp(logits, vocab);
  double kl = 0.0;
  for (int i = 0; i < vocab; ++i) {
    const double lp_ref = ref_logits[i] - lz_ref, lp = logits[i] - lz;
    kl += std::exp(lp_ref) * (lp_ref - lp);
  }
  return std::max(0.0, kl);
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
  PplResult r;
  r.mode = eval_mode_name(opt.mode);
  r.ctx = ppl_window(m, opt.ctx);
  r.stream_tokens = static_cast<int64_t>(stream.size());
  r.windows = window_count(stream, r.ctx, opt.max_windows);
  double s = 0, s2 = 0, k = 0, k2 = 0;
  run_windows(m, stream, opt, r.ctx, r.windows, progress, [&](double nll, double kld) {
    s += nll;
    s2 += nll * nll;
    k += kld;
    k2 += kld * kld;
    ++r.tokens;
  });
  mean_stderr(s, s2, r.tokens, &r.nll, &r.nll_stderr);
  r.ppl = std::exp(r.nll);
  r.has_kld = opt.kld_reference != nullptr;
  if (r.has_kld) mean_stderr(k, k2, r.tokens, &r.kld, &r.kld_stderr);
  if (opt.mode != EvalMode::Prefill) {
    const KvCache probe(m.config, 1, opt.kv);
    r.kv_bits_per_element = probe.bits_per_element();
    r.kv_bytes_per_token = probe.bytes_per_token();
  } else {
    r.kv_bytes_per_token = int64_t{2} * m.config.n_layers * m.config.kv_dim() * 4;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<double> token_nlls(const Model& m, const std::vector<int>& stream,
                               const PplOptions& opt) {
  const int64_t ctx = ppl_window(m, opt.ctx);
  std::vector<double> out;
  run_windows(m, stream, opt, ctx, window_count(stream, ctx, opt.max_windows), {},
              [&](double nll, double) { out.push_back(nll); });
  return out;
}

}  // namespace wkvq
