#include "io/hf_config.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_file.h"

namespace wkvq {

using nlohmann::json;

namespace {

// The architectures wkvq runs, with their model_type.
struct Family {
  const char* architecture;
  const char* model_type;
};
constexpr Family kFamilies[] = {{"LlamaForCausalLM", "llama"},
                                {"MistralForCausalLM", "mistral"},
                                {"Qwen2ForCausalLM", "qwen2"},
                                {"Qwen3ForCausalLM", "qwen3"}};
constexpr const char* kSupported =
    "LlamaForCausalLM (llama), MistralForCausalLM (mistral), Qwen2ForCausalLM (qwen2), "
    "Qwen3ForCausalLM (qwen3)";

const Family* family_of_model_type(const std::string& t) {
  for (const Family& f : kFamilies) {
    if (t == f.model_type) return &f;
  }
  return nullptr;
}

// Reads keys of one JSON object with messages that name the file and the key.
class Reader {
 public:
  Reader(const json& j, const std::string& source) : j_(j), source_(source) {}

  // Present and not null.
  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int get_int(const char* key) const {
    WKVQ_REQUIRE(j_.contains(key), source_, ": missing required key \"", key, "\"");
    return to_int(key, j_.at(key));
  }
  int get_int(const char* key, int fallback) const {
    return has(key) ? to_int(key, j_.at(key)) : fallback;
  }
  double get_double(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    WKVQ_REQUIRE(v.is_number(), source_, ": key \"", key, "\" must be a number, found ",
                 v.type_name(), " ", v.dump());
    const double d = v.get<double>();
    WKVQ_REQUIRE(std::isfinite(d), source_, ": key \"", key, "\" must be finite, found ", d);
    return d;
  }
  bool get_bool(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    WKVQ_REQUIRE(v.is_boolean(), source_, ": key \"", key, "\" must be true or false, found ",
                 v.type_name(), " ", v.dump());
    return v.get<bool>();
  }
  std::string get_string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    WKVQ_REQUIRE(v.is_string(), source_, ": key \"", key, "\" must be a string, found ",
                 v.type_name(), " ", v.dump());
    return v.get<std::string>();
  }
  // A token id, or the first of a list of ids (newer configs list several eos ids).
  int get_token_id(const char* key, int fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (v.is_array()) {
      WKVQ_REQUIRE(!v.empty(), source_, ": key \"", key, "\" is an empty list");
      return to_int(key, v.at(0));
    }
    return to_int(key, v);
  }
  const json& at(const char* key) const { return j_.at(key); }

 private:
  int to_int(const char* key, const json& v) const {
    WKVQ_REQUIRE(v.is_number_integer(), source_, ": key \"", key, "\" must be an integer, found ",
                 v.type_name(), " ", v.dump());
    if (v.is_number_unsigned()) {
      const auto u = v.get<uint64_t>();
      WKVQ_REQUIRE(u <= static_cast<uint64_t>(INT_MAX), source_, ": key \"", key, "\" = ", u,
                   " is out of range");
      return static_cast<int>(u);
    }
    const auto s = v.get<int64_t>();
    WKVQ_REQUIRE(s >= INT_MIN && s <= INT_MAX, source_, ": key \"", key, "\" = ", s,
                 " is out of range");
    return static_cast<int>(s);
  }

  const json& j_;
  const std::string& source_;
};

void check_architecture(const Reader& r, HfConfig& c, const std::string& source,
                        bool require_architecture) {
  c.model_type = r.get_string("model_type", "");
  if (r.has("architectures")) {
    const json& a = r.at("architectures");
    WKVQ_REQUIRE(a.is_array(), source, ": key \"architectures\" must be a list of strings, found ",
                 a.type_name());
    for (const json& x : a) {
      WKVQ_REQUIRE(x.is_string(), source,
                   ": key \"architectures\" must be a list of strings, found an entry ", x.dump());
      c.architectures.push_back(x.get<std::string>());
    }
  }
  WKVQ_REQUIRE(!require_architecture || !c.model_type.empty() || !c.architectures.empty(), source,
               ": names neither \"model_type\" nor \"architectures\"; expected one of ",
               kSupported);
  const Family* by_type = family_of_model_type(c.model_type);
  WKVQ_REQUIRE(c.model_type.empty() || by_type != nullptr, source, ": unsupported model_type \"",
               c.model_type, "\"; wkvq runs ", kSupported);
  for (const std::string& a : c.architectures) {
    const std::string t = hf_model_type_of(a);
    WKVQ_REQUIRE(!t.empty(), source, ": unsupported architecture \"", a, "\"; wkvq runs ",
                 kSupported);
    WKVQ_REQUIRE(c.model_type.empty() || t == c.model_type, source, ": architecture \"", a,
                 "\" does not match model_type \"", c.model_type, "\" (expected \"", t, "\")");
  }
  c.architecture = !c.architectures.empty() ? c.architectures.front()
                   : by_type != nullptr     ? by_type->architecture
                                            : "LlamaForCausalLM";
  if (c.model_type.empty()) c.model_type = hf_model_type_of(c.architecture);
}

// "rope_scaling": null, absent or type "default" -> none; "linear" (factor); "llama3" (factor,
// low_freq_factor, high_freq_factor, original_max_position_embeddings).
void read_rope_scaling(const Reader& r, HfConfig& c, const std::string& source) {
  if (!r.has("rope_scaling")) return;
  const json& j = r.at("rope_scaling");
  WKVQ_REQUIRE(j.is_object(), source, ": key \"rope_scaling\" must be an object or null, found ",
               j.type_name(), " ", j.dump());
  const std::string where = source + " (rope_scaling)";
  const Reader s(j, where);
  const char* type_key = s.has("rope_type") ? "rope_type" : "type";
  std::string type = s.get_string(type_key, "");
  WKVQ_REQUIRE(!type.empty(), source,
               ": key \"rope_scaling\" names no \"rope_type\" (or \"type\"); found ", j.dump());
  if (type == "default") return;
  WKVQ_REQUIRE(type == "linear" || type == "llama3", source, ": key \"rope_scaling.", type_key,
               "\" is \"", type,
               "\", which wkvq does not implement; supported: \"default\", \"linear\", \"llama3\"");
  HfRopeScaling& rs = c.rope_scaling;
  rs.type = type;
  WKVQ_REQUIRE(s.has("factor"), source, ": key \"rope_scaling.factor\" is missing (", type,
               " scaling needs it)");
  rs.factor = s.get_double("factor", 1.0);
  WKVQ_REQUIRE(rs.factor > 0.0, source, ": key \"rope_scaling.factor\" must be positive, found ",
               rs.factor);
  if (type != "llama3") return;
  for (const char* key :
       {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    WKVQ_REQUIRE(s.has(key), source, ": key \"rope_scaling.", key,
                 "\" is missing (llama3 scaling needs it)");
  }
  rs.low_freq_factor = s.get_double("low_freq_factor", 1.0);
  rs.high_freq_factor = s.get_double("high_freq_factor", 4.0);
  rs.original_max_position_embeddings = s.get_int("original_max_position_embeddings");
  WKVQ_REQUIRE(rs.low_freq_factor > 0.0, source,
               ": key \"rope_scaling.low_freq_factor\" must be positive, found ",
               rs.low_freq_factor);
  WKVQ_REQUIRE(rs.high_freq_factor > rs.low_freq_factor, source,
               ": key \"rope_scaling.high_freq_factor\" (", rs.high_freq_factor,
               ") must be greater than low_freq_factor (", rs.low_freq_factor, ")");
  WKVQ_REQUIRE(rs.original_max_position_embeddings > 0, source,
               ": key \"rope_scaling.original_max_position_embeddings\" must be positive, found ",
               rs.original_max_position_embeddings);
}

// Biases and q/k norms by architecture: Qwen2 has q, k, v biases always; Llama and Qwen3 have q,
// k, v and o biases when attention_bias is true; Qwen3 has the per-head q/k RMSNorm.
void read_attention_extras(const Reader& r, HfConfig& c, const std::string& source) {
  const bool attention_bias = r.get_bool("attention_bias", false);
  if (c.model_type == "qwen2") {
    c.qkv_bias = true;
  } else {
    WKVQ_REQUIRE(!attention_bias || c.model_type != "mistral", source,
                 ": attention_bias is true; MistralForCausalLM has no attention biases");
    c.qkv_bias = attention_bias;
    c.o_bias = attention_bias;
  }
  c.qk_norm = c.model_type == "qwen3";
}

void check_unsupported_features(const Reader& r, HfConfig& c, const std::string& source) {
  c.hidden_act = r.get_string("hidden_act", "silu");
  WKVQ_REQUIRE(c.hidden_act == "silu", source, ": unsupported hidden_act \"", c.hidden_act,
               "\"; Llama's SwiGLU MLP needs \"silu\"");
  WKVQ_REQUIRE(!r.get_bool("mlp_bias", false), source,
               ": key \"mlp_bias\" is true; wkvq's MLP has no biases (gate/up/down_proj.bias "
               "are not supported)");
}

void require_positive(const std::string& source, const char* key, int v) {
  WKVQ_REQUIRE(v > 0, source, ": key \"", key, "\" must be positive, found ", v);
}

}  // namespace

HfConfig parse_hf_config(const std::string& json_text, const std::string& source,
                         bool require_architecture) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(source, ": not valid JSON: ", e.what());
  }
  return hf_config_from_json(j, source, require_architecture);
}

HfConfig hf_config_from_json(const json& j, const std::string& source, bool require_architecture) {
  WKVQ_REQUIRE(j.is_object(), source, ": expected a JSON object, found ", j.type_name());
  HfConfig c;
  try {
    const Reader r(j, source);
    check_architecture(r, c, source, require_architecture);
    check_unsupported_features(r, c, source);
    read_rope_scaling(r, c, source);
    read_attention_extras(r, c, source);
    c.hidden_size = r.get_int("hidden_size");
    c.intermediate_size = r.get_int("intermediate_size");
    c.num_hidden_layers = r.get_int("num_hidden_layers");
    c.num_attention_heads = r.get_int("num_attention_heads");
    c.vocab_size = r.get_int("vocab_size");
    c.max_position_embeddings = r.get_int("max_position_embeddings");
    require_positive(source, "num_attention_heads", c.num_attention_heads);
    c.num_key_value_heads = r.get_int("num_key_value_heads", c.num_attention_heads);
    c.head_dim = r.get_int("head_dim", c.hidden_size / c.num_attention_heads);
    require_positive(source, "hidden_size", c.hidden_size);
    require_positive(source, "intermediate_size", c.intermediate_size);
    require_positive(source, "num_hidden_layers", c.num_hidden_layers);
    require_positive(source, "num_key_value_heads", c.num_key_value_heads);
    require_positive(source, "head_dim", c.head_dim);
    require_positive(source, "vocab_size", c.vocab_size);
    require_positive(source, "max_position_embeddings", c.max_position_embeddings);
    c.sliding_window = r.get_int("sliding_window", 0);
    WKVQ_REQUIRE(c.sliding_window >= 0, source,
                 ": key \"sliding_window\" must be non-negative, found ", c.sliding_window);
    // Qwen configs carry a sliding_window that applies only with use_sliding_window true.
    const bool qwen = c.model_type == "qwen2" || c.model_type == "qwen3";
    if (qwen && !r.get_bool("use_sliding_window", false)) c.sliding_window = 0;
    c.rope_theta = r.get_double("rope_theta", 10000.0);
    c.rms_norm_eps = r.get_double("rms_norm_eps", 1e-6);
    c.tie_word_embeddings = r.get_bool("tie_word_embeddings", false);
    c.bos_token_id = r.get_token_id("bos_token_id", 1);
    c.eos_token_id = r.get_token_id("eos_token_id", 2);
  } catch (const json::exception& e) {  // backstop: every access above is type-checked
    fail(source, ": malformed config: ", e.what());
  }
  return c;
}

std::string hf_model_type_of(const std::string& architecture) {
  for (const Family& f : kFamilies) {
    if (architecture == f.architecture) return f.model_type;
  }
  return "";
}

HfConfig read_hf_config(const std::string& path, bool require_architecture) {
  return hf_config_from_json(read_json_file(path), path, require_architecture);
}

}  // namespace wkvq
