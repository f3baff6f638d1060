// Loading: valid tiny models written here (llama2.c .bin and Hugging Face F32/F16/BF16, single
// file and sharded) load with identical weights; bad files of every kind are rejected with a
// wkvq::Error naming the file and the problem; mutated files never crash (a small fuzz loop).
#include <gtest/gtest.h>
#include <unistd.h>

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

namespace wkvq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- scratch files ----------------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("wkvq_loader_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string sub(const std::string& name) const {
    fs::create_directories(path_ / name);
    return (path_ / name).string();
  }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Runs f, expects a wkvq::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
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

std::string lname(int l, const std::string& s) {
  return "model.layers." + std::to_string(l) + "." + s;
}

// Seeded weights in Hugging Face naming; norms near 1, the rest in [-1, 1].
std::vector<RefTensor> make_weights(const Spec& s, uint64_t seed) {
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

const RefTensor& ref(const std::vector<RefTensor>& w, const std::string& name) {
  for (const RefTensor& t : w) {
    if (t.name == name) return t;
  }
  throw std::logic_error("no reference tensor " + name);
}

void put_i32(std::string& b, int32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
void put_f32(std::string& b, const std::vector<float>& v) {
  b.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

std::string llama2c_bytes(const Spec& s, const std::vector<RefTensor>& w) {
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

uint16_t to_bf16(float f) {  // round to nearest even (finite inputs)
  uint32_t x;
  std::memcpy(&x, &f, 4);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

float round_to(const std::string& dtype, float x) {
  if (dtype == "F16") return fp16_to_f32(f32_to_fp16(x));
  if (dtype == "BF16") return bf16_to_f32(to_bf16(x));
  return x;
}

std::string encode(const std::string& dtype, const std::vector<float>& v) {
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

StImage st_image(const std::vector<RefTensor>& w, const std::string& dtype) {
  StImage img;
  img.header["__metadata__"] = {{"format", "pt"}};
  for (const RefTensor& t : w) img.add(t.name, dtype, t.shape, encode(dtype, t.v));
  return img;
}

json config_json(const Spec& s) {
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

void write_hf(const std::string& dir, const json& config, const StImage& img) {
  write_file(dir + "/config.json", config.dump(2));
  write_file(dir + "/model.safetensors", img.bytes());
}

// Every weight of a model by Hugging Face name, copied out.
std::vector<std::pair<std::string, std::vector<float>>> model_tensors(const Model& m) {
  const LlamaConfig& c = m.config;
  std::vector<std::pair<std::string, std::vector<float>>> out;
  auto add = [&](const std::string& name, const float* p, int64_t n) {
    out.emplace_back(name, std::vector<float>(p, p + n));
  };
  auto lin = [&](const std::string& name, const Linear& l) { add(name, l.w, l.out * l.in); };
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
void expect_weights(const Model& m, const std::vector<RefTensor>& w, const std::string& dtype) {
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

void expect_tiny_config(const LlamaConfig& c, const Spec& s) {
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

// ---- valid files ------------------------------------------------------------------------------

TEST(LoaderValid, Llama2cAndHfGiveTheSameWeights) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    Spec s;
    s.tied = tied;
    const auto w = make_weights(s, 42);
    TempDir tmp;
    const std::string bin = tmp.file("tiny.bin");
    write_file(bin, llama2c_bytes(s, w));
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
    TempDir tmp;
    const std::string dir = tmp.sub("hf");
    write_hf(dir, config_json(s), img);
    const Model m = load_model(dir);
    expect_weights(m, w, "F32");
  }
}

TEST(LoaderValid, ShardedEqualsSingleFile) {
  Spec s;
  const auto w = make_weights(s, 3);
  TempDir tmp;
  const std::string dir = tmp.sub("sharded");
  StImage a, b;
  json map = json::object();
  for (size_t i = 0; i < w.size(); ++i) {
    const bool first = i < w.size() / 2;
    (first ? a : b).add(w[i].name, "BF16", w[i].shape, encode("BF16", w[i].v));
    map[w[i].name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_file(dir + "/config.json", config_json(s).dump());
  write_file(dir + "/model-00001-of-00002.safetensors", a.bytes());
  write_file(dir + "/model-00002-of-00002.safetensors", b.bytes());
  write_file(dir + "/model.safetensors.index.json",
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

// ---- llama2.c errors --------------------------------------------------------------------------

class LoaderLlama2cErrors : public ::testing::Test {
 protected:
  Spec s;
  std::vector<RefTensor> w = make_weights(s, 5);
  std::string good = llama2c_bytes(s, w);
  TempDir tmp;
  std::string path = tmp.file("bad.bin");

  void expect_rejected(const std::string& bytes, const std::vector<std::string>& parts) {
    write_file(path, bytes);
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
  TempDir tmp;
  std::string dir = tmp.sub("hf");

  void expect_rejected(const std::vector<std::string>& parts) {
    write_hf(dir, config, img);
    expect_error([&] { load_model(dir); }, parts);
  }
  void expect_raw_rejected(const std::string& bytes, const std::vector<std::string>& parts) {
    write_file(dir + "/config.json", config.dump());
    write_file(dir + "/model.safetensors", bytes);
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
  expect_rejected({"model.layers.0.self_attn.q_proj.bias", "bias"});
  img = st_image(w, "F32");
  const float nan = std::nanf("");
  const uint64_t at = entry("model.layers.1.input_layernorm.weight")["data_offsets"][0];
  std::memcpy(img.data.data() + at + 8, &nan, 4);
  expect_rejected({"model.layers.1.input_layernorm.weight", "non-finite", "element 2"});
}

TEST_F(LoaderSafetensorsErrors, MissingFiles) {
  write_file(dir + "/config.json", config.dump());
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
         c["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
       },
       {"unsupported rope_scaling", "linear"}},
      {[](json& c) { c["hidden_act"] = "gelu"; }, {"unsupported hidden_act \"gelu\""}},
      {[](json& c) { c["attention_bias"] = true; }, {"attention_bias"}},
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
  write_file(dir + "/config.json", "{\"hidden_size\": 16,");
  expect_error([&] { load_model(dir); }, {"config.json", "not valid JSON"});
}

// ---- sharded errors ---------------------------------------------------------------------------

TEST_F(LoaderSafetensorsErrors, ShardedIndex) {
  write_file(dir + "/config.json", config.dump());
  write_file(dir + "/model-00001-of-00001.safetensors", img.bytes());
  json map = json::object();
  for (const RefTensor& t : w) map[t.name] = "model-00001-of-00001.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";

  json bad = map;
  bad["model.norm.weight"] = "model-00002-of-00002.safetensors";
  write_file(index, json{{"weight_map", bad}}.dump());
  expect_error([&] { load_model(dir); }, {"model.safetensors.index.json",
                                          "model-00002-of-00002.safetensors", "does not exist"});

  bad = map;
  bad["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00001.safetensors";
  write_file(index, json{{"weight_map", bad}}.dump());
  expect_error([&] { load_model(dir); },
               {"model.layers.9.mlp.up_proj.weight", "which does not contain it"});

  bad = map;
  bad["model.norm.weight"] = "../model-00001-of-00001.safetensors";
  write_file(index, json{{"weight_map", bad}}.dump());
  expect_error([&] { load_model(dir); }, {"must be a relative path inside the model directory"});

  write_file(index, json{{"weights", map}}.dump());
  expect_error([&] { load_model(dir); }, {"model.safetensors.index.json", "weight_map"});

  write_file(index, json{{"weight_map", map}}.dump());
  EXPECT_NO_THROW(load_model(dir));
}

// ---- fuzz -------------------------------------------------------------------------------------

// Mutates bytes, mostly near the front where the headers are; sometimes truncates or extends.
std::string mutate(std::string b, std::mt19937_64& rng, size_t hot_bytes) {
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !b.empty(); ++e) {
    const uint64_t kind = rng() % 10;
    const size_t span = (kind < 7 && hot_bytes > 0) ? std::min(hot_bytes, b.size()) : b.size();
    const size_t at = static_cast<size_t>(rng() % span);
    if (kind < 8) {
      b[at] =
          static_cast<char>(rng() % 2 ? (b[at] ^ (1 << (rng() % 8))) : static_cast<char>(rng()));
    } else if (kind == 8) {
      b.resize(at);
    } else {
      b.insert(at, 1 + rng() % 8, static_cast<char>(rng()));
    }
  }
  return b;
}

// Either a model or a wkvq::Error, never a crash or another exception.
void expect_model_or_error(const std::string& path, uint64_t seed, int iter) {
  try {
    const Model m = load_model(path);
    EXPECT_NO_THROW(m.config.validate("fuzz"));
  } catch (const Error&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "seed " << seed << " iteration " << iter << ": non-wkvq exception "
                  << e.what();
  }
}

TEST(LoaderFuzz, MutatedFilesGiveModelOrError) {
  const uint64_t seed = 20240601;
  std::mt19937_64 rng(seed);
  Spec s;
  const auto w = make_weights(s, 9);
  const std::string bin = llama2c_bytes(s, w);
  const StImage img = st_image(w, "F16");
  const std::string st = img.bytes();
  const size_t st_header = 8 + img.header.dump().size();
  const std::string cfg = config_json(s).dump(1);
  TempDir tmp;
  const std::string bin_path = tmp.file("fuzz.bin");
  const std::string dir = tmp.sub("hf");
  int errors = 0, models = 0;
  for (int i = 0; i < 600; ++i) {
    if (i % 3 == 0) {
      write_file(bin_path, mutate(bin, rng, 28));
      expect_model_or_error(bin_path, seed, i);
      continue;
    }
    write_file(dir + "/config.json", i % 3 == 1 ? cfg : mutate(cfg, rng, cfg.size()));
    write_file(dir + "/model.safetensors", i % 3 == 2 ? st : mutate(st, rng, st_header));
    try {
      load_model(dir);
      ++models;
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "seed " << seed << " iteration " << i << ": " << e.what();
    }
  }
  EXPECT_GT(errors, 100) << "the mutations should break most headers";
  EXPECT_GT(models, 0) << "some mutations (e.g. in values) leave a loadable model";
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

  TempDir tmp;
  const std::string path = tmp.file("shape.json");
  Spec s;
  json j = config_json(s);
  j.erase("model_type");
  j.erase("architectures");
  write_file(path, j.dump());
  const LlamaConfig f = load_shape_file(path);
  expect_tiny_config(f, s);
  j["hidden_act"] = "relu";
  write_file(path, j.dump());
  expect_error([&] { load_shape_file(path); }, {"shape.json", "hidden_act"});
}

}  // namespace
}  // namespace wkvq
