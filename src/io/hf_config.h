// Hugging Face config.json of a Llama-family model (LlamaForCausalLM, MistralForCausalLM), as a
// plain struct. io knows nothing of LlamaConfig: model/loader.cpp converts.
#pragma once

#include <string>
#include <vector>

namespace wkvq {

struct HfConfig {
  std::string model_type;                  // "llama" or "mistral" ("" when absent)
  std::vector<std::string> architectures;  // e.g. {"LlamaForCausalLM"} (empty when absent)
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // default: num_attention_heads
  int head_dim = 0;             // default: hidden_size / num_attention_heads
  int vocab_size = 0;
  int max_position_embeddings = 0;
  int sliding_window = 0;  // Mistral; 0 when absent or null (full attention)
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  int bos_token_id = 1;
  int eos_token_id = 2;  // the first one when config.json lists several
  std::string hidden_act = "silu";
};

// Parses config.json text. `source` names the file in every message. With require_architecture
// a config naming neither model_type nor architectures is rejected (a real config.json always
// names one); a shape file for benchmarks may leave both out. Throws wkvq::Error naming source
// and the key for missing required keys, wrong JSON types, out-of-range values, an unsupported
// architecture, rope_scaling, hidden_act other than "silu", or attention/MLP biases.
HfConfig parse_hf_config(const std::string& json_text, const std::string& source,
                         bool require_architecture = true);
// Reads and parses a config.json file.
HfConfig read_hf_config(const std::string& path, bool require_architecture = true);

}  // namespace wkvq
