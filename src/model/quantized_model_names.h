// Tensor and key names of the quantized model directory, shared by its writer
// (quantized_model_io.cpp) and reader (quantized_model_load.cpp). Layout: quantized_model_io.h.
#pragma once

#include "model/hf_names.h"

namespace wkvq {

inline constexpr const char* kQuantMethod = "wkvq";

// Files a quantized model directory may hold (anything else makes save refuse the directory).
inline constexpr const char* kQuantizedDirFiles[] = {
    "config.json",   "model.safetensors",     "tokenizer.json",         "tokenizer.model",
    "tokenizer.bin", "tokenizer_config.json", "special_tokens_map.json"};

}  // namespace wkvq
