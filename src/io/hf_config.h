// Hugging Face config.json of a Llama-family model (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM, Qwen3ForCausalLM), as a plain struct. io knows nothing of LlamaConfig:
// model/loader.cpp converts.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace wkvq {

// config.json "rope_scaling" (key "rope_type", or "type" in older files).
struct HfRopeScaling {
  std::string type;                          // "" (absent, null or "default"), "linear" or "llama3"
  double factor = 1.0;                       // linear, llama3
  double low_freq_factor = 1.0;              // llama3
  double high_freq_factor = 4.0;             // llama3
  int original_max_position_embeddings = 0;  // llama3
};

struct HfConfig {
  std::string model_type;                  // "llama", "mistral", "qwen2", "qwen3" ("" when absent)
  std::vector<std::string> architectures;  // e.g. {"LlamaForCausalLM"} (empty when absent)
  std::string architecture;  // the one run: architectures[0], else the one of model_type, else
                             // "LlamaForCausalLM"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // default: num_attention_heads
  int head_dim = 0;             // default: hidden_size / num_attention_heads
  int vocab_size = 0;
  int max_position_embeddings = 0;
  // Mistral (and Qwen with use_sliding_window true): the attention window; 0 when absent, null or
  // unused (Qwen's use_sliding_window false), i.e. full attention.
  int sliding_window = 0;
  double rope_theta = 10000.0;
  HfRopeScaling rope_scaling;
  bool qkv_bias = false;  // q_proj, k_proj, v_proj have biases (Qwen2 always; attention_bias)
  bool o_bias = false;    // o_proj has a bias (attention_bias of Llama and Qwen3)
  bool qk_norm = false;   // per-head RMSNorm of q and k before RoPE (Qwen3)
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
// architecture, a rope_scaling type other than "default", "linear" or "llama3" (or bad factors),
// hidden_act other than "silu", mlp_bias, or attention_bias on Mistral.
HfConfig parse_hf_config(const std::string& json_text, const std::string& source,
                         bool require_architecture = true);
// parse_hf_config of an already parsed config.json value.
HfConfig hf_config_from_json(const nlohmann::json& j, const std::string& source,
                             bool require_architecture = true);
// The model_type config.json gives an architecture ("LlamaForCausalLM" -> "llama"); "" if unknown.
std::string hf_model_type_of(const std::string& architecture);

// Reads and parses a config.json file.
HfConfig read_hf_config(const std::string& path, bool require_architecture = true);

}  // namespace wkvq
