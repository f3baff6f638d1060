#include "model/loader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/parallel.h"
#include "io/json_file.h"
#include "io/llama2c_file.h"
#include "io/safetensors.h"
#include "model/hf_names.h"
#include "model/quantized_model_io.h"
#include "model/weight_quantizer.h"

namespace wkvq {

namespace fs = std::filesystem;

namespace {

// An f32 Linear viewing w (out, in) row-major.
Linear f32_linear(int64_t out, int64_t in, const float* w) {
  Linear lin;
  lin.out = out;
  lin.in = in;
  lin.w = w;
  return lin;
}

// Models under this many parameters get every weight scanned for NaN/Inf at load. Larger ones
// (a 7B model is 27 GB of f32) get only the norms and embeddings scanned, which is cheap; their
// linears are trusted, since reading every byte of them would dominate the load time.
constexpr int64_t kFullScanParams = 100'000'000;

int64_t param_count(const LlamaConfig& c) {
  const int64_t dim = c.dim, per_layer = 2 * dim + int64_t{c.q_dim()} * dim * 2 +
                                         int64_t{c.kv_dim()} * dim * 2 +
                                         3 * int64_t{c.hidden_dim} * dim;
  const int64_t emb = int64_t{c.vocab_size} * dim;
  return emb * (c.tied_output ? 1 : 2) + dim + c.n_layers * per_layer;
}

// The first i in [0, n) with bad(i), or -1; the elements are scanned in parallel chunks.
template <class Bad>
int64_t first_bad_element(int64_t n, const Bad& bad) {
  constexpr int64_t kGrain = int64_t{1} << 16;
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  std::vector<int64_t> first_bad(static_cast<size_t>(std::max<int64_t>(chunks, 1)), -1);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (bad(i)) {
        first_bad[static_cast<size_t>(b / kGrain)] = i;
        return;
      }
    }
  });
  for (const int64_t i : first_bad) {
    if (i >= 0) return i;
  }
  return -1;
}

// Throws naming `where` and the first non-finite element of x[0, n).
void check_finite(const float* x, int64_t n, const std::string& where) {
  const int64_t i = first_bad_element(n, [x](int64_t j) { return !std::isfinite(x[j]); });
  WKVQ_REQUIRE(i < 0, where, ": non-finite weight ", x[i], " at element ", i,
               "; the file is corrupt");
}

// Throws naming `where` and the first non-finite element of the fp16 (bf16 when `bf16`) bits
// x[0, n): all exponent bits set is Inf or NaN in both formats.
void check_finite_half(const uint16_t* x, int64_t n, bool bf16, const std::string& where) {
  const uint16_t exp = bf16 ? 0x7f80u : 0x7c00u;
  const int64_t i = first_bad_element(n, [x, exp](int64_t j) { return (x[j] & exp) == exp; });
  WKVQ_REQUIRE(i < 0, where, ": non-finite weight ", bf16 ? bf16_to_f32(x[i]) : fp16_to_f32(x[i]),
               " at element ", i, "; the file is corrupt");
}

// Fetches HF tensors by name with shape and dtype checked, as f32 pointers owned by the model,
// or (linears, with LoadOptions::half_in_place) as fp16/bf16 pointers into the mapped file.
class HfTensors {
 public:
  HfTensors(const SafetensorsSet& set, Model& m, bool full_scan, const LoadOptions& opt)
      : set_(set), m_(m), full_scan_(full_scan), opt_(opt) {}

  const float* get(const std::string& name, std::vector<int64_t> shape, bool scan) {
    const TensorInfo& t = checked(name, shape);
    const float* p = t.f32_in_place();
    if (p == nullptr) {  // F16, BF16 or misaligned F32: convert into an owned buffer
      float* buf = m_.storage.allocate(static_cast<size_t>(t.numel));
      parallel_for(t.numel, int64_t{1} << 16,
                   [&](int64_t b, int64_t e) { t.to_f32(b, e - b, buf + b); });
      m_.storage.release_pages(t.data, static_cast<int64_t>(t.nbytes));
      p = buf;
    }
    if (scan || full_scan_) check_finite(p, t.numel, t.file + ": " + name);
    return p;
  }

  Linear linear(const std::string& name, int64_t out, int64_t in) {
    Linear lin;
    lin.out = out;
    lin.in = in;
    const TensorInfo& t = checked(name, {out, in});
    const bool half = t.dtype == DType::F16 || t.dtype == DType::BF16;
    if (!opt_.half_in_place || !half || reinterpret_cast<uintptr_t>(t.data) % 2 != 0) {
      lin.w = get(name, {out, in}, false);
      return lin;
    }
    const auto* bits = reinterpret_cast<const uint16_t*>(t.data);
    (t.dtype == DType::F16 ? lin.w16 : lin.wbf16) = bits;
    if (full_scan_) {
      check_finite_half(bits, t.numel, t.dtype == DType::BF16, t.file + ": " + name);
      m_.storage.release_pages(t.data, static_cast<int64_t>(t.nbytes));
    }
    return lin;
  }

 private:
  const TensorInfo& checked(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorInfo& t = set_.get(name);
    WKVQ_REQUIRE(t.shape == shape, t.file, ": ", name, ": expected shape ", shape_to_string(shape),
                 ", found ", t.shape_string());
    t.require_supported_dtype();
    return t;
  }

  const SafetensorsSet& set_;
  Model& m_;
  bool full_scan_;
  LoadOptions opt_;
};

// Refuses bias tensors config.json does not call for (an MLP bias, or attention biases of a
// config without them): the loaded model would silently compute something else.
void reject_unexpected_biases(const SafetensorsSet& set, const LlamaConfig& c,
                              const std::string& dir) {
  for (const std::string& name : set.names()) {
    const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (!bias) continue;
    bool expected = false;
    for (int l = 0; l < c.n_layers && !expected; ++l) {
      for (int i = 0; i < 4 && !expected; ++i) {
        expected = name == linear_prefix(l, i) + "bias" && (i < 3 ? c.qkv_bias : c.o_bias);
      }
    }
    WKVQ_REQUIRE(expected, dir, ": tensor '", name, "' is a bias that config.json (architecture ",
                 c.architecture, ", attention_bias ", c.o_bias ? "true" : "false",
                 ") does not call for; MLP biases are not supported");
  }
}

RopeScaling rope_scaling_from_hf(const HfRopeScaling& hf) {
  RopeScaling s;
  if (hf.type.empty()) return s;
  s.kind = hf.type == "linear" ? RopeScaling::Kind::Linear : RopeScaling::Kind::Llama3;
  WKVQ_ASSERT(hf.type == "linear" || hf.type == "llama3");
  s.factor = hf.factor;
  s.low_freq_factor = hf.low_freq_factor;
  s.high_freq_factor = hf.high_freq_factor;
  s.original_max_position = hf.original_max_position_embeddings;
  return s;
}

// The q/k/v(/o) biases and q/k norms the config calls for; a missing one is named with the
// config key that asks for it.
void load_attention_extras(HfTensors& t, const SafetensorsSet& set, const LlamaConfig& c, int l,
                           LayerWeights& lw, const std::string& config_path) {
  auto fetch = [&](const std::string& name, int64_t n, const char* why) {
    WKVQ_REQUIRE(set.find(name) != nullptr, set.dir(), ": tensor '", name, "' not found; ",
                 config_path, " (", c.architecture, ") ", why);
    return t.get(name, {n}, true);
  };
  for (int i = 0; i < 4; ++i) {
    if (i < 3 ? !c.qkv_bias : !c.o_bias) continue;
    Linear& lin = linear_by_index(lw, i);
    lin.bias = fetch(linear_prefix(l, i) + "bias", lin.out,
                     i < 3 ? "calls for q/k/v biases" : "has attention_bias true");
  }
  if (!c.qk_norm) return;
  lw.q_norm = fetch(layer_tensor(l, kHfQNormName), c.head_dim, "calls for q/k norms");
  lw.k_norm = fetch(layer_tensor(l, kHfKNormName), c.head_dim, "calls for q/k norms");
}

// Tensors of a layer beyond num_hidden_layers would be ignored silently (a smaller model run
// without a word): refused.
void reject_extra_layers(const SafetensorsSet& set, const std::string& dir, int n_layers) {
  const std::string prefix = "model.layers.";
  for (const std::string& name : set.names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t end = name.find('.', prefix.size());
    const std::string digits = name.substr(prefix.size(), end - prefix.size());
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const int layer = std::stoi(digits);
    WKVQ_REQUIRE(layer < n_layers, dir, ": tensor '", name, "' belongs to layer ", layer,
                 ", but config.json says num_hidden_layers = ", n_layers,
                 "; the weights hold more layers than the config: fix num_hidden_layers (or "
                 "remove the extra tensors)");
  }
}

}  // namespace

LlamaConfig config_from_hf(const HfConfig& hf) {
  LlamaConfig c;
  c.dim = hf.hidden_size;
  c.hidden_dim = hf.intermediate_size;
  c.n_layers = hf.num_hidden_layers;
  c.n_heads = hf.num_attention_heads;
  c.n_kv_heads = hf.num_key_value_heads;
  c.head_dim = hf.head_dim;
  c.vocab_size = hf.vocab_size;
  c.seq_len = hf.max_position_embeddings;
  if (hf.sliding_window > 0) c.seq_len = std::min(c.seq_len, hf.sliding_window);
  constexpr double kFloatMax = std::numeric_limits<float>::max();
  c.rope_theta = static_cast<float>(std::clamp(hf.rope_theta, -kFloatMax, kFloatMax));
  c.norm_eps = static_cast<float>(std::clamp(hf.rms_norm_eps, -kFloatMax, kFloatMax));
  c.rope_scaling = rope_scaling_from_hf(hf.rope_scaling);
  c.rope_layout = RopeLayout::RotateHalf;
  c.qkv_bias = hf.qkv_bias;
  c.o_bias = hf.o_bias;
  c.qk_norm = hf.qk_norm;
  c.architecture = hf.architecture;
  c.tied_output = hf.tie_word_embeddings;
  c.bos_id = hf.bos_token_id;
  c.eos_id = hf.eos_token_id;
  return c;
}

void print_sliding_window_notice(const HfConfig& hf, const std::string& config_path) {
  if (hf.sliding_window <= 0 || hf.sliding_window >= hf.max_position_embeddings) return;
  std::fprintf(stderr,
               "notice: %s: sliding_window %d < max_position_embeddings %d; wkvq has no "
               "sliding-window attention, so the context is capped at %d tokens (where both "
               "agree)\n",
               config_path.c_str(), hf.sliding_window, hf.max_position_embeddings,
               hf.sliding_window);
}

Model load_llama2c_model(const std::string& path) {
  const Llama2cFile f = read_llama2c(path);
  const Llama2cHeader& h = f.header;
  Model m;
  m.source = path;
  LlamaConfig& c = m.config;
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.head_size;
  c.vocab_size = h.vocab_size;
  c.seq_len = h.seq_len;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.rope_layout = RopeLayout::Interleaved;
  c.tied_output = h.shared_classifier;
  c.validate(path);
  m.storage.hold_file(f.file);  // linears quantized from it drop their pages

  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  const int64_t vocab = c.vocab_size;
  const bool full_scan = param_count(c) < kFullScanParams;
  m.tok_embeddings = f.token_embedding;
  check_finite(f.token_embedding, vocab * dim, path + ": token_embedding");
  check_finite(f.rms_att, c.n_layers * dim, path + ": rms_att");
  check_finite(f.rms_ffn, c.n_layers * dim, path + ": rms_ffn");
  check_finite(f.rms_final, dim, path + ": rms_final");
  m.final_norm = f.rms_final;
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = m.layers[static_cast<size_t>(l)];
    lw.attn_norm = f.rms_att + l * dim;
    lw.ffn_norm = f.rms_ffn + l * dim;
    lw.wq = f32_linear(q, dim, f.wq + l * q * dim);
    lw.wk = f32_linear(kv, dim, f.wk + l * kv * dim);
    lw.wv = f32_linear(kv, dim, f.wv + l * kv * dim);
    lw.wo = f32_linear(dim, q, f.wo + l * dim * q);
    lw.w_gate = f32_linear(hidden, dim, f.w1 + l * hidden * dim);
    lw.w_down = f32_linear(dim, hidden, f.w2 + l * dim * hidden);
    lw.w_up = f32_linear(hidden, dim, f.w3 + l * hidden * dim);
  }
  m.output = f32_linear(vocab, dim, f.wcls);
  if (full_scan) {
    const int64_t n = c.n_layers;
    check_finite(f.wq, n * q * dim, path + ": wq");
    check_finite(f.wk, n * kv * dim, path + ": wk");
    check_finite(f.wv, n * kv * dim, path + ": wv");
    check_finite(f.wo, n * dim * q, path + ": wo");
    check_finite(f.w1, n * hidden * dim, path + ": w1");
    check_finite(f.w2, n * dim * hidden, path + ": w2");
    check_finite(f.w3, n * hidden * dim, path + ": w3");
    if (!c.tied_output) check_finite(f.wcls, vocab * dim, path + ": wcls");
  }
  return m;
}

Model load_hf_model(const std::string& dir, const LoadOptions& opt) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  std::error_code ec;
  WKVQ_REQUIRE(fs::exists(config_path, ec), dir,
               ": no config.json in this directory; a Hugging Face model directory needs "
               "config.json and model.safetensors");
  const HfConfig hf = read_hf_config(config_path);
  Model m;
  m.source = dir;
  m.config = config_from_hf(hf);
  const LlamaConfig& c = m.config;
  c.validate(config_path);
  print_sliding_window_notice(hf, config_path);

  const SafetensorsSet set = SafetensorsSet::open_dir(dir);
  for (const auto& map : set.mappings()) m.storage.hold_file(map);
  reject_unexpected_biases(set, c, dir);
  reject_extra_layers(set, dir, c.n_layers);
  HfTensors t(set, m, param_count(c) < kFullScanParams, opt);
  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  const int64_t vocab = c.vocab_size;

  m.tok_embeddings = t.get("model.embed_tokens.weight", {vocab, dim}, true);
  m.bf16_source = set.get("model.embed_tokens.weight").dtype == DType::BF16;
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = m.layers[static_cast<size_t>(l)];
    lw.attn_norm = t.get(layer_tensor(l, "input_layernorm.weight"), {dim}, true);
    lw.wq = t.linear(linear_prefix(l, 0) + "weight", q, dim);
    lw.wk = t.linear(linear_prefix(l, 1) + "weight", kv, dim);
    lw.wv = t.linear(linear_prefix(l, 2) + "weight", kv, dim);
    lw.wo = t.linear(linear_prefix(l, 3) + "weight", dim, q);
    load_attention_extras(t, set, c, l, lw, config_path);
    lw.ffn_norm = t.get(layer_tensor(l, "post_attention_layernorm.weight"), {dim}, true);
    lw.w_gate = t.linear(linear_prefix(l, 4) + "weight", hidden, dim);
    lw.w_up = t.linear(linear_prefix(l, 5) + "weight", hidden, dim);
    lw.w_down = t.linear(linear_prefix(l, 6) + "weight", dim, hidden);
  }
  m.final_norm = t.get("model.norm.weight", {dim}, true);
  if (c.tied_output) {
    m.output = f32_linear(vocab, dim, m.tok_embeddings);
  } else {
    WKVQ_REQUIRE(set.find("lm_head.weight") != nullptr, dir,
                 ": tensor 'lm_head.weight' not found, and config.json says "
                 "tie_word_embeddings is false (an untied output head is needed)");
    m.output = t.linear("lm_head.weight", vocab, dim);
  }
  return m;
}

Model load_model(const std::string& path, const LoadOptions& opt) {
  std::error_code ec;
  const fs::path p(path);
  WKVQ_REQUIRE(fs::exists(p, ec), path,
               ": no such file or directory; give a llama2.c .bin file or a Hugging Face model "
               "directory");
  // A quantized model directory (model/quantized_model_io.h) is HF-shaped but holds GPTQ tensors;
  // its config.json says so (and is parsed once).
  auto load_dir = [&opt](const std::string& d) {
    const std::string config_path = (fs::path(d) / "config.json").string();
    std::error_code config_ec;
    if (fs::is_regular_file(config_path, config_ec)) {
      const nlohmann::json config = read_json_file(config_path);
      if (is_quantized_config(config)) return load_quantized_model(d, config);
    }
    return load_hf_model(d, opt);
  };
  if (fs::is_directory(p, ec)) return load_dir(path);
  // A file inside a Hugging Face directory (config.json, *.safetensors): load the directory.
  const std::string ext = p.extension().string();
  if (ext == ".safetensors" || p.filename() == "config.json" ||
      p.filename() == "model.safetensors.index.json") {
    return load_dir(p.has_parent_path() ? p.parent_path().string() : ".");
  }
  return load_llama2c_model(path);
}

}  // namespace wkvq
