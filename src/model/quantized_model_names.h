// Tensor and key names of the quantized model directory, shared by its writer
// (quantized_model_io.cpp) and reader (quantized_model_load.cpp). Layout: quantized_model_io.h.
#pragma once

#include <string>

namespace wkvq {

inline constexpr const char* kQuantMethod = "wkvq";

// Hugging Face names of the seven linears, in the order of kLinearNames (model/weight_quantizer.h).
inline constexpr const char* kHfLinearNames[7] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

// "model.layers.L.<suffix>"
inline std::string layer_tensor(int layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}
// "model.layers.L.self_attn.q_proj." and the like: prefix of a linear's tensors.
inline std::string linear_prefix(int layer, int linear) {
  return layer_tensor(layer, kHfLinearNames[linear]) + ".";
}

// Files a quantized model directory may hold (anything else makes save refuse the directory).
inline constexpr const char* kQuantizedDirFiles[] = {
    "config.json",   "model.safetensors",     "tokenizer.model",
    "tokenizer.bin", "tokenizer_config.json", "special_tokens_map.json"};

}  // namespace wkvq
