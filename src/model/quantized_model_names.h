// Tensor and key names of the quantized model directory, shared by its writer
// (quantized_model_io.cpp) and reader (quantized_model_load.cpp). Layout: quantized_model_io.h.
#pragma once

#include <filesystem>
#include <string>

#include "model/hf_names.h"

namespace wkvq {

inline constexpr const char* kQuantMethod = "wkvq";

// Files a quantized model directory may hold (anything else makes save refuse the directory).
inline constexpr const char* kQuantizedDirFiles[] = {
    "config.json",   "model.safetensors",     "tokenizer.json",         "tokenizer.model",
    "tokenizer.bin", "tokenizer_config.json", "special_tokens_map.json"};

// The name a tokenizer file gets in a quantized model directory, by its format: a Hugging Face
// tokenizer.json, a SentencePiece .model, else a llama2.c tokenizer.bin.
inline const char* quantized_tokenizer_name(const std::string& tokenizer_path) {
  const std::filesystem::path ext = std::filesystem::path(tokenizer_path).extension();
  return ext == ".json" ? "tokenizer.json" : ext == ".model" ? "tokenizer.model" : "tokenizer.bin";
}

}  // namespace wkvq
