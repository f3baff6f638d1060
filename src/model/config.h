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
  float norm_eps = 1e-5f;
  RopeLayout rope_layout = RopeLayout::Interleaved;
  bool tied_output = true;  // output head shares the token embedding
  int bos_id = 1;
  int eos_id = 2;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }

  // Throws wkvq::Error naming `source` and the offending field.
  void validate(const std::string& source) const;
  std::string summary() const;
};

}  // namespace wkvq
