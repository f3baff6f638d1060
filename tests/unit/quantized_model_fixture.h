// Small seeded quantized models and a scratch directory, shared by the quantized model directory
// tests (quantized_model_io_test.cpp, quantized_model_errors_test.cpp).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/random_model.h"
#include "model/weight_quantizer.h"
#include "runtime/session.h"
#include "test_support.h"

namespace wkvq::qmtest {

namespace fs = std::filesystem;
using test::TempDir;  // TempDir tmp; tmp.path("name")

inline uint32_t base_seed() {
  if (const char* env = std::getenv("WKVQ_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return 20240611u;
}

// dim 64, 2 layers, 4 heads of 16, 2 KV heads, the given MLP width, vocab 96, context 32.
inline LlamaConfig small_config(int hidden, RopeLayout layout, bool tied) {
  LlamaConfig c;
  c.dim = 64;
  c.hidden_dim = hidden;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 96;
  c.seq_len = 32;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.rope_layout = layout;
  c.tied_output = tied;
  return c;
}

// Architecture features on top of small_config: 0 none; 1 Qwen2 (q/k/v biases); 2 Qwen3 (q/k
// norms, head_dim 32 != dim / heads = 16); 3 Llama with llama3 RoPE scaling (original context
// 16, below the 24 positions the tests run) and q/k/v/o biases.
inline LlamaConfig with_arch(LlamaConfig c, int arch) {
  if (arch == 1) {
    c.architecture = "Qwen2ForCausalLM";
    c.qkv_bias = true;
  } else if (arch == 2) {
    c.architecture = "Qwen3ForCausalLM";
    c.qk_norm = true;
    c.head_dim = 32;
  } else if (arch == 3) {
    c.qkv_bias = c.o_bias = true;
    c.rope_scaling.kind = RopeScaling::Kind::Llama3;
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position = 16;
  }
  return c;
}

// Shifts in +-0.5, scales in [0.5, 2]: positive, and far from identity.
inline KvSmoothing random_smoothing(int layers, int kv_dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> shift(-0.5f, 0.5f), scale(0.5f, 2.0f);
  KvSmoothing s = KvSmoothing::identity(layers, kv_dim);
  for (size_t i = 0; i < s.dk.size(); ++i) {
    s.dk[i] = shift(rng);
    s.sk[i] = scale(rng);
    s.dv[i] = shift(rng);
    s.sv[i] = scale(rng);
  }
  return s;
}

// An RTN-quantized random model with KV settings KV4 (head_dim groups, POQ) and, when asked, a
// random smoothing ("stats").
inline Model quantized_model(const LlamaConfig& c, int bits, int64_t group,
                             const std::string& keep_float, bool smooth, uint32_t seed) {
  const Model fp = make_random_model(c, seed);
  WeightQuantOptions o;
  o.bits = bits;
  o.group = group;
  o.keep_float = KeepFloat(keep_float, c.n_layers);
  Model q = quantize_weights_rtn(fp, o);
  q.quant.kv = {4, 0, true, smooth ? KvSmoothMode::Stats : KvSmoothMode::None};
  if (smooth) q.kv_smoothing = random_smoothing(c.n_layers, c.kv_dim(), seed + 1u);
  return q;
}

// Logits (n, vocab) of every token of `tokens`, in one teacher-forced pass.
inline std::vector<float> session_logits(const Model& m, const std::vector<int>& tokens,
                                         const KvQuantSettings& kv) {
  const KvSmoothing* s = m.kv_smoothing.n_layers > 0 ? &m.kv_smoothing : nullptr;
  Session session(m, static_cast<int64_t>(tokens.size()), kv, s);
  std::vector<float> logits(tokens.size() * static_cast<size_t>(m.config.vocab_size));
  session.forward_all(tokens.data(), static_cast<int64_t>(tokens.size()), logits.data());
  return logits;
}

inline std::vector<int> random_tokens(int vocab, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  std::vector<int> t(n);
  for (int& x : t) x = tok(rng);
  return t;
}

}  // namespace wkvq::qmtest
