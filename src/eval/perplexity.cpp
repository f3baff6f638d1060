#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "core/clock.h"
#include "core/error.h"
#include "model/forward.h"
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

// KL(softmax(ref) || softmax(logits)) given log-sum-exp(ref).
double kld_given_ref_lse(const float* ref_logits, double lz_ref, const float* logits, int vocab) {
  const double lz = log_sum_exp(logits, vocab);
  double kl = 0.0;
  for (int i = 0; i < vocab; ++i) {
    const double lp_ref = ref_logits[i] - lz_ref, lp = logits[i] - lz;
    kl += std::exp(lp_ref) * (lp_ref - lp);
  }
  return std::max(0.0, kl);
}

// What one evaluation runs a window through: a session over the runtime cache (its settings and
// chunk semantics from the mode), or the model with the evaluation's own store.
class EvalRunner {
 public:
  EvalRunner(const EvalSpec& e, int64_t ctx) : model_(*e.model) {
    if (e.store && e.mode != EvalMode::Prefill) {
      store_ = e.store(ctx, e.mode == EvalMode::Decode);
      return;
    }
    KvQuantSettings kv = e.kv;
    if (e.mode == EvalMode::Prefill) kv = KvQuantSettings{};  // full precision
    if (e.mode == EvalMode::DecodeNoPoq) kv.poq = false;
    if (e.mode == EvalMode::Decode) kv.poq = true;
    session_ = std::make_unique<Session>(*e.model, ctx, kv, e.smoothing);
    session_->cache().set_chunk_attention(e.mode == EvalMode::Prefill
                                              ? ChunkAttention::FullPrecisionChunk
                                              : ChunkAttention::TeacherForced);
  }
  void reset() {
    pos_ = 0;
    if (session_) session_->reset();
    if (store_) store_->reset();
  }
  void forward_all(const int* tokens, int64_t n, float* logits) {
    if (session_) {
      session_->forward_all(tokens, n, logits);
      return;
    }
    forward(model_, tokens, n, pos_, *store_, scratch_, LogitsFor::All, logits, GemmUse::Exact);
    pos_ += n;
  }

 private:
  const Model& model_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<EvalKvStore> store_;
  ForwardScratch scratch_;
  int64_t pos_ = 0;
};

// Every token id of the scored part of the stream (its first n tokens) must index the model's
// vocabulary: the windows feed them to the embeddings and score them against the logits.
void check_token_ids(const std::vector<int>& stream, int64_t n, int vocab) {
  for (int64_t i = 0; i < n; ++i) {
    const int id = stream[static_cast<size_t>(i)];
    WKVQ_REQUIRE(id >= 0 && id < vocab, "token ", i, " of the text has id ", id,
                 ", outside the model's vocabulary of ", vocab,
                 " tokens: the tokenizer does not belong to this model; pass the model's own "
                 "--tokenizer");
  }
}

// Runs the windows for every evaluation, window by window (the KLD reference once per chunk for
// all of them), and calls on_token(e, nll, kld) for every scored position of evaluation e, in
// window and position order. seconds[e]: time of e's forward passes and scoring.
template <class OnToken>
void run_windows(const std::vector<EvalSpec>& evals, const std::vector<int>& stream,
                 const PplOptions& opt, int64_t ctx, int64_t windows, const PplProgress& progress,
                 std::vector<double>& seconds, OnToken&& on_token) {
  const int vocab = evals[0].model->config.vocab_size;
  check_token_ids(stream, windows * ctx, vocab);
  const int64_t chunk = std::max<int64_t>(1, std::min(opt.chunk, ctx));
  std::vector<std::unique_ptr<EvalRunner>> sessions;
  for (const EvalSpec& e : evals) sessions.push_back(std::make_unique<EvalRunner>(e, ctx));
  std::unique_ptr<Session> ref;
  if (opt.kld_reference != nullptr) {
    WKVQ_REQUIRE(opt.kld_reference->config.vocab_size == vocab,
                 "KL divergence: the reference model's vocabulary (",
                 opt.kld_reference->config.vocab_size, ") differs from the model's (", vocab, ")");
    ref = std::make_unique<Session>(*opt.kld_reference, ctx);
  }
  std::vector<float> logits(static_cast<size_t>(chunk * vocab));
  std::vector<float> ref_logits(ref ? logits.size() : 0);
  std::vector<double> ref_lse(ref ? static_cast<size_t>(chunk) : 0);  // once per position
  seconds.assign(evals.size(), 0.0);
  double nll_sum = 0.0;  // of evaluation 0, for the progress line
  int64_t count = 0;
  for (int64_t w = 0; w < windows; ++w) {
    const int* win = stream.data() + w * ctx;
    for (auto& s : sessions) s->reset();
    if (ref) ref->reset();
    for (int64_t c0 = 0; c0 < ctx - 1; c0 += chunk) {  // the last position predicts nothing
      const int64_t n = std::min(chunk, ctx - 1 - c0);
      double ref_seconds = 0.0;
      if (ref) {
        const auto t0 = std::chrono::steady_clock::now();
        ref->forward_all(win + c0, n, ref_logits.data());
        for (int64_t t = 0; t < n; ++t) {
          ref_lse[static_cast<size_t>(t)] = log_sum_exp(ref_logits.data() + t * vocab, vocab);
        }
        ref_seconds = seconds_since(t0) / static_cast<double>(evals.size());
      }
      for (size_t e = 0; e < evals.size(); ++e) {
        const auto t0 = std::chrono::steady_clock::now();
        sessions[e]->forward_all(win + c0, n, logits.data());
        for (int64_t t = 0; t < n; ++t) {  // logits at position c0+t predict token c0+t+1
          const float* l = logits.data() + t * vocab;
          const double nll = token_nll(l, vocab, win[c0 + t + 1]);
          WKVQ_REQUIRE(std::isfinite(nll), "non-finite loss at window ", w, " position ",
                       c0 + t + 1, "; the model produced NaN/Inf logits");
          const double kld = ref ? kld_given_ref_lse(ref_logits.data() + t * vocab,
                                                     ref_lse[static_cast<size_t>(t)], l, vocab)
                                 : 0.0;
          on_token(e, nll, kld);
          if (e == 0) {
            nll_sum += nll;
            ++count;
          }
        }
        seconds[e] += seconds_since(t0) + ref_seconds;
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
  return kld_given_ref_lse(ref_logits, log_sum_exp(ref_logits, vocab), logits, vocab);
}

int64_t ppl_window(const Model& m, int64_t ctx) {
  const int64_t model_ctx = m.config.seq_len;
  if (ctx == 0) return std::min<int64_t>(2048, model_ctx);
  WKVQ_REQUIRE(ctx >= 2, "--ctx must be at least 2 tokens, found ", ctx);
  WKVQ_REQUIRE(ctx <= model_ctx, "--ctx ", ctx, " exceeds the model's context of ", model_ctx,
               " tokens; choose --ctx <= ", model_ctx);
  return ctx;
}

std::vector<PplResult> perplexity_many(const std::vector<EvalSpec>& specs,
                                       const std::vector<int>& stream, const PplOptions& opt,
                                       const PplProgress& progress) {
  WKVQ_REQUIRE(!specs.empty(), "perplexity: no evaluations given");
  for (const EvalSpec& e : specs) WKVQ_REQUIRE(e.model != nullptr, "perplexity: no model given");
  const Model& first = *specs[0].model;
  const int64_t ctx = ppl_window(first, opt.ctx);
  for (const EvalSpec& e : specs) {
    WKVQ_REQUIRE(e.model->config.vocab_size == first.config.vocab_size &&
                     ppl_window(*e.model, opt.ctx) == ctx,
                 "perplexity: evaluations of models with different vocabularies or windows (",
                 e.model->source, " vs ", first.source, ")");
  }
  // Prefill mode never reads a quantized cache: prefill evaluations of one model are one run.
  std::vector<EvalSpec> evals;
  std::vector<size_t> eval_of(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const EvalSpec& e = specs[i];
    size_t j = 0;
    while (j < evals.size() &&
           !(e.mode == EvalMode::Prefill && evals[j].mode == e.mode && evals[j].model == e.model)) {
      ++j;
    }
    if (j == evals.size()) evals.push_back(e);
    eval_of[i] = j;
  }
  const int64_t windows = window_count(stream, ctx, opt.max_windows);
  struct Sums {
    double s = 0, s2 = 0, k = 0, k2 = 0;
    int64_t n = 0;
  };
  std::vector<Sums> sums(evals.size());
  std::vector<double> seconds;
  run_windows(evals, stream, opt, ctx, windows, progress, seconds,
              [&](size_t e, double nll, double kld) {
                Sums& x = sums[e];
                x.s += nll;
                x.s2 += nll * nll;
                x.k += kld;
                x.k2 += kld * kld;
                ++x.n;
              });
  std::vector<PplResult> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const EvalSpec& e = specs[i];
    const Sums& x = sums[eval_of[i]];
    PplResult r;
    r.mode = eval_mode_name(e.mode);
    r.ctx = ctx;
    r.stream_tokens = static_cast<int64_t>(stream.size());
    r.windows = windows;
    r.tokens = x.n;
    mean_stderr(x.s, x.s2, x.n, &r.nll, &r.nll_stderr);
    r.ppl = std::exp(r.nll);
    r.has_kld = opt.kld_reference != nullptr;
    if (r.has_kld) mean_stderr(x.k, x.k2, x.n, &r.kld, &r.kld_stderr);
    const LlamaConfig& c = e.model->config;
    if (e.mode != EvalMode::Prefill && e.store) {
      r.kv_bits_per_element = e.store_bits;
      r.kv_bytes_per_token = static_cast<int64_t>(
          std::ceil(e.store_bits * 2.0 * c.n_layers * static_cast<double>(c.kv_dim()) / 8.0));
    } else if (e.mode != EvalMode::Prefill) {
      const KvCache probe(c, 1, e.kv);
      r.kv_bits_per_element = probe.bits_per_element_at(ctx);
      r.kv_bytes_per_token = probe.bytes_per_token();
    } else {
      r.kv_bytes_per_token = int64_t{2} * c.n_layers * c.kv_dim() * 4;
    }
    r.seconds = seconds[eval_of[i]];
    out.push_back(r);
  }
  return out;
}

PplResult perplexity(const Model& m, const std::vector<int>& stream, const PplOptions& opt,
                     const PplProgress& progress) {
  return perplexity_many({EvalSpec{&m, opt.mode, opt.kv, opt.smoothing, {}, 0}}, stream, opt,
                         progress)[0];
}

std::vector<double> token_nlls(const Model& m, const std::vector<int>& stream,
                               const PplOptions& opt) {
  const int64_t ctx = ppl_window(m, opt.ctx);
  std::vector<double> out;
  std::vector<double> seconds;
  run_windows({EvalSpec{&m, opt.mode, opt.kv, opt.smoothing, {}, 0}}, stream, opt, ctx,
              window_count(stream, ctx, opt.max_windows), {}, seconds,
              [&](size_t, double nll, double) { out.push_back(nll); });
  return out;
}

}  // namespace wkvq
