// A whole JSON file (config.json, model.safetensors.index.json, tokenizer.json, ...) parsed into
// an nlohmann::json value.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace wkvq {

// Parses the file at `path` (mapped, read once). Throws wkvq::Error naming the path when it cannot
// be read, or when it is not valid JSON: "PATH: not valid JSON: <parser message>", followed by
// "; expected <expected>" when `expected` is not empty (e.g. "a Hugging Face tokenizer file").
nlohmann::json read_json_file(const std::string& path, const std::string& expected = "");

}  // namespace wkvq
