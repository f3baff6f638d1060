// quantization_config of a quantized model directory as the reader needs it (layouts in
// model/quantized_model_io.h): wkvq's own (quant_method "wkvq", format_version 1 and 2) and the
// GPTQ convention (quant_method "gptq": written by wkvq with a "wkvq" section, format_version 3,
// or by AutoGPTQ / GPTQModel without one). Shared by quantized_model_load.cpp and
// gptq_config.cpp; not a public interface.
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "formats/gptq.h"
#include "model/config.h"
#include "model/model.h"
#include "model/output_head.h"

namespace wkvq {

struct QuantConfig {
  QuantizationInfo info;
  GptqZeros zeros = GptqZeros::kAsIs;
  int64_t pack = 8;                                     // values per int32
  std::set<std::pair<int, int>> keep;                   // (layer, linear) kept in float
  nlohmann::json checksums = nlohmann::json::object();  // file name -> checksum text
  bool gptq_layout = false;  // quant_method "gptq": float tensors in F16/BF16/F32, smoothing in
                             // wkvq_kv.safetensors, group_size divides every linear's input
  bool act_order = false;    // desc_act: g_idx may permute the groups
  // format_version 4 of wkvq's layout: how the embedding table and the head are stored (older
  // directories: f32 embeddings, the head as its tensors say, tables_named false).
  bool tables_named = false;
  TableStorage embed = TableStorage::F32;
  TableStorage head = TableStorage::F32;
};

// Typed access to a JSON object (quantization_config or the wkvq section) with messages naming
// the file and the key.
class QcReader {
 public:
  QcReader(const nlohmann::json& j, const std::string& path, const char* section)
      : j_(j), path_(path), section_(section) {}

  bool has(const char* key) const { return j_.contains(key); }
  const nlohmann::json& at(const char* key) const {
    WKVQ_REQUIRE(j_.contains(key), path_, ": ", section_, ".", key, " is missing");
    return j_.at(key);
  }
  int64_t integer(const char* key) const {
    const nlohmann::json& v = at(key);
    WKVQ_REQUIRE(v.is_number_integer(), path_, ": ", section_, ".", key,
                 " must be an integer, found ", v.dump());
    return v.get<int64_t>();
  }
  bool boolean(const char* key) const {
    const nlohmann::json& v = at(key);
    WKVQ_REQUIRE(v.is_boolean(), path_, ": ", section_, ".", key, " must be true or false, found ",
                 v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key) const {
    const nlohmann::json& v = at(key);
    WKVQ_REQUIRE(v.is_string(), path_, ": ", section_, ".", key, " must be a string, found ",
                 v.dump());
    return v.get<std::string>();
  }
  [[noreturn]] void bad(const char* key, const std::string& why) const {
    fail(path_, ": ", section_, ".", key, " = ", at(key).dump(), ": ", why);
  }

 private:
  const nlohmann::json& j_;
  const std::string& path_;
  const char* section_;
};

// The KV settings, keep_float and checksums of wkvq's own keys (quantization_config of format 1/2,
// the "wkvq" section of format 3) into q.
void parse_wkvq_keys(const QcReader& r, const LlamaConfig& c, QuantConfig& q);

// quant_method "gptq": bits, group_size, desc_act, sym, checkpoint_format of quantization_config,
// and the "wkvq" section when present (else the settings of an imported checkpoint: method
// "gptq", float KV cache, no smoothing). Unsupported variants throw naming the key.
QuantConfig parse_gptq_quant_config(const nlohmann::json& root, const std::string& path,
                                    const LlamaConfig& c);

}  // namespace wkvq

namespace wkvq {

// The writer's side (format_version 3): quantization_config in the GPTQ convention (zeros in the
// v1 form when zeros_minus_one, else gptq_v2; float_modules: HF names of the linears kept in
// float, declared in "dynamic"), and the "wkvq" section.
nlohmann::ordered_json gptq_quantization_config(const QuantizationInfo& q, bool zeros_minus_one,
                                                const std::vector<std::string>& float_modules,
                                                bool lm_head_quantized);
nlohmann::ordered_json wkvq_section_json(const QuantizationInfo& q,
                                         const std::vector<std::string>& keep_float,
                                         const nlohmann::ordered_json& checksums);

}  // namespace wkvq
