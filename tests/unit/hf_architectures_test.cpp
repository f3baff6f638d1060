// config.json of the architectures beyond plain Llama: rope_scaling (linear, llama3), Qwen2
// biases, Qwen3 q/k norms and head_dim, Mistral's sliding window, attention_bias, and the errors
// each bad value gives (naming the file, the key and the value).
#include <gtest/gtest.h>

#include "loader_fixture.h"
#include "model/config.h"

namespace wkvq {
namespace {

using namespace loader_test;

const char* kFile = "arch/config.json";

json base_config(const std::string& arch, const std::string& type) {
  return {{"architectures", {arch}},  {"model_type", type},     {"hidden_size", 64},
          {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"vocab_size", 100},      {"max_position_embeddings", 256}};
}

HfConfig parse(const json& j) { return parse_hf_config(j.dump(), kFile); }

TEST(HfArchitectures, Llama3RopeScaling) {
  json j = base_config("LlamaForCausalLM", "llama");
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 32}};
  j["tie_word_embeddings"] = true;
  const LlamaConfig c = config_from_hf(parse(j));
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::Llama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position, 32);
  EXPECT_TRUE(c.tied_output);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.qk_norm);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_NO_THROW(c.validate(kFile));
}

TEST(HfArchitectures, LinearAndDefaultRopeScaling) {
  json j = base_config("LlamaForCausalLM", "llama");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.5}};  // the older key "type"
  LlamaConfig c = config_from_hf(parse(j));
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::Linear);
  EXPECT_EQ(c.rope_scaling.factor, 2.5);
  j["rope_scaling"] = {{"rope_type", "default"}};
  c = config_from_hf(parse(j));
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::None);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(config_from_hf(parse(j)).rope_scaling.kind, RopeScaling::Kind::None);
}

TEST(HfArchitectures, Qwen2HasQkvBiasesAndIgnoresAnUnusedWindow) {
  json j = base_config("Qwen2ForCausalLM", "qwen2");
  j["sliding_window"] = 32;
  j["use_sliding_window"] = false;
  const HfConfig hf = parse(j);
  EXPECT_EQ(hf.sliding_window, 0);
  const LlamaConfig c = config_from_hf(hf);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.seq_len, 256);  // not capped
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  j["use_sliding_window"] = true;
  EXPECT_EQ(config_from_hf(parse(j)).seq_len, 32);
}

TEST(HfArchitectures, Qwen3HasQkNormAndExplicitHeadDim) {
  json j = base_config("Qwen3ForCausalLM", "qwen3");
  j["head_dim"] = 32;  // hidden / heads = 16
  j["attention_bias"] = false;
  LlamaConfig c = config_from_hf(parse(j));
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias || c.o_bias);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.kv_dim(), 64);
  EXPECT_NO_THROW(c.validate(kFile));
  j["attention_bias"] = true;
  c = config_from_hf(parse(j));
  EXPECT_TRUE(c.qkv_bias && c.o_bias && c.qk_norm);
}

TEST(HfArchitectures, LlamaAttentionBiasAndModelTypeOnly) {
  json j = base_config("LlamaForCausalLM", "llama");
  j["attention_bias"] = true;
  const LlamaConfig c = config_from_hf(parse(j));
  EXPECT_TRUE(c.qkv_bias && c.o_bias);
  json t = base_config("x", "qwen2");
  t.erase("architectures");
  EXPECT_EQ(parse(t).architecture, "Qwen2ForCausalLM");
}

TEST(HfArchitectures, MistralWindowCapsTheContext) {
  json j = base_config("MistralForCausalLM", "mistral");
  j["sliding_window"] = 96;
  EXPECT_EQ(config_from_hf(parse(j)).seq_len, 96);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(config_from_hf(parse(j)).seq_len, 256);
}

// An edit of a valid config.json and the parts the error message must name (the file too).
struct ConfigErrorCase {
  std::function<void(json&)> edit;
  std::vector<std::string> parts;
};

void expect_config_errors(const std::vector<ConfigErrorCase>& cases) {
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    json j = base_config("LlamaForCausalLM", "llama");
    cases[i].edit(j);
    std::vector<std::string> parts = cases[i].parts;
    parts.push_back(kFile);
    expect_error([&] { parse(j); }, parts);
  }
}

TEST(HfArchitectures, RopeScalingErrors) {
  expect_config_errors({
      {[](json& c) {
         c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
       },
       {"rope_scaling.rope_type", "\"yarn\"", "\"llama3\""}},
      {[](json& c) {
         c["rope_scaling"] = {{"type", "dynamic"}, {"factor", 4.0}};
       },
       {"rope_scaling.type", "\"dynamic\""}},
      {[](json& c) {
         c["rope_scaling"] = {{"factor", 4.0}};
       },
       {"rope_scaling", "rope_type"}},
      {[](json& c) { c["rope_scaling"] = "linear"; }, {"\"rope_scaling\" must be an object"}},
      {[](json& c) {
         c["rope_scaling"] = {{"type", "linear"}};
       },
       {"rope_scaling.factor", "missing"}},
      {[](json& c) {
         c["rope_scaling"] = {{"type", "linear"}, {"factor", 0.0}};
       },
       {"rope_scaling.factor", "must be positive"}},
      {[](json& c) {
         c["rope_scaling"] = {{"type", "linear"}, {"factor", -2.0}};
       },
       {"rope_scaling.factor", "must be positive"}},
      {[](json& c) {
         c["rope_scaling"] = {{"type", "linear"}, {"factor", "2"}};
       },
       {"rope_scaling", "\"factor\" must be a number"}},
      {[](json& c) {
         c["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 4.0},
                              {"high_freq_factor", 1.0},
                              {"original_max_position_embeddings", 32}};
       },
       {"rope_scaling.high_freq_factor", "greater than low_freq_factor"}},
      {[](json& c) {
         c["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0}};
       },
       {"rope_scaling.original_max_position_embeddings", "missing"}},
      {[](json& c) {
         c["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 0.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 32}};
       },
       {"rope_scaling.low_freq_factor", "must be positive"}},
      {[](json& c) {
         c["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 0}};
       },
       {"rope_scaling.original_max_position_embeddings", "must be positive"}},
  });
}

TEST(HfArchitectures, ArchitectureAndBiasErrors) {
  expect_config_errors({
      {[](json& c) { c["mlp_bias"] = true; }, {"\"mlp_bias\"", "MLP has no biases"}},
      {[](json& c) {
         c["architectures"] = {"MistralForCausalLM"};
         c["model_type"] = "mistral";
         c["attention_bias"] = true;
       },
       {"attention_bias", "MistralForCausalLM"}},
      {[](json& c) { c["model_type"] = "qwen2"; },
       {"architecture \"LlamaForCausalLM\" does not match model_type \"qwen2\""}},
      {[](json& c) { c["architectures"] = {"Qwen2MoeForCausalLM"}; },
       {"unsupported architecture \"Qwen2MoeForCausalLM\"", "Qwen3ForCausalLM"}},
  });
}

// LlamaConfig::validate on scaling values that did not come through config.json.
TEST(HfArchitectures, ValidateRopeScaling) {
  LlamaConfig c = shape_preset("stories260k-shape");
  c.rope_scaling.kind = RopeScaling::Kind::Llama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.original_max_position = 0;
  expect_error([&] { c.validate("v"); }, {"v", "original_max_position_embeddings"});
  c.rope_scaling.original_max_position = 32;
  c.rope_scaling.high_freq_factor = 0.5;
  expect_error([&] { c.validate("v"); }, {"high_freq_factor"});
  c.rope_scaling.kind = RopeScaling::Kind::Linear;
  c.rope_scaling.factor = std::nan("");
  expect_error([&] { c.validate("v"); }, {"rope_scaling.factor"});
  c.rope_scaling.factor = 2.0;
  EXPECT_NO_THROW(c.validate("v"));
  c.o_bias = true;
  expect_error([&] { c.validate("v"); }, {"o_proj bias without q/k/v biases"});
}

}  // namespace
}  // namespace wkvq
