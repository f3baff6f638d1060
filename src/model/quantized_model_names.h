// Tensor and key names of the quantized model directory, shared by its writer
// (quantized_model_io.cpp) and reader (quantized_model_load.cpp). Layout: quantized_model_io.h.
#pragma once

#include <filesystem>
#include <string>

#include "model/hf_names.h"

namespace wkvq {

inline constexpr const char* kQuantMethod = "wkvq";
// quant_method of the GPTQ-convention directory (format_version 3, in the "wkvq" section) and of
// GPTQ checkpoints written by other tools.
inline constexpr const char* kGptqQuantMethod = "gptq";
// The top-level config.json key of wkvq's own settings in a GPTQ-convention directory, and the
// file of its KV smoothing vectors (other engines ignore both).
inline constexpr const char* kWkvqSection = "wkvq";
inline constexpr const char* kKvSmoothingFile = "wkvq_kv.safetensors";

// Files a quantized model directory may hold (anything else makes save refuse the directory).
inline constexpr const char* kQuantizedDirFiles[] = {
    "config.json",   "model.safetensors",     "tokenizer.json",          "tokenizer.model",
    "tokenizer.bin", "tokenizer_config.json", "special_tokens_map.json", "wkvq_kv.safetensors"};

// The name a tokenizer file gets in a quantized model directory, by its format: a Hugging Face
// tokenizer.json, a SentencePiece .model, else a llama2.c tokenizer.bin.
inline const char* quantized_tokenizer_name(const std::string& tokenizer_path) {
  const std::filesystem::path ext = std::filesystem::path(tokenizer_path).extension();
  return ext == ".json" ? "tokenizer.json" : ext == ".model" ? "tokenizer.model" : "tokenizer.bin";
}

}  // namespace wkvq
