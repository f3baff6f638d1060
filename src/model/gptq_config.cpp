// quantization_config in the GPTQ convention (quant_method "gptq"): reading it from a directory
// written by wkvq (format_version 3, with a "wkvq" section) or by AutoGPTQ / GPTQModel, and
// writing it (layout in model/quantized_model_io.h).
#include <string>

#include "model/quantized_config.h"
#include "model/quantized_model_io.h"
#include "model/quantized_model_names.h"

namespace wkvq {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

void parse_wkvq_section(const json& root, const std::string& path, const LlamaConfig& c,
                        QuantConfig& q) {
  WKVQ_REQUIRE(root[kWkvqSection].is_object(), path, ": ", kWkvqSection, " must be an object");
  const QcReader r(root[kWkvqSection], path, kWkvqSection);
  const int64_t version = r.integer("format_version");
  if (version > kGptqDirFormatVersion) {
    r.bad("format_version", "written by a newer wkvq (this one reads format_version " +
                                std::to_string(kGptqDirFormatVersion) + "); update wkvq");
  }
  if (version != kGptqDirFormatVersion) {
    r.bad("format_version", "a GPTQ-convention directory of wkvq has format_version 3");
  }
  q.checksums = r.at("checksums");
  if (!q.checksums.is_object() || !q.checksums.contains("model.safetensors")) {
    r.bad("checksums", "must map model.safetensors (and the other files) to checksums");
  }
  parse_wkvq_keys(r, c, q);
}

}  // namespace

QuantConfig parse_gptq_quant_config(const json& root, const std::string& path,
                                    const LlamaConfig& c) {
  const QcReader r(root["quantization_config"], path, "quantization_config");
  QuantConfig q;
  q.gptq_layout = true;
  const int64_t bits = r.integer("bits");
  if (bits != 2 && bits != 4 && bits != 8) {
    r.bad("bits",
          "wkvq reads GPTQ checkpoints of 2, 4 or 8 bits (3-bit codes straddle int32 "
          "words; other widths do not exist in the convention)");
  }
  q.info.wbits = static_cast<int>(bits);
  q.pack = gptq_pack_factor(q.info.wbits);
  const int64_t group = r.integer("group_size");
  if (group != -1 && group < 1) r.bad("group_size", "must be -1 (one group per row) or >= 1");
  q.info.wgroup = group == -1 ? 0 : group;
  q.act_order = r.has("desc_act") && r.boolean("desc_act");
  if (r.has("sym")) r.boolean("sym");  // either works: the zero points are stored
  const std::string format = r.has("checkpoint_format") ? r.string("checkpoint_format") : "gptq";
  if (format != "gptq" && format != "gptq_v2") {
    r.bad("checkpoint_format",
          "expected \"gptq\" (zero points stored minus one) or \"gptq_v2\" (stored as is); "
          "other packings (marlin, bitblas, ...) are not read");
  }
  q.zeros = format == "gptq" ? GptqZeros::kMinusOne : GptqZeros::kAsIs;
  const bool ours = root.contains(kWkvqSection);
  if (r.has("dynamic") && !r.at("dynamic").is_null() && !ours) {
    r.bad("dynamic", "per-module overrides (bits, group size, skipped modules) are not supported");
  }
  if (r.has("modules_in_block_to_quantize") && !r.at("modules_in_block_to_quantize").is_null()) {
    r.bad("modules_in_block_to_quantize",
          "checkpoints with unquantized block linears are not "
          "supported");
  }
  if (ours) {
    parse_wkvq_section(root, path, c, q);
  } else {
    q.info.method = "gptq";
    q.info.kv.smooth = KvSmoothMode::None;
  }
  return q;
}

ojson gptq_quantization_config(const QuantizationInfo& q, bool zeros_minus_one,
                               const std::vector<std::string>& float_modules,
                               bool lm_head_quantized) {
  ojson qc = {{"quant_method", kGptqQuantMethod},
              {"bits", q.wbits},
              {"group_size", q.wgroup == 0 ? int64_t{-1} : q.wgroup},
              {"desc_act", false},
              {"sym", false},
              {"static_groups", false},
              {"true_sequential", true},
              {"lm_head", lm_head_quantized},
              {"checkpoint_format", zeros_minus_one ? "gptq" : "gptq_v2"}};
  if (!float_modules.empty()) {
    // GPTQModel's and vLLM's per-module rules: "-:" + a regex of the module name = not quantized.
    ojson dynamic = ojson::object();
    for (const std::string& m : float_modules) {
      std::string re;
      for (char ch : m) {
        if (ch == '.') re += '\\';
        re += ch;
      }
      dynamic["-:" + re + "$"] = ojson::object();
    }
    qc["dynamic"] = dynamic;
  }
  return qc;
}

ojson wkvq_section_json(const QuantizationInfo& q, const std::vector<std::string>& keep_float,
                        const ojson& checksums) {
  ojson s = {{"format_version", kGptqDirFormatVersion},
             {"method", q.method},
             {"kv_bits", q.kv.bits},
             {"kv_group_size", q.kv.group},
             {"poq", q.kv.poq},
             {"kv_smooth", kv_smooth_name(q.kv.smooth)},
             {"keep_float", keep_float}};
  if (q.kv.window > 0) s["kv_window"] = q.kv.window;
  if (q.kv.quantized() && q.kv.value_bits() != q.kv.bits) s["kv_value_bits"] = q.kv.value_bits();
  if (q.kv.quantized() && q.kv.rel8) s["kv_meta"] = "rel8";
  if (!q.calibration.empty()) s["calibration"] = q.calibration;
  s["checksums"] = checksums;
  return s;
}

}  // namespace wkvq
