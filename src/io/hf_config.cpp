#include "io/hf_config.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/mapped_file.h"

namespace wkvq {

using nlohmann::json;

namespace {

constexpr const char* kArchitectures[] = {"LlamaForCausalLM", "MistralForCausalLM"};
constexpr const char* kModelTypes[] = {"llama", "mistral"};

template <size_t N>
bool one_of(const std::string& s, const char* const (&list)[N]) {
  return std::find_if(std::begin(list), std::end(list), [&](const char* x) { return s == x; }) !=
         std::end(list);
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
               ": names neither \"model_type\" nor \"architectures\"; expected model_type "
               "\"llama\" or \"mistral\"");
  WKVQ_REQUIRE(c.model_type.empty() || one_of(c.model_type, kModelTypes), source,
               ": unsupported model_type \"", c.model_type,
               "\"; wkvq runs Llama-family models (model_type \"llama\" or \"mistral\")");
  for (const std::string& a : c.architectures) {
    WKVQ_REQUIRE(one_of(a, kArchitectures), source, ": unsupported architecture \"", a,
                 "\"; wkvq runs LlamaForCausalLM and MistralForCausalLM");
  }
}

void check_unsupported_features(const Reader& r, HfConfig& c, const std::string& source) {
  WKVQ_REQUIRE(!r.has("rope_scaling"), source, ": unsupported rope_scaling ",
               r.has("rope_scaling") ? r.at("rope_scaling").dump() : std::string(),
               "; wkvq implements plain RoPE only (rope_scaling must be null or absent)");
  c.hidden_act = r.get_string("hidden_act", "silu");
  WKVQ_REQUIRE(c.hidden_act == "silu", source, ": unsupported hidden_act \"", c.hidden_act,
               "\"; Llama's SwiGLU MLP needs \"silu\"");
  WKVQ_REQUIRE(!r.get_bool("attention_bias", false), source,
               ": attention_bias is true; wkvq's Llama block has no biases");
  WKVQ_REQUIRE(!r.get_bool("mlp_bias", false), source,
               ": mlp_bias is true; wkvq's Llama block has no biases");
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
  WKVQ_REQUIRE(j.is_object(), source, ": expected a JSON object, found ", j.type_name());
  HfConfig c;
  try {
    const Reader r(j, source);
    check_architecture(r, c, source, require_architecture);
    check_unsupported_features(r, c, source);
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

HfConfig read_hf_config(const std::string& path, bool require_architecture) {
  auto map = MappedFile::open(path);
  const auto* text = reinterpret_cast<const char*>(map->data());
  return parse_hf_config(std::string(text, text == nullptr ? 0 : map->size()), path,
                         require_architecture);
}

}  // namespace wkvq
