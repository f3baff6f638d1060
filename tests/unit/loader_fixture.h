// A tiny Llama model written by hand as a llama2.c .bin and as Hugging Face safetensors
// (F32/F16/BF16, single file or sharded), with its reference weights, for the loader tests
// (loader_valid_test, loader_errors_test, loader_fuzz_test).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "io/hf_config.h"
#include "io/llama2c_file.h"
#include "io/safetensors.h"
#include "model/loader.h"
#include "model/random_model.h"
#include "test_support.h"

namespace wkvq::loader_test {

using nlohmann::json;

// Runs f, expects a wkvq::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected a wkvq::Error mentioning \"" << parts.front() << "\"";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks \"" << p << "\": " << msg;
    }
  }
}

// ---- a tiny model and its files ---------------------------------------------------------------

struct Spec {
  int dim = 16, hidden = 24, layers = 2, heads = 4, kv_heads = 2, vocab = 32, seq_len = 32;
  bool tied = false;
  int head() const { return dim / heads; }
};

struct RefTensor {
  std::string name;  // Hugging Face name
  std::vector<int64_t> shape;
  std::vector<float> v;
};

inline std::string lname(int l, const std::string& s) {
  return "model.layers." + std::to_string(l) + "." + s;
}

// Seeded weights in Hugging Face naming; norms near 1, the rest in [-1, 1].
inline std::vector<RefTensor> make_weights(const Spec& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<RefTensor> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool norm) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    RefTensor t{name, shape, std::vector<float>(static_cast<size_t>(n))};
    for (float& x : t.v) x = norm ? 1.0f + 0.1f * u(rng) : u(rng);
    out.push_back(std::move(t));
  };
  const int64_t d = s.dim, h = s.hidden, q = s.heads * s.head(), kv = s.kv_heads * s.head();
  add("model.embed_tokens.weight", {s.vocab, d}, false);
  for (int l = 0; l < s.layers; ++l) {
    add(lname(l, "input_layernorm.weight"), {d}, true);
    add(lname(l, "self_attn.q_proj.weight"), {q, d}, false);
    add(lname(l, "self_attn.k_proj.weight"), {kv, d}, false);
    add(lname(l, "self_attn.v_proj.weight"), {kv, d}, false);
    add(lname(l, "self_attn.o_proj.weight"), {d, q}, false);
    add(lname(l, "post_attention_layernorm.weight"), {d}, true);
    add(lname(l, "mlp.gate_proj.weight"), {h, d}, false);
    add(lname(l, "mlp.up_proj.weight"), {h, d}, false);
    add(lname(l, "mlp.down_proj.weight"), {d, h}, false);
  }
  add("model.norm.weight", {d}, true);
  if (!s.tied) add("lm_head.weight", {s.vocab, d}, false);
  return out;
}

inline const RefTensor& ref(const std::vector<RefTensor>& w, const std::string& name) {
  for (const RefTensor& t : w) {
    if (t.name == name) return t;
  }
  throw std::logic_error("no reference tensor " + name);
}

inline void put_i32(std::string& b, int32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
inline void put_f32(std::string& b, const std::vector<float>& v) {
  b.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

inline std::string llama2c_bytes(const Spec& s, const std::vector<RefTensor>& w) {
  std::string b;
  for (int v :
       {s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.tied ? s.vocab : -s.vocab, s.seq_len}) {
    put_i32(b, v);
  }
  put_f32(b, ref(w, "model.embed_tokens.weight").v);
  for (const char* part :
       {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.down_proj.weight", "mlp.up_proj.weight"}) {
    for (int l = 0; l < s.layers; ++l) put_f32(b, ref(w, lname(l, part)).v);
  }
  put_f32(b, ref(w, "model.norm.weight").v);
  // freq_cis_real, freq_cis_imag: skipped by the loader; fill with a recognisable value.
  put_f32(b, std::vector<float>(static_cast<size_t>(s.seq_len * s.head()), 7.0f));
  if (!s.tied) put_f32(b, ref(w, "lm_head.weight").v);
  return b;
}

inline uint16_t to_bf16(float f) {  // round to nearest even (finite inputs)
  uint32_t x;
  std::memcpy(&x, &f, 4);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

inline float round_to(const std::string& dtype, float x) {
  if (dtype == "F16") return fp16_to_f32(f32_to_fp16(x));
  if (dtype == "BF16") return bf16_to_f32(to_bf16(x));
  return x;
}

inline std::string encode(const std::string& dtype, const std::vector<float>& v) {
  std::string b;
  if (dtype == "F32") {
    put_f32(b, v);
    return b;
  }
  for (float x : v) {
    const uint16_t h = dtype == "F16" ? f32_to_fp16(x) : to_bf16(x);
    b.append(reinterpret_cast<const char*>(&h), 2);
  }
  return b;
}

// A safetensors image under construction: tests edit `header` before serialising.
struct StImage {
  json header = json::object();
  std::string data;

  void add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
           const std::string& bytes) {
    header[name] = {{"dtype", dtype},
                    {"shape", shape},
                    {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string bytes() const {
    const std::string h = header.dump();
    std::string out(8, '\0');
    const uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
    return out + h + data;
  }
};

inline StImage st_image(const std::vector<RefTensor>& w, const std::string& dtype) {
  StImage img;
  img.header["__metadata__"] = {{"format", "pt"}};
  for (const RefTensor& t : w) img.add(t.name, dtype, t.shape, encode(dtype, t.v));
  return img;
}

inline json config_json(const Spec& s) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", s.dim},
          {"intermediate_size", s.hidden},
          {"num_hidden_layers", s.layers},
          {"num_attention_heads", s.heads},
          {"num_key_value_heads", s.kv_heads},
          {"vocab_size", s.vocab},
          {"max_position_embeddings", s.seq_len},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"rope_scaling", nullptr},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", s.tied},
          {"bos_token_id", 1},
          {"eos_token_id", 2}};
}

inline void write_hf(const std::string& dir, const json& config, const StImage& img) {
  test::write_file(dir + "/config.json", config.dump(2));
  test::write_file(dir + "/model.safetensors", img.bytes());
}

// Every weight of a model by Hugging Face name, copied out.
inline std::vector<std::pair<std::string, std::vector<float>>> model_tensors(const Model& m) {
  const LlamaConfig& c = m.config;
  std::vector<std::pair<std::string, std::vector<float>>> out;
  auto add = [&](const std::string& name, const float* p, int64_t n) {
    out.emplace_back(name, std::vector<float>(p, p + n));
  };
  auto lin = [&](const std::string& name, const Linear& l) {  // any float storage, as f32
    std::vector<float> v(static_cast<size_t>(l.out * l.in));
    l.rows_f32(0, l.out, v.data());
    out.emplace_back(name, std::move(v));
  };
  add("model.embed_tokens.weight", m.tok_embeddings, int64_t{c.vocab_size} * c.dim);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = m.layers[static_cast<size_t>(l)];
    add(lname(l, "input_layernorm.weight"), w.attn_norm, c.dim);
    lin(lname(l, "self_attn.q_proj.weight"), w.wq);
    lin(lname(l, "self_attn.k_proj.weight"), w.wk);
    lin(lname(l, "self_attn.v_proj.weight"), w.wv);
    lin(lname(l, "self_attn.o_proj.weight"), w.wo);
    add(lname(l, "post_attention_layernorm.weight"), w.ffn_norm, c.dim);
    lin(lname(l, "mlp.gate_proj.weight"), w.w_gate);
    lin(lname(l, "mlp.up_proj.weight"), w.w_up);
    lin(lname(l, "mlp.down_proj.weight"), w.w_down);
  }
  add("model.norm.weight", m.final_norm, c.dim);
  lin("lm_head.weight", m.output);
  return out;
}

// The model holds exactly the reference weights rounded to `dtype`, so within that type's
// half-ulp of the f32 originals: 2^-11 relative for F16 (plus 2^-25 absolute in its subnormal
// range), 2^-8 relative for BF16, exact for F32.
inline void expect_weights(const Model& m, const std::vector<RefTensor>& w,
                           const std::string& dtype) {
  const bool f16 = dtype == "F16", bf16 = dtype == "BF16";
  const double rel = f16 ? std::ldexp(1.0, -11) : bf16 ? std::ldexp(1.0, -8) : 0.0;
  const double abs = f16 ? std::ldexp(1.0, -25) : 0.0;
  for (const auto& [name, v] : model_tensors(m)) {
    const bool tied_head = name == "lm_head.weight" && m.config.tied_output;
    const RefTensor& r = ref(w, tied_head ? "model.embed_tokens.weight" : name);
    ASSERT_EQ(v.size(), r.v.size()) << name;
    for (size_t i = 0; i < v.size(); ++i) {
      ASSERT_EQ(v[i], round_to(dtype, r.v[i])) << name << "[" << i << "] " << dtype;
      ASSERT_LE(std::fabs(v[i] - r.v[i]), rel * std::fabs(r.v[i]) + abs) << name << "[" << i << "]";
    }
  }
}

inline void expect_tiny_config(const LlamaConfig& c, const Spec& s) {
  EXPECT_EQ(c.dim, s.dim);
  EXPECT_EQ(c.hidden_dim, s.hidden);
  EXPECT_EQ(c.n_layers, s.layers);
  EXPECT_EQ(c.n_heads, s.heads);
  EXPECT_EQ(c.n_kv_heads, s.kv_heads);
  EXPECT_EQ(c.head_dim, s.head());
  EXPECT_EQ(c.vocab_size, s.vocab);
  EXPECT_EQ(c.seq_len, s.seq_len);
  EXPECT_EQ(c.tied_output, s.tied);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
}

}  // namespace wkvq::loader_test
