// Hugging Face Llama tensor names, shared by the HF loader (loader.cpp) and the quantized model
// directory (quantized_model_io.cpp, quantized_model_load.cpp).
#pragma once

#include <string>

namespace wkvq {

// Names of the seven linears of a block, in the order of kLinearNames (model/weight_quantizer.h).
inline constexpr const char* kHfLinearNames[7] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

// Per-head RMSNorm weights of q and k (Qwen3), suffixes of layer_tensor.
inline constexpr const char* kHfQNormName = "self_attn.q_norm.weight";
inline constexpr const char* kHfKNormName = "self_attn.k_norm.weight";

// "model.layers.L.<suffix>"
inline std::string layer_tensor(int layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}
// "model.layers.L.self_attn.q_proj." and the like: prefix of a linear's tensors.
inline std::string linear_prefix(int layer, int linear) {
  return layer_tensor(layer, kHfLinearNames[linear]) + ".";
}

}  // namespace wkvq
