#include "runtime/session.h"

#include "core/error.h"

namespace wkvq {

namespace {
int64_t session_length(const LlamaConfig& c, int64_t requested) {
  WKVQ_REQUIRE(requested <= c.seq_len, "requested ", requested,
               " positions, but the model's context is ", c.seq_len, " tokens");
  return requested > 0 ? requested : c.seq_len;
}

const KvSmoothing* smoothing_of(const Model& m, const KvSmoothing* given) {
  if (given != nullptr) return given;
  return m.kv_smoothing.n_layers > 0 ? &m.kv_smoothing : nullptr;
}
}  // namespace

Session::Session(const Model& m, int64_t max_tokens, const KvQuantSettings& kv,
                 const KvSmoothing* smoothing)
    : model_(m),
      cache_(m.config, session_length(m.config, max_tokens), kv, smoothing_of(m, smoothing)),
      logits_(static_cast<size_t>(m.config.vocab_size)) {}

Session::Session(const Model& m, KvBlockPool& pool, int64_t max_tokens, const KvQuantSettings& kv,
                 const KvSmoothing* smoothing)
    : model_(m),
      cache_(m.config, pool, session_length(m.config, max_tokens), kv, smoothing_of(m, smoothing)),
      logits_(static_cast<size_t>(m.config.vocab_size)) {}

const float* Session::feed(const int* tokens, int64_t n) {
  WKVQ_REQUIRE(pos_ + n <= cache_.max_tokens(), "context full: ", pos_, " + ", n,
               " tokens exceed the session's ", cache_.max_tokens(), " positions");
  forward(model_, tokens, n, pos_, cache_, scratch_, LogitsFor::Last, logits_.data(),
          GemmUse::Prompt);
  pos_ += n;
  return logits_.data();
}

const float* Session::prefill(const std::vector<int>& tokens) {
  WKVQ_REQUIRE(!tokens.empty(), "prefill: no tokens given");
  return feed(tokens.data(), static_cast<int64_t>(tokens.size()));
}

const float* Session::decode(int token) { return feed(&token, 1); }

void Session::forward_all(const int* tokens, int64_t n, float* logits) {
  WKVQ_REQUIRE(pos_ + n <= cache_.max_tokens(), "context full: ", pos_, " + ", n,
               " tokens exceed the session's ", cache_.max_tokens(), " positions");
  forward(model_, tokens, n, pos_, cache_, scratch_, LogitsFor::All, logits, GemmUse::Exact);
  pos_ += n;
}

}  // namespace wkvq
