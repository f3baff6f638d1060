// Loading the shared real models: config values as published, and weights equal to values read
// independently here with plain fread (and, for safetensors, the JSON header parsed here).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/loader.h"
#include "test_support.h"

namespace wkvq {
namespace {

using FilePtr = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

FilePtr open_file(const std::string& path) {
  return FilePtr(std::fopen(path.c_str(), "rb"), &std::fclose);
}

// n floats at byte offset `offset` of the file.
std::vector<float> read_floats(const std::string& path, int64_t offset, size_t n) {
  FilePtr f = open_file(path);
  EXPECT_NE(f.get(), nullptr) << path;
  std::vector<float> v(n);
  if (f == nullptr) return v;
  EXPECT_EQ(std::fseek(f.get(), static_cast<long>(offset), SEEK_SET), 0);
  EXPECT_EQ(std::fread(v.data(), sizeof(float), n, f.get()), n) << path << " @" << offset;
  return v;
}

void expect_floats(const float* got, const std::vector<float>& want, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << what << "[" << i << "]";
}

TEST(LoaderGolden, Stories260K) {
  WKVQ_REQUIRE_SHARED(path, "models/stories260K/stories260K.bin");
  const Model m = load_model(path);
  const LlamaConfig& c = m.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(c.rope_layout, RopeLayout::Interleaved);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  ASSERT_EQ(m.layers.size(), 5u);

  // The header as raw int32, then floats at offsets computed from the llama2.c layout.
  FilePtr f = open_file(path);
  ASSERT_NE(f.get(), nullptr);
  int32_t header[7];
  ASSERT_EQ(std::fread(header, 4, 7, f.get()), 7u);
  EXPECT_EQ(header[0], 64);
  EXPECT_EQ(header[5], 512);  // positive: shared classifier
  const int64_t dim = 64, hidden = 172, layers = 5, q = 64, kv = 32, vocab = 512;
  const int64_t emb = 28, rms_att = emb + 4 * vocab * dim, wq = rms_att + 4 * layers * dim;
  const int64_t wk = wq + 4 * layers * q * dim, wv = wk + 4 * layers * kv * dim;
  const int64_t wo = wv + 4 * layers * kv * dim, rms_ffn = wo + 4 * layers * dim * q;
  const int64_t w1 = rms_ffn + 4 * layers * dim, w2 = w1 + 4 * layers * hidden * dim;
  const int64_t w3 = w2 + 4 * layers * dim * hidden, rms_final = w3 + 4 * layers * hidden * dim;
  expect_floats(m.tok_embeddings, read_floats(path, emb, 8), "token_embedding");
  expect_floats(m.tok_embeddings + 511 * 64, read_floats(path, emb + 4 * 511 * 64, 64),
                "token_embedding row 511");
  expect_floats(m.layers[2].attn_norm, read_floats(path, rms_att + 4 * 2 * dim, 64), "rms_att 2");
  expect_floats(m.layers[1].wq.w, read_floats(path, wq + 4 * q * dim, 8), "wq 1");
  expect_floats(m.layers[4].wk.w, read_floats(path, wk + 4 * 4 * kv * dim, 8), "wk 4");
  expect_floats(m.layers[3].wv.w, read_floats(path, wv + 4 * 3 * kv * dim, 8), "wv 3");
  expect_floats(m.layers[0].wo.w, read_floats(path, wo, 8), "wo 0");
  expect_floats(m.layers[4].ffn_norm, read_floats(path, rms_ffn + 4 * 4 * dim, 64), "rms_ffn 4");
  expect_floats(m.layers[2].w_gate.w, read_floats(path, w1 + 4 * 2 * hidden * dim, 8), "w1 2");
  expect_floats(m.layers[2].w_down.w, read_floats(path, w2 + 4 * 2 * dim * hidden, 8), "w2 2");
  expect_floats(m.layers[2].w_up.w, read_floats(path, w3 + 4 * 2 * hidden * dim, 8), "w3 2");
  expect_floats(m.final_norm, read_floats(path, rms_final, 64), "rms_final");
  EXPECT_EQ(m.output.w, m.tok_embeddings);
  EXPECT_EQ(m.output.out, 512);
  EXPECT_EQ(m.output.in, 64);
}

TEST(LoaderGolden, WkvqRef6m) {
  WKVQ_REQUIRE_SHARED(dir, "models/wkvq-ref-6m/config.json");
  const std::string model_dir = dir.substr(0, dir.size() - std::string("/config.json").size());
  const Model m = load_model(model_dir);
  const LlamaConfig& c = m.config;
  EXPECT_EQ(c.dim, 256);
  EXPECT_EQ(c.hidden_dim, 704);
  EXPECT_EQ(c.n_layers, 6);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.vocab_size, 4096);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_FALSE(c.tied_output);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_layout, RopeLayout::RotateHalf);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);

  // Parse the safetensors header here, then fread a few tensors' leading floats.
  const std::string st = model_dir + "/model.safetensors";
  FilePtr f = open_file(st);
  ASSERT_NE(f.get(), nullptr);
  uint64_t n = 0;
  ASSERT_EQ(std::fread(&n, 8, 1, f.get()), 1u);
  ASSERT_LT(n, 1u << 20);
  std::string text(static_cast<size_t>(n), '\0');
  ASSERT_EQ(std::fread(text.data(), 1, text.size(), f.get()), text.size());
  const nlohmann::json header = nlohmann::json::parse(text);
  auto check = [&](const std::string& name, const float* got, size_t count) {
    SCOPED_TRACE(name);
    const auto& e = header.at(name);
    EXPECT_EQ(e.at("dtype"), "F32");
    const int64_t begin = e.at("data_offsets").at(0).get<int64_t>();
    expect_floats(got, read_floats(st, 8 + static_cast<int64_t>(n) + begin, count), name);
  };
  check("model.embed_tokens.weight", m.tok_embeddings, 16);
  check("model.layers.0.input_layernorm.weight", m.layers[0].attn_norm, 256);
  check("model.layers.3.self_attn.q_proj.weight", m.layers[3].wq.w, 16);
  check("model.layers.5.self_attn.k_proj.weight", m.layers[5].wk.w, 16);
  check("model.layers.1.self_attn.o_proj.weight", m.layers[1].wo.w, 16);
  check("model.layers.2.mlp.up_proj.weight", m.layers[2].w_up.w, 16);
  check("model.layers.4.mlp.down_proj.weight", m.layers[4].w_down.w, 16);
  check("model.norm.weight", m.final_norm, 256);
  check("lm_head.weight", m.output.w, 16);
  EXPECT_NE(m.output.w, m.tok_embeddings);
  EXPECT_EQ(m.output.out, 4096);
  EXPECT_EQ(m.output.in, 256);
  EXPECT_EQ(m.weight_bytes(), 6524160 * 4);  // the README's parameter count, in f32
}

}  // namespace
}  // namespace wkvq
