// Perplexity and KL divergence by the protocol of design.md §3: one token stream (BOS first),
// non-overlapping windows of T tokens, each a fresh context; loss over positions 1..T-1.
//
// Modes (how the KV cache is seen):
//   prefill      one pass per window with a full-precision cache: only the weights count;
//   decode       teacher-forced POQ: every token sees the past through the quantized cache and
//                itself in full precision, exactly as token-by-token generation does;
//   decode-nopoq conventional KV quantization: the token's own K/V are quantized too.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/kv_cache.h"

namespace wkvq {

enum class EvalMode { Prefill, Decode, DecodeNoPoq };
const char* eval_mode_name(EvalMode m);
// "prefill" | "decode" | "decode-nopoq"; throws on anything else.
EvalMode parse_eval_mode(const std::string& s);

struct PplOptions {
  int64_t ctx = 0;          // window length T (0: min(2048, model context))
  int64_t max_windows = 0;  // 0: all full windows of the stream
  int64_t chunk = 512;      // tokens per forward pass inside a window (bounds logits memory)
  EvalMode mode = EvalMode::Prefill;
  KvQuantSettings kv;                      // the cache of the decode modes (prefill: always f32)
  const KvSmoothing* smoothing = nullptr;  // null: the model's own
  const Model* kld_reference = nullptr;    // FP model for the KL divergence; null: no KLD
};

struct PplResult {
  std::string mode = "prefill";
  double ppl = 0;         // exp(mean NLL)
  double nll = 0;         // mean NLL, nats per token
  double nll_stderr = 0;  // standard error of the mean NLL
  bool has_kld = false;
  double kld = 0;  // mean KL(P_reference || P_model) per token, nats
  double kld_stderr = 0;
  int64_t tokens = 0;  // scored tokens
  int64_t windows = 0;
  int64_t ctx = 0;
  int64_t stream_tokens = 0;
  double kv_bits_per_element = 32;
  int64_t kv_bytes_per_token = 0;
  double seconds = 0;
};

// Called after each window with (windows done, windows total, running mean NLL).
using PplProgress = std::function<void(int64_t, int64_t, double)>;

// Effective window length for a model: ctx, or min(2048, context) when 0; validated.
int64_t ppl_window(const Model& m, int64_t ctx);

PplResult perplexity(const Model& m, const std::vector<int>& stream, const PplOptions& opt,
                     const PplProgress& progress = {});

// A KV store an evaluation runs instead of the runtime cache (the KV lab's simulated methods,
// src/kvlab): a fresh window after reset().
class EvalKvStore : public KvStore {
 public:
  virtual void reset() = 0;
};
// Makes the store of one evaluation for windows of `ctx` tokens; `poq` from its mode.
using EvalStoreFactory = std::function<std::unique_ptr<EvalKvStore>(int64_t ctx, bool poq)>;

// One evaluation of perplexity_many: a model and how its cache is seen (as PplOptions' mode, kv,
// smoothing; smoothing null: the model's own). With `store` set, the decode modes run through
// the store it makes (kv and smoothing unused) and report store_bits per K/V element.
struct EvalSpec {
  const Model* model = nullptr;
  EvalMode mode = EvalMode::Prefill;
  KvQuantSettings kv;
  const KvSmoothing* smoothing = nullptr;
  EvalStoreFactory store;
  double store_bits = 0;
};

// Several evaluations over the same windows of `stream` (opt's ctx, max_windows, chunk and
// kld_reference; its mode, kv and smoothing are ignored), window by window: the KLD reference
// runs once per window for all of them, and prefill evaluations of the same model run once (the
// prefill mode never reads a quantized cache). Each result is exactly perplexity() of that
// evaluation alone; its `seconds` are its own forward passes and scoring plus an even share of
// the reference's. The models must share the vocabulary and the window length. Progress follows
// the first evaluation.
std::vector<PplResult> perplexity_many(const std::vector<EvalSpec>& specs,
                                       const std::vector<int>& stream, const PplOptions& opt,
                                       const PplProgress& progress = {});

// Per-token NLL of every scored position of the first `max_windows` windows, in order (for tests
// comparing evaluation paths).
std::vector<double> token_nlls(const Model& m, const std::vector<int>& stream,
                               const PplOptions& opt);

// NLL of `target` under logits (vocab): logsumexp(logits) - logits[target], in double.
double token_nll(const float* logits, int vocab, int target);
// KL(softmax(ref) || softmax(model)) in double.
double token_kld(const float* ref_logits, const float* logits, int vocab);

}  // namespace wkvq
