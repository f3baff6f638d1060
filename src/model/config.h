// LlamaConfig: the architecture hyper-parameters of a Llama-family decoder, whatever file it came
// from. Validated once (validate()) so the forward pass can trust it.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/rope.h"

namespace wkvq {

struct LlamaConfig {
  int dim = 0;         // model width (hidden_size)
  int hidden_dim = 0;  // SwiGLU inner width (intermediate_size)
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;  // usually dim / n_heads
  int vocab_size = 0;
  int seq_len = 0;  // maximum context
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;  // frequency scaling (kernels/rope.h); Kind::None for plain RoPE
  float norm_eps = 1e-5f;    // every RMSNorm's epsilon, the q/k norms' included
  RopeLayout rope_layout = RopeLayout::Interleaved;
  bool qkv_bias = false;  // wq, wk, wv have biases (Linear::bias): Qwen2, attention_bias
  bool o_bias = false;    // wo has a bias: attention_bias of Llama / Qwen3 (implies qkv_bias)
  bool qk_norm = false;   // per-head RMSNorm of q and k before RoPE (LayerWeights::q_norm): Qwen3
  // Hugging Face architecture the weights follow ("LlamaForCausalLM" for llama2.c files); kept
  // for the quantized model directory's config.json.
  std::string architecture = "LlamaForCausalLM";
  bool tied_output = true;  // output head shares the token embedding
  int bos_id = 1;
  int eos_id = 2;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }

  // Throws wkvq::Error naming `source` and the offending field.
  void validate(const std::string& source) const;
  void validate_rope_scaling(const std::string& source) const;
  std::string summary() const;
};

}  // namespace wkvq
