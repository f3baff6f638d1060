// Loading valid files: tiny models written here (llama2.c .bin and Hugging Face F32/F16/BF16,
// single file and sharded) load with identical weights; seeded random models and presets.
#include <gtest/gtest.h>

#include "loader_fixture.h"

namespace wkvq {
namespace {

namespace fs = std::filesystem;
using namespace loader_test;

// ---- valid files ------------------------------------------------------------------------------

TEST(LoaderValid, Llama2cAndHfGiveTheSameWeights) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    Spec s;
    s.tied = tied;
    const auto w = make_weights(s, 42);
    test::TempDir tmp("loader");
    const std::string bin = tmp.path("tiny.bin");
    test::write_file(bin, llama2c_bytes(s, w));
    const Model a = load_model(bin);
    expect_tiny_config(a.config, s);
    EXPECT_EQ(a.config.rope_layout, RopeLayout::Interleaved);
    EXPECT_EQ(a.source, bin);
    expect_weights(a, w, "F32");
    if (tied) {
      EXPECT_EQ(a.output.w, a.tok_embeddings);
    }

    for (const std::string dtype : {"F32", "F16", "BF16"}) {
      SCOPED_TRACE(dtype);
      const std::string dir = tmp.sub("hf_" + dtype);
      write_hf(dir, config_json(s), st_image(w, dtype));
      const Model b = load_model(dir);
      expect_tiny_config(b.config, s);
      EXPECT_EQ(b.config.rope_layout, RopeLayout::RotateHalf);
      expect_weights(b, w, dtype);
      if (tied) {
        EXPECT_EQ(b.output.w, b.tok_embeddings);
      }
    }
  }
}

// A header length that is not a multiple of 4 leaves F32 data misaligned: copied, same values.
TEST(LoaderValid, MisalignedF32IsCopied) {
  Spec s;
  const auto w = make_weights(s, 7);
  StImage img = st_image(w, "F32");
  for (int pad = 0; pad < 4; ++pad) {
    img.header["__metadata__"]["pad"] = std::string(static_cast<size_t>(pad), 'x');  // shifts data
    test::TempDir tmp("loader");
    const std::string dir = tmp.sub("hf");
    write_hf(dir, config_json(s), img);
    const Model m = load_model(dir);
    expect_weights(m, w, "F32");
  }
}

TEST(LoaderValid, ShardedEqualsSingleFile) {
  Spec s;
  const auto w = make_weights(s, 3);
  test::TempDir tmp("loader");
  const std::string dir = tmp.sub("sharded");
  StImage a, b;
  json map = json::object();
  for (size_t i = 0; i < w.size(); ++i) {
    const bool first = i < w.size() / 2;
    (first ? a : b).add(w[i].name, "BF16", w[i].shape, encode("BF16", w[i].v));
    map[w[i].name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  test::write_file(dir + "/config.json", config_json(s).dump());
  test::write_file(dir + "/model-00001-of-00002.safetensors", a.bytes());
  test::write_file(dir + "/model-00002-of-00002.safetensors", b.bytes());
  test::write_file(dir + "/model.safetensors.index.json",
                   json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump());
  const Model m = load_model(dir);
  expect_weights(m, w, "BF16");
  // A file inside the directory names the directory.
  const Model m2 = load_model(dir + "/config.json");
  expect_weights(m2, w, "BF16");
}

TEST(LoaderValid, HfConfigDefaults) {
  const HfConfig c = parse_hf_config(
      R"({"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 100,
          "max_position_embeddings": 4096, "sliding_window": 1024, "eos_token_id": [5, 6]})",
      "defaults/config.json");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 5);
  const LlamaConfig lc = config_from_hf(c);
  EXPECT_EQ(lc.seq_len, 1024);  // capped by the sliding window
  EXPECT_EQ(lc.rope_layout, RopeLayout::RotateHalf);
  EXPECT_NO_THROW(lc.validate("defaults"));
}

// ---- random models and shapes -----------------------------------------------------------------

TEST(LoaderRandomModel, DeterministicAndShaped) {
  const LlamaConfig c = shape_preset("stories260k-shape");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(c.rope_layout, RopeLayout::Interleaved);
  // Same weights whatever the thread count.
  const int threads = num_threads();
  set_num_threads(1);
  const Model a = make_random_model(c, 1);
  set_num_threads(3);
  const Model b = make_random_model(c, 1);
  set_num_threads(threads);
  const Model d = make_random_model(c, 2);
  const auto ta = model_tensors(a), tb = model_tensors(b), td = model_tensors(d);
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].second, tb[i].second) << ta[i].first;
    EXPECT_NE(ta[i].second, td[i].second) << ta[i].first;
    const bool norm = ta[i].first.find("norm") != std::string::npos;
    for (float x : ta[i].second) {
      if (norm) {
        ASSERT_NEAR(x, 1.0f, 0.05f) << ta[i].first;
      } else {
        ASSERT_LE(std::fabs(x), 1.0f) << ta[i].first;
      }
    }
  }
  EXPECT_EQ(a.output.w, a.tok_embeddings);
}

TEST(LoaderRandomModel, Presets) {
  const LlamaConfig t = shape_preset("tinyllama-1.1b");
  EXPECT_EQ(t.dim, 2048);
  EXPECT_EQ(t.n_layers, 22);
  EXPECT_EQ(t.n_kv_heads, 4);
  EXPECT_EQ(t.hidden_dim, 5632);
  EXPECT_FALSE(t.tied_output);
  EXPECT_EQ(t.rope_layout, RopeLayout::RotateHalf);
  const LlamaConfig l = shape_preset("llama2-7b");
  EXPECT_EQ(l.dim, 4096);
  EXPECT_EQ(l.head_dim, 128);
  EXPECT_EQ(l.hidden_dim, 11008);
  EXPECT_EQ(l.seq_len, 4096);
  expect_error([] { shape_preset("gpt-5"); }, {"gpt-5", "tinyllama-1.1b"});

  test::TempDir tmp("loader");
  const std::string path = tmp.path("shape.json");
  Spec s;
  json j = config_json(s);
  j.erase("model_type");
  j.erase("architectures");
  test::write_file(path, j.dump());
  const LlamaConfig f = load_shape_file(path);
  expect_tiny_config(f, s);
  j["hidden_act"] = "relu";
  test::write_file(path, j.dump());
  expect_error([&] { load_shape_file(path); }, {"shape.json", "hidden_act"});
}

}  // namespace
}  // namespace wkvq
