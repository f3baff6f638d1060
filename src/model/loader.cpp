#include "model/loader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "io/llama2c_file.h"
#include "io/safetensors.h"
#include "model/hf_names.h"
#include "model/quantized_model_io.h"

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

// Throws naming `where` and the first non-finite element of x[0, n).
void check_finite(const float* x, int64_t n, const std::string& where) {
  constexpr int64_t kGrain = int64_t{1} << 16;
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  std::vector<int64_t> first_bad(static_cast<size_t>(std::max<int64_t>(chunks, 1)), -1);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (!std::isfinite(x[i])) {
        first_bad[static_cast<size_t>(b / kGrain)] = i;
        return;
      }
    }
  });
  for (int64_t i : first_bad) {
    WKVQ_REQUIRE(i < 0, where, ": non-finite weight ", x[i], " at element ", i,
                 "; the file is corrupt");
  }
}

// Fetches HF tensors by name with shape and dtype checked, as f32 pointers owned by the model.
class HfTensors {
 public:
  HfTensors(const SafetensorsSet& set, Model& m, bool full_scan)
      : set_(set), m_(m), full_scan_(full_scan) {}

  const float* get(const std::string& name, std::vector<int64_t> shape, bool scan) {
    const TensorInfo& t = set_.get(name);
    WKVQ_REQUIRE(t.shape == shape, t.file, ": ", name, ": expected shape ", shape_to_string(shape),
                 ", found ", t.shape_string());
    t.require_supported_dtype();
    const float* p = t.f32_in_place();
    if (p == nullptr) {  // F16, BF16 or misaligned F32: convert into an owned buffer
      float* buf = m_.storage.allocate(static_cast<size_t>(t.numel));
      parallel_for(t.numel, int64_t{1} << 16,
                   [&](int64_t b, int64_t e) { t.to_f32(b, e - b, buf + b); });
      p = buf;
    }
    if (scan || full_scan_) check_finite(p, t.numel, t.file + ": " + name);
    return p;
  }

  Linear linear(const std::string& name, int64_t out, int64_t in) {
    Linear lin;
    lin.out = out;
    lin.in = in;
    lin.w = get(name, {out, in}, false);
    return lin;
  }

 private:
  const SafetensorsSet& set_;
  Model& m_;
  bool full_scan_;
};

void reject_biases(const SafetensorsSet& set, const std::string& dir) {
  for (const std::string& name : set.names()) {
    const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    WKVQ_REQUIRE(!bias, dir, ": tensor '", name,
                 "' is a bias; wkvq's Llama block has none (attention_bias / mlp_bias models "
                 "are not supported)");
  }
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
  c.rope_layout = RopeLayout::RotateHalf;
  c.tied_output = hf.tie_word_embeddings;
  c.bos_id = hf.bos_token_id;
  c.eos_id = hf.eos_token_id;
  return c;
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
  m.storage.holders.push_back(f.file);

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

Model load_hf_model(const std::string& dir) {
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

  const SafetensorsSet set = SafetensorsSet::open_dir(dir);
  for (const auto& map : set.mappings()) m.storage.holders.push_back(map);
  reject_biases(set, dir);
  reject_extra_layers(set, dir, c.n_layers);
  HfTensors t(set, m, param_count(c) < kFullScanParams);
  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  const int64_t vocab = c.vocab_size;

  m.tok_embeddings = t.get("model.embed_tokens.weight", {vocab, dim}, true);
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = m.layers[static_cast<size_t>(l)];
    lw.attn_norm = t.get(layer_tensor(l, "input_layernorm.weight"), {dim}, true);
    lw.wq = t.linear(linear_prefix(l, 0) + "weight", q, dim);
    lw.wk = t.linear(linear_prefix(l, 1) + "weight", kv, dim);
    lw.wv = t.linear(linear_prefix(l, 2) + "weight", kv, dim);
    lw.wo = t.linear(linear_prefix(l, 3) + "weight", dim, q);
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

Model load_model(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  WKVQ_REQUIRE(fs::exists(p, ec), path,
               ": no such file or directory; give a llama2.c .bin file or a Hugging Face model "
               "directory");
  // A quantized model directory (model/quantized_model_io.h) is HF-shaped but holds GPTQ tensors.
  auto load_dir = [](const std::string& d) {
    return is_quantized_model_dir(d) ? load_quantized_model(d) : load_hf_model(d);
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
