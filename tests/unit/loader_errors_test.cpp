// Loading bad files: every kind of broken llama2.c, safetensors, config.json and sharded index
// is rejected with a wkvq::Error naming the file and the problem.
#include <gtest/gtest.h>

#include "loader_fixture.h"

namespace wkvq {
namespace {

namespace fs = std::filesystem;
using namespace loader_test;

// ---- llama2.c errors --------------------------------------------------------------------------

class LoaderLlama2cErrors : public ::testing::Test {
 protected:
  Spec s;
  std::vector<RefTensor> w = make_weights(s, 5);
  std::string good = llama2c_bytes(s, w);
  test::TempDir tmp{"loader"};
  std::string path = tmp.path("bad.bin");

  void expect_rejected(const std::string& bytes, const std::vector<std::string>& parts) {
    test::write_file(path, bytes);
    std::vector<std::string> all = parts;
    all.push_back("bad.bin");
    expect_error([&] { load_model(path); }, all);
  }
  std::string with_field(int index, int32_t value) const {
    std::string b = good;
    std::memcpy(b.data() + 4 * index, &value, 4);
    return b;
  }
};

TEST_F(LoaderLlama2cErrors, Truncated) {
  for (size_t cut : {size_t{0}, size_t{3}, size_t{12}, size_t{27}}) {
    SCOPED_TRACE(cut);
    expect_rejected(good.substr(0, cut), {"too short", "28-byte llama2.c header"});
  }
  const std::string expected = "expected " + std::to_string(good.size()) + " bytes";
  for (size_t cut :
       {size_t{28}, size_t{29}, size_t{100}, good.size() / 2, good.size() - 4, good.size() - 1}) {
    SCOPED_TRACE(cut);
    expect_rejected(good.substr(0, cut),
                    {expected, "found " + std::to_string(cut) + " bytes", "truncated"});
  }
}

TEST_F(LoaderLlama2cErrors, TrailingBytes) {
  expect_rejected(good + std::string(4, '\0'), {"trailing bytes", "expected"});
  expect_rejected(good + "x", {"trailing bytes"});
}

TEST_F(LoaderLlama2cErrors, BadHeaderFields) {
  const char* names[] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                         "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    SCOPED_TRACE(names[i]);
    expect_rejected(with_field(i, 0), {names[i], "must be positive, found 0"});
    if (i != 5) expect_rejected(with_field(i, -3), {names[i], "must be positive, found -3"});
    expect_rejected(with_field(i, 1 << 30), {names[i], "implausibly large"});
  }
  expect_rejected(with_field(5, INT32_MIN), {"vocab_size", "implausibly large"});
  // Flipping the classifier sign changes the expected size.
  expect_rejected(with_field(5, s.vocab), {"shared classifier", "expected"});
}

TEST_F(LoaderLlama2cErrors, InconsistentHeads) {
  expect_rejected(with_field(3, 3), {"dim (16) is not divisible by n_heads (3)"});
  expect_rejected(with_field(4, 3), {"n_heads (4) is not a multiple of n_kv_heads (3)"});
  std::string odd = with_field(0, 12);  // head_size 3
  expect_rejected(odd, {"head_size", "even"});
  expect_rejected(with_field(0, 0x616b3432), {"version 1/2"});
}

TEST_F(LoaderLlama2cErrors, NonFiniteWeight) {
  std::string b = good;
  const float nan = std::nanf("");
  const size_t off = 28 + 4 * 100;  // inside the token embedding
  std::memcpy(b.data() + off, &nan, 4);
  expect_rejected(b, {"token_embedding", "non-finite"});
  b = good;
  const float inf = INFINITY;
  std::memcpy(b.data() + b.size() - 8, &inf, 4);  // inside wcls
  expect_rejected(b, {"wcls", "non-finite"});
}

TEST(LoaderErrors, MissingPath) {
  expect_error([] { load_model("/nonexistent/wkvq/model.bin"); },
               {"/nonexistent/wkvq/model.bin", "no such file"});
  expect_error([] { MappedFile::open("/nonexistent/x.bin"); },
               {"/nonexistent/x.bin", "No such file"});
}

// ---- safetensors errors -----------------------------------------------------------------------

class LoaderSafetensorsErrors : public ::testing::Test {
 protected:
  Spec s;
  std::vector<RefTensor> w = make_weights(s, 11);
  StImage img = st_image(w, "F32");
  json config = config_json(s);
  test::TempDir tmp{"loader"};
  std::string dir = tmp.sub("hf");

  void expect_rejected(const std::vector<std::string>& parts) {
    write_hf(dir, config, img);
    expect_error([&] { load_model(dir); }, parts);
  }
  void expect_raw_rejected(const std::string& bytes, const std::vector<std::string>& parts) {
    test::write_file(dir + "/config.json", config.dump());
    test::write_file(dir + "/model.safetensors", bytes);
    std::vector<std::string> all = parts;
    all.push_back("model.safetensors");
    expect_error([&] { load_model(dir); }, all);
  }
  json& entry(const std::string& name) { return img.header[name]; }
};

TEST_F(LoaderSafetensorsErrors, HeaderLength) {
  expect_raw_rejected("abc", {"too short"});
  std::string b = img.bytes();
  const uint64_t huge = b.size();  // length alone fills the file and more
  std::memcpy(b.data(), &huge, 8);
  expect_raw_rejected(b, {"header length", "runs past the end of the file"});
  const uint64_t max = ~uint64_t{0};
  std::memcpy(b.data(), &max, 8);
  expect_raw_rejected(b, {"runs past the end of the file"});
}

TEST_F(LoaderSafetensorsErrors, InvalidJson) {
  const std::string text = "{\"a\": [1, 2";
  std::string b(8, '\0');
  b[0] = static_cast<char>(text.size());
  expect_raw_rejected(b + text, {"not valid JSON"});
  const std::string arr = "[1, 2, 3]";
  std::string c(8, '\0');
  c[0] = static_cast<char>(arr.size());
  expect_raw_rejected(c + arr, {"must be a JSON object"});
}

TEST_F(LoaderSafetensorsErrors, MissingTensor) {
  img.header.erase("model.norm.weight");
  expect_rejected({"model.norm.weight", "not found", "model.safetensors"});
}

TEST_F(LoaderSafetensorsErrors, WrongShape) {
  entry("model.layers.1.mlp.up_proj.weight")["shape"] = {16, 24};
  expect_rejected({"model.safetensors",
                   "model.layers.1.mlp.up_proj.weight: expected shape [24, 16], found [16, 24]"});
}

TEST_F(LoaderSafetensorsErrors, ConfigDisagreesWithTensors) {
  config["intermediate_size"] = 32;
  expect_rejected({"model.layers.0.mlp.gate_proj.weight: expected shape [32, 16], found [24, 16]"});
}

TEST_F(LoaderSafetensorsErrors, UnsupportedDtype) {
  const std::string name = "model.layers.0.self_attn.k_proj.weight";  // shape [8, 16]
  const std::pair<const char*, size_t> dtypes[] = {
      {"I8", 1}, {"U8", 1}, {"F8_E4M3", 1}, {"I32", 4}, {"I64", 8}, {"F64", 8}, {"BOOL", 1}};
  for (const auto& [dt, esize] : dtypes) {
    SCOPED_TRACE(dt);
    img = st_image(w, "F32");
    img.header.erase(name);
    img.add(name, dt, {8, 16}, std::string(128 * esize, '\0'));
    expect_rejected({name, std::string("unsupported dtype ") + dt, "model.safetensors"});
  }
  // An F32-sized buffer labelled F8_E4M3 fails the size check, at open.
  img = st_image(w, "F32");
  entry(name)["dtype"] = "F8_E4M3";
  expect_rejected({name, "span 512 bytes, expected 128 for F8_E4M3 shape [8, 16]"});
  entry(name)["dtype"] = "Q4_K";
  expect_rejected({name, "unknown dtype \"Q4_K\""});
}

TEST_F(LoaderSafetensorsErrors, UnsupportedDtypeAtUseOnly) {
  // An I64 tensor the model does not use does not stop the load.
  img.add("model.extra_buffer", "I64", {3}, std::string(24, '\0'));
  write_hf(dir, config, img);
  EXPECT_NO_THROW(load_model(dir));
  const SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
  expect_error([&] { f.find("model.extra_buffer")->require_supported_dtype(); },
               {"model.extra_buffer", "unsupported dtype I64"});
}

TEST_F(LoaderSafetensorsErrors, Offsets) {
  const std::string name = "model.layers.1.self_attn.o_proj.weight";
  const uint64_t n = img.data.size();
  entry(name)["data_offsets"] = {n - 64, n + 960};
  expect_rejected({name, "run past the data section"});
  img = st_image(w, "F32");
  entry(name)["data_offsets"] = {0, 1020};
  expect_rejected({name, "span 1020 bytes, expected 1024"});
  img = st_image(w, "F32");
  entry(name)["data_offsets"] = {100, 10};
  expect_rejected({name, "begin 100 is after end 10"});
  img = st_image(w, "F32");
  entry(name)["data_offsets"] = {0, 1024};  // on top of the embedding
  expect_rejected({"overlap", "model.embed_tokens.weight", name});
  img = st_image(w, "F32");
  entry(name)["data_offsets"] = {"0", 1024};
  expect_rejected({name, "must be an integer"});
  img = st_image(w, "F32");
  entry(name)["data_offsets"] = {0};
  expect_rejected({name, "[begin, end]"});
  img = st_image(w, "F32");
  entry(name)["data_offsets"] = {-4, 1020};
  expect_rejected({name, "must be non-negative"});
}

TEST_F(LoaderSafetensorsErrors, Shapes) {
  const std::string name = "model.norm.weight";
  entry(name)["shape"] = {-16};
  expect_rejected({name, "shape entry must be non-negative, found -16"});
  img = st_image(w, "F32");
  entry(name)["shape"] = {uint64_t{1} << 40, uint64_t{1} << 40};
  expect_rejected({name, "overflows"});
  img = st_image(w, "F32");
  entry(name)["shape"] = "16";
  expect_rejected({name, "\"shape\" must be an array"});
  img = st_image(w, "F32");
  entry(name).erase("dtype");
  expect_rejected({name, "missing \"dtype\""});
}

TEST_F(LoaderSafetensorsErrors, OutputHead) {
  img.header.erase("lm_head.weight");
  expect_rejected({"lm_head.weight", "tie_word_embeddings is false"});
  config["tie_word_embeddings"] = true;
  write_hf(dir, config, img);
  const Model m = load_model(dir);
  EXPECT_EQ(m.output.w, m.tok_embeddings);
}

TEST_F(LoaderSafetensorsErrors, BiasAndNonFinite) {
  img.add("model.layers.0.self_attn.q_proj.bias", "F32", {16}, std::string(64, '\0'));
  expect_rejected(
      {"model.layers.0.self_attn.q_proj.bias", "does not call for", "attention_bias false"});
  // Qwen2: q/k/v biases by architecture (loaded), but an MLP bias or a bias of the wrong shape
  // is refused; an absent q/k norm of Qwen3 is named with the config that asks for it.
  config["architectures"] = {"Qwen2ForCausalLM"};
  config["model_type"] = "qwen2";
  img = st_image(w, "F32");
  for (int l = 0; l < s.layers; ++l) {
    img.add(lname(l, "self_attn.q_proj.bias"), "F32", {16}, std::string(64, '\0'));
    img.add(lname(l, "self_attn.k_proj.bias"), "F32", {8}, std::string(32, '\0'));
    img.add(lname(l, "self_attn.v_proj.bias"), "F32", {8}, std::string(32, '\0'));
  }
  write_hf(dir, config, img);
  EXPECT_NE(load_model(dir).layers[1].wv.bias, nullptr);
  img.add("model.layers.0.mlp.up_proj.bias", "F32", {24}, std::string(96, '\0'));
  expect_rejected({"model.layers.0.mlp.up_proj.bias", "MLP biases are not supported"});
  img = st_image(w, "F32");
  for (int l = 0; l < s.layers; ++l) {
    img.add(lname(l, "self_attn.q_proj.bias"), "F32", {16}, std::string(64, '\0'));
    img.add(lname(l, "self_attn.k_proj.bias"), "F32", {16}, std::string(64, '\0'));
    img.add(lname(l, "self_attn.v_proj.bias"), "F32", {8}, std::string(32, '\0'));
  }
  expect_rejected({"model.layers.0.self_attn.k_proj.bias", "expected shape [8]", "[16]"});
  config["architectures"] = {"Qwen3ForCausalLM"};
  config["model_type"] = "qwen3";
  img = st_image(w, "F32");
  expect_rejected(
      {"model.layers.0.self_attn.q_norm.weight", "not found", "config.json", "q/k norms"});
  config = config_json(s);
  img = st_image(w, "F32");
  const float nan = std::nanf("");
  const uint64_t at = entry("model.layers.1.input_layernorm.weight")["data_offsets"][0];
  std::memcpy(img.data.data() + at + 8, &nan, 4);
  expect_rejected({"model.layers.1.input_layernorm.weight", "non-finite", "element 2"});
}

TEST_F(LoaderSafetensorsErrors, MissingFiles) {
  test::write_file(dir + "/config.json", config.dump());
  expect_error([&] { load_model(dir); }, {"no model.safetensors.index.json", dir});
  const std::string empty = tmp.sub("empty");
  expect_error([&] { load_model(empty); }, {"no config.json", empty});
}

// ---- config.json errors -----------------------------------------------------------------------

TEST_F(LoaderSafetensorsErrors, ConfigJson) {
  struct Case {
    std::function<void(json&)> edit;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {[](json& c) { c.erase("hidden_size"); }, {"missing required key \"hidden_size\""}},
      {[](json& c) { c.erase("vocab_size"); }, {"missing required key \"vocab_size\""}},
      {[](json& c) { c["hidden_size"] = "16"; },
       {"key \"hidden_size\" must be an integer, found string"}},
      {[](json& c) { c["num_hidden_layers"] = 2.5; }, {"\"num_hidden_layers\" must be an integer"}},
      {[](json& c) { c["num_attention_heads"] = 0; }, {"\"num_attention_heads\" must be positive"}},
      {[](json& c) { c["intermediate_size"] = -24; }, {"\"intermediate_size\" must be positive"}},
      {[](json& c) { c["vocab_size"] = 1e20; }, {"\"vocab_size\" must be an integer"}},
      {[](json& c) { c["max_position_embeddings"] = uint64_t{1} << 40; }, {"out of range"}},
      {[](json& c) { c["tie_word_embeddings"] = "yes"; },
       {"\"tie_word_embeddings\" must be true or false"}},
      {[](json& c) { c["rope_theta"] = "big"; }, {"\"rope_theta\" must be a number"}},
      {[](json& c) { c["model_type"] = "gpt2"; }, {"unsupported model_type \"gpt2\""}},
      {[](json& c) { c["architectures"] = {"GPT2LMHeadModel"}; },
       {"unsupported architecture \"GPT2LMHeadModel\""}},
      {[](json& c) { c["architectures"] = "LlamaForCausalLM"; },
       {"\"architectures\" must be a list"}},
      {[](json& c) {
         c.erase("model_type");
         c.erase("architectures");
       },
       {"names neither \"model_type\" nor \"architectures\""}},
      {[](json& c) {
         c["rope_scaling"] = {{"type", "yarn"}, {"factor", 2.0}};
       },
       {"rope_scaling.type", "\"yarn\"", "does not implement"}},
      {[](json& c) { c["hidden_act"] = "gelu"; }, {"unsupported hidden_act \"gelu\""}},
      {[](json& c) { c["mlp_bias"] = true; }, {"mlp_bias"}},
      // biases the config asks for must be in the file
      {[](json& c) { c["attention_bias"] = true; },
       {"model.layers.0.self_attn.q_proj.bias", "not found"}},
      {[](json& c) { c["num_key_value_heads"] = 3; },
       {"n_heads (4) must be a multiple of n_kv_heads (3)"}},
      {[](json& c) { c["rms_norm_eps"] = 2.0; }, {"rms_norm_eps"}},
      {[](json& c) { c = json::array(); }, {"expected a JSON object"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    config = config_json(s);
    cases[i].edit(config);
    std::vector<std::string> parts = cases[i].parts;
    parts.push_back("config.json");
    expect_rejected(parts);
  }
  test::write_file(dir + "/config.json", "{\"hidden_size\": 16,");
  expect_error([&] { load_model(dir); }, {"config.json", "not valid JSON"});
}

// ---- sharded errors ---------------------------------------------------------------------------

TEST_F(LoaderSafetensorsErrors, ShardedIndex) {
  test::write_file(dir + "/config.json", config.dump());
  test::write_file(dir + "/model-00001-of-00001.safetensors", img.bytes());
  json map = json::object();
  for (const RefTensor& t : w) map[t.name] = "model-00001-of-00001.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";

  json bad = map;
  bad["model.norm.weight"] = "model-00002-of-00002.safetensors";
  test::write_file(index, json{{"weight_map", bad}}.dump());
  expect_error([&] { load_model(dir); }, {"model.safetensors.index.json",
                                          "model-00002-of-00002.safetensors", "does not exist"});

  bad = map;
  bad["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00001.safetensors";
  test::write_file(index, json{{"weight_map", bad}}.dump());
  expect_error([&] { load_model(dir); },
               {"model.layers.9.mlp.up_proj.weight", "which does not contain it"});

  bad = map;
  bad["model.norm.weight"] = "../model-00001-of-00001.safetensors";
  test::write_file(index, json{{"weight_map", bad}}.dump());
  expect_error([&] { load_model(dir); }, {"must be a relative path inside the model directory"});

  test::write_file(index, json{{"weights", map}}.dump());
  expect_error([&] { load_model(dir); }, {"model.safetensors.index.json", "weight_map"});

  test::write_file(index, json{{"weight_map", map}}.dump());
  EXPECT_NO_THROW(load_model(dir));
}

}  // namespace
}  // namespace wkvq
