#include "model/config.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace wkvq {

void LlamaConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int v) {
    WKVQ_REQUIRE(v > 0, source, ": ", name, " must be positive, found ", v,
                 "; the file is corrupt or not a Llama model");
  };
  positive("dim", dim);
  positive("hidden_dim", hidden_dim);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("head_dim", head_dim);
  positive("vocab_size", vocab_size);
  positive("seq_len", seq_len);
  WKVQ_REQUIRE(n_heads % n_kv_heads == 0, source, ": n_heads (", n_heads,
               ") must be a multiple of n_kv_heads (", n_kv_heads, ") for grouped-query attention");
  WKVQ_REQUIRE(head_dim % 2 == 0, source, ": head_dim must be even for RoPE, found ", head_dim);
  WKVQ_REQUIRE(dim <= (1 << 20) && hidden_dim <= (1 << 22) && n_layers <= 4096 &&
                   vocab_size <= (1 << 24) && seq_len <= (1 << 24) && head_dim <= 4096,
               source, ": implausible sizes (dim ", dim, ", hidden ", hidden_dim, ", layers ",
               n_layers, ", vocab ", vocab_size, ", seq_len ", seq_len, "); the header is corrupt");
  WKVQ_REQUIRE(rope_theta > 0.0f, source, ": rope_theta must be positive, found ", rope_theta);
  WKVQ_REQUIRE(norm_eps > 0.0f && norm_eps < 1.0f, source,
               ": rms_norm_eps must be in (0, 1), found ", norm_eps);
  WKVQ_REQUIRE(!o_bias || qkv_bias, source,
               ": an o_proj bias without q/k/v biases is not a supported architecture");
  validate_rope_scaling(source);
}

void LlamaConfig::validate_rope_scaling(const std::string& source) const {
  const RopeScaling& s = rope_scaling;
  if (s.kind == RopeScaling::Kind::None) return;
  WKVQ_REQUIRE(std::isfinite(s.factor) && s.factor > 0.0, source,
               ": rope_scaling.factor must be positive and finite, found ", s.factor);
  if (s.kind != RopeScaling::Kind::Llama3) return;
  WKVQ_REQUIRE(std::isfinite(s.low_freq_factor) && s.low_freq_factor > 0.0, source,
               ": rope_scaling.low_freq_factor must be positive and finite, found ",
               s.low_freq_factor);
  WKVQ_REQUIRE(std::isfinite(s.high_freq_factor) && s.high_freq_factor > s.low_freq_factor, source,
               ": rope_scaling.high_freq_factor (", s.high_freq_factor,
               ") must be finite and greater than low_freq_factor (", s.low_freq_factor, ")");
  WKVQ_REQUIRE(s.original_max_position > 0, source,
               ": rope_scaling.original_max_position_embeddings must be positive, found ",
               s.original_max_position);
}

std::string LlamaConfig::summary() const {
  std::ostringstream os;
  os << "dim " << dim << ", hidden " << hidden_dim << ", layers " << n_layers << ", heads "
     << n_heads << ", kv heads " << n_kv_heads << ", head_dim " << head_dim << ", vocab "
     << vocab_size << ", ctx " << seq_len << ", rope "
     << (rope_layout == RopeLayout::Interleaved ? "interleaved" : "rotate-half") << " theta "
     << rope_theta;
  if (rope_scaling.kind == RopeScaling::Kind::Linear) {
    os << " linear x" << rope_scaling.factor;
  } else if (rope_scaling.kind == RopeScaling::Kind::Llama3) {
    os << " llama3 x" << rope_scaling.factor << " (orig " << rope_scaling.original_max_position
       << ", low " << rope_scaling.low_freq_factor << ", high " << rope_scaling.high_freq_factor
       << ")";
  }
  os << ", " << (tied_output ? "tied" : "untied") << " head";
  if (qkv_bias) os << (o_bias ? ", q/k/v/o biases" : ", q/k/v biases");
  if (qk_norm) os << ", q/k norm";
  os << " (" << architecture << ")";
  return os.str();
}

}  // namespace wkvq
