// Writing the quantized model directory (layout in quantized_model_io.h); reading it back is in
// quantized_model_load.cpp.
#include "model/quantized_model_io.h"

#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>

#include "core/error.h"
#include "formats/gptq.h"
#include "formats/kv_quant.h"
#include "io/atomic_dir.h"
#include "io/atomic_file.h"
#include "io/checksum.h"
#include "io/hf_config.h"
#include "io/safetensors_writer.h"
#include "model/quantized_model_names.h"
#include "model/weight_quantizer.h"

namespace wkvq {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::vector<int64_t> rotate_half_row_order(int n_heads, int head_dim) {
  WKVQ_REQUIRE(n_heads >= 0 && head_dim > 0 && head_dim % 2 == 0,
               "rotate_half_row_order: bad head shape ", n_heads, " x ", head_dim);
  std::vector<int64_t> order(static_cast<size_t>(n_heads) * static_cast<size_t>(head_dim));
  const int64_t hd = head_dim, half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t j = 0; j < half; ++j) {
      order[static_cast<size_t>(h * hd + j)] = h * hd + 2 * j;
      order[static_cast<size_t>(h * hd + half + j)] = h * hd + 2 * j + 1;
    }
  }
  return order;
}

QuantizedMatrix permute_rows(const QuantizedMatrix& m, const std::vector<int64_t>& order) {
  WKVQ_REQUIRE(static_cast<int64_t>(order.size()) == m.rows, "permute_rows: ", order.size(),
               " row indices for a matrix of ", m.rows, " rows");
  QuantizedMatrix out = m;
  const auto rb = static_cast<size_t>(m.row_bytes), ng = static_cast<size_t>(m.n_groups);
  for (size_t r = 0; r < order.size(); ++r) {
    WKVQ_REQUIRE(order[r] >= 0 && order[r] < m.rows, "permute_rows: row index ", order[r],
                 " out of range");
    const auto src = static_cast<size_t>(order[r]);
    std::memcpy(out.codes.data() + r * rb, m.codes.data() + src * rb, rb);
    std::memcpy(out.scales.data() + r * ng, m.scales.data() + src * ng, ng * sizeof(uint16_t));
    std::memcpy(out.zeros.data() + r * ng, m.zeros.data() + src * ng, ng);
  }
  return out;
}

namespace {

// A float as JSON: its shortest decimal when that reads back as the same float through double,
// else the exact double value.
ojson float_json(float v) {
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  double d = 0.0;
  const auto parsed = std::from_chars(buf, end, d);
  const bool same = parsed.ec == std::errc() && static_cast<float>(d) == v;
  return same ? d : static_cast<double>(v);
}

// The checks that make `m` saveable; returns the bit width.
int check_saveable(const Model& m) {
  const QuantizationInfo& q = m.quant;
  WKVQ_REQUIRE(q.wbits != 3,
               "saving 3-bit weights is not supported: the GPTQ layout of the "
               "quantized model directory packs 2, 4 or 8 bits; quantize with --wbits 2, 4 or 8");
  WKVQ_REQUIRE(q.wbits == 2 || q.wbits == 4 || q.wbits == 8, "save_quantized_model: ", m.source,
               " is not a quantized model (weight bits ", q.wbits,
               "); quantize it first (2, 4 or 8 bits)");
  WKVQ_REQUIRE(!q.method.empty(), "save_quantized_model: the quantization method is not named");
  WKVQ_REQUIRE(static_cast<int>(m.layers.size()) == m.config.n_layers,
               "save_quantized_model: the model has ", m.layers.size(), " layers, config says ",
               m.config.n_layers);
  WKVQ_REQUIRE(m.tok_embeddings != nullptr && m.final_norm != nullptr,
               "save_quantized_model: the model has no embeddings or final norm");
  const bool smoothed = m.kv_smoothing.n_layers > 0;
  WKVQ_REQUIRE(smoothed == (q.kv.smooth != KvSmoothMode::None),
               "save_quantized_model: kv_smooth is \"", kv_smooth_name(q.kv.smooth),
               "\" but the model ", smoothed ? "has" : "has no", " KV smoothing vectors");
  if (smoothed) {
    WKVQ_REQUIRE(
        m.kv_smoothing.n_layers == m.config.n_layers && m.kv_smoothing.kv_dim == m.config.kv_dim(),
        "save_quantized_model: KV smoothing of shape (", m.kv_smoothing.n_layers, ", ",
        m.kv_smoothing.kv_dim, ") does not fit the model");
    m.kv_smoothing.validate("save_quantized_model");
  }
  auto check_linear = [&](const Linear& lin, const std::string& what) {
    WKVQ_REQUIRE(lin.q != nullptr || lin.w != nullptr || lin.w16 != nullptr,
                 "save_quantized_model: ", what, " has no weights");
    if (lin.q == nullptr) return;
    validate(*lin.q, what.c_str());
    WKVQ_REQUIRE(lin.q->bits == q.wbits && lin.q->group == weight_group_size(lin.in, q.wgroup) &&
                     lin.q->rows == lin.out && lin.q->cols == lin.in,
                 "save_quantized_model: ", what, " is quantized with ", lin.q->bits,
                 " bits, group ", lin.q->group, ", shape (", lin.q->rows, ", ", lin.q->cols,
                 "); the model says ", q.wbits, " bits, group ", q.wgroup, ", shape (", lin.out,
                 ", ", lin.in, ")");
  };
  for (int l = 0; l < m.config.n_layers; ++l) {
    for (int i = 0; i < 7; ++i) {
      check_linear(linear_by_index(m.layers[static_cast<size_t>(l)], i),
                   std::to_string(l) + "." + kLinearNames[i]);
    }
  }
  if (!m.config.tied_output) check_linear(m.output, "output");
  return q.wbits;
}

// Refuses to replace a directory holding anything but the files of a quantized model (so a float
// model directory given as the output is never overwritten). Nothing is changed here: the save
// writes a new directory and swaps it in (io/atomic_dir.h).
void check_output_dir(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  if (!fs::exists(d, ec)) return;
  WKVQ_REQUIRE(fs::is_directory(d, ec), dir, ": exists and is not a directory");
  const bool has_config = fs::exists(d / "config.json", ec);
  WKVQ_REQUIRE(!has_config || is_quantized_model_dir(dir), dir,
               ": holds a config.json that is not a wkvq quantized model's; choose another "
               "output directory");
  for (const auto& e : fs::directory_iterator(d, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      name.resize(name.size() - 4);
    }
    bool ours = false;
    for (const char* f : kQuantizedDirFiles) ours = ours || name == f;
    WKVQ_REQUIRE(ours, dir, ": holds ", e.path().filename().string(),
                 ", which a quantized model directory does not; choose an empty or new output "
                 "directory");
  }
  WKVQ_REQUIRE(!ec, dir, ": cannot list the directory: ", ec.message());
}

// What is written, with the q/k rows of an interleaved model permuted into rotate-half order.
class Exporter {
 public:
  Exporter(const Model& m, int bits) : m_(m), bits_(bits), pack_(gptq_pack_factor(bits)) {
    const LlamaConfig& c = m.config;
    if (c.rope_layout == RopeLayout::Interleaved) {
      q_order_ = rotate_half_row_order(c.n_heads, c.head_dim);
      k_order_ = rotate_half_row_order(c.n_kv_heads, c.head_dim);
    }
  }

  void add_float_tensors(SafetensorsWriter& w) {
    const LlamaConfig& c = m_.config;
    const int64_t dim = c.dim, vocab = c.vocab_size;
    w.add("model.embed_tokens.weight", DType::F32, {vocab, dim}, m_.tok_embeddings);
    w.add("model.norm.weight", DType::F32, {dim}, m_.final_norm);
    if (!c.tied_output && m_.output.w != nullptr) {
      w.add("lm_head.weight", DType::F32, {vocab, dim}, m_.output.w);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const LayerWeights& lw = m_.layers[static_cast<size_t>(l)];
      w.add(layer_tensor(l, "input_layernorm.weight"), DType::F32, {dim}, lw.attn_norm);
      w.add(layer_tensor(l, "post_attention_layernorm.weight"), DType::F32, {dim}, lw.ffn_norm);
      if (m_.kv_smoothing.n_layers > 0) add_smoothing(w, l);
      add_attention_extras(w, l);
      for (int i = 0; i < 7; ++i) {
        const Linear& lin = linear_by_index(lw, i);
        if (lin.q != nullptr) continue;
        keep_float_.push_back(std::to_string(l) + "." + kLinearNames[i]);
        const std::vector<int64_t>* order = row_order(i);
        const std::string name = linear_prefix(l, i) + "weight";
        if (order == nullptr) {
          w.add(name, DType::F32, {lin.out, lin.in}, lin.w);
        } else {
          w.add_lazy(name, DType::F32, {lin.out, lin.in}, [&lin, order](uint8_t* dst) {
            const auto row = static_cast<size_t>(lin.in) * sizeof(float);
            for (size_t r = 0; r < order->size(); ++r) {
              std::memcpy(dst + r * row, lin.w + (*order)[r] * lin.in, row);
            }
          });
        }
      }
    }
  }

  // The I32 tensors of every quantized linear, then (pass 2) their F16 scales.
  void add_quantized_tensors(SafetensorsWriter& w, bool scales) {
    for (int l = 0; l < m_.config.n_layers; ++l) {
      for (int i = 0; i < 7; ++i) {
        const Linear& lin = linear_by_index(m_.layers[static_cast<size_t>(l)], i);
        if (lin.q != nullptr) add_gptq(w, linear_prefix(l, i), lin, row_order(i), scales);
      }
    }
    if (!m_.config.tied_output && m_.output.q != nullptr) {
      add_gptq(w, "lm_head.", m_.output, nullptr, scales);
    }
    if (scales && !m_.config.tied_output && m_.output.w16 != nullptr) {
      w.add("lm_head.weight", DType::F16, {m_.config.vocab_size, m_.config.dim}, m_.output.w16);
    }
  }

  ojson padding_json() const {
    ojson list = ojson::array();
    auto note = [&](const std::string& name, const Linear& lin) {
      const int64_t in_p = (lin.in + pack_ - 1) / pack_ * pack_;
      const int64_t out_p = (lin.out + pack_ - 1) / pack_ * pack_;
      if (lin.q == nullptr || (in_p == lin.in && out_p == lin.out)) return;
      for (const auto& e : list) {
        if (e["name"] == name) return;
      }
      list.push_back({{"name", name},
                      {"in", lin.in},
                      {"in_packed", in_p},
                      {"out", lin.out},
                      {"out_packed", out_p}});
    };
    for (const LayerWeights& lw : m_.layers) {
      for (int i = 0; i < 7; ++i) note(kHfLinearNames[i], linear_by_index(lw, i));
    }
    if (!m_.config.tied_output) note("lm_head", m_.output);
    return {{"values_per_int32", pack_}, {"fill", 0}, {"linears", list}};
  }

  const std::vector<std::string>& keep_float() const { return keep_float_; }

 private:
  const std::vector<int64_t>* row_order(int linear) const {
    if (q_order_.empty()) return nullptr;
    return linear == 0 ? &q_order_ : linear == 1 ? &k_order_ : nullptr;
  }

  // Biases (F32, rows in the order of their linear's rows) and q/k norms (F32, head_dim,
  // permuted within the head like the rows of one head).
  void add_attention_extras(SafetensorsWriter& w, int l) {
    const LayerWeights& lw = m_.layers[static_cast<size_t>(l)];
    for (int i = 0; i < 4; ++i) {
      const Linear& lin = linear_by_index(lw, i);
      if (lin.bias == nullptr) continue;
      w.add_owned(linear_prefix(l, i) + "bias", DType::F32, {lin.out},
                  permuted(lin.bias, lin.out, row_order(i)));
    }
    if (lw.q_norm == nullptr) return;
    const int hd = m_.config.head_dim;
    const std::vector<int64_t> head_order =
        q_order_.empty() ? std::vector<int64_t>() : rotate_half_row_order(1, hd);
    const std::vector<int64_t>* order = head_order.empty() ? nullptr : &head_order;
    w.add_owned(layer_tensor(l, kHfQNormName), DType::F32, {hd}, permuted(lw.q_norm, hd, order));
    w.add_owned(layer_tensor(l, kHfKNormName), DType::F32, {hd}, permuted(lw.k_norm, hd, order));
  }

  static std::vector<float> permuted(const float* p, int64_t n, const std::vector<int64_t>* order) {
    std::vector<float> v(p, p + n);
    if (order != nullptr) {
      for (size_t r = 0; r < v.size(); ++r) v[r] = p[(*order)[r]];
    }
    return v;
  }

  void add_smoothing(SafetensorsWriter& w, int l) {
    const KvSmoothing& s = m_.kv_smoothing;
    const auto kv = static_cast<size_t>(s.kv_dim);
    auto vec = [&](const float* p, bool permute) {
      std::vector<float> v(p, p + kv);
      if (permute && !k_order_.empty()) {
        for (size_t c = 0; c < kv; ++c) v[c] = p[k_order_[c]];
      }
      return v;
    };
    const std::string p = layer_tensor(l, "self_attn.kv_smoothing.");
    const int64_t n = s.kv_dim;
    w.add_owned(p + "k_shift", DType::F32, {n}, vec(s.dK(l), true));
    w.add_owned(p + "k_scale", DType::F32, {n}, vec(s.sK(l), true));
    w.add_owned(p + "v_shift", DType::F32, {n}, vec(s.dV(l), false));
    w.add_owned(p + "v_scale", DType::F32, {n}, vec(s.sV(l), false));
  }

  void add_gptq(SafetensorsWriter& w, const std::string& prefix, const Linear& lin,
                const std::vector<int64_t>* order, bool scales) {
    const QuantizedMatrix& q = *lin.q;
    const int64_t in = q.cols, out = q.rows, g = q.n_groups;
    if (scales) {  // (G, out): the transpose of the matrix's (rows, groups) scales
      w.add_lazy(prefix + "scales", DType::F16, {g, out}, [&q, order, out, g](uint8_t* dst) {
        for (int64_t o = 0; o < out; ++o) {
          const int64_t src = order == nullptr ? o : (*order)[static_cast<size_t>(o)];
          for (int64_t k = 0; k < g; ++k) {
            std::memcpy(dst + 2 * (k * out + o), &q.scales[static_cast<size_t>(src * g + k)], 2);
          }
        }
      });
      return;
    }
    // qweight, qzeros and g_idx are written one after the other: convert once, drop after g_idx.
    auto cache = std::make_shared<std::optional<GptqTensors>>();
    auto get = [&q, order, cache, bits = bits_]() -> const GptqTensors& {
      if (!*cache) {
        *cache = order == nullptr ? to_gptq(q, GptqZeros::kAsIs, bits)
                                  : to_gptq(permute_rows(q, *order), GptqZeros::kAsIs, bits);
      }
      return **cache;
    };
    auto copy = [](uint8_t* dst, const std::vector<int32_t>& v) {
      std::memcpy(dst, v.data(), v.size() * sizeof(int32_t));
    };
    const int64_t p = pack_;
    w.add_lazy(prefix + "qweight", DType::I32, {(in + p - 1) / p, out},
               [get, copy](uint8_t* dst) { copy(dst, get().qweight); });
    w.add_lazy(prefix + "qzeros", DType::I32, {g, (out + p - 1) / p},
               [get, copy](uint8_t* dst) { copy(dst, get().qzeros); });
    w.add_lazy(prefix + "g_idx", DType::I32, {in}, [get, copy, cache](uint8_t* dst) {
      copy(dst, get().g_idx);
      cache->reset();
    });
  }

  const Model& m_;
  int bits_;
  int64_t pack_;
  std::vector<int64_t> q_order_, k_order_;  // empty: no permutation (rotate-half already)
  std::vector<std::string> keep_float_;
};

// config.json "rope_scaling" in Hugging Face's current form ("rope_type").
ojson rope_scaling_json(const LlamaConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  if (s.kind == RopeScaling::Kind::Linear) {
    return {{"rope_type", "linear"}, {"factor", s.factor}};
  }
  return {{"rope_type", "llama3"},
          {"factor", s.factor},
          {"low_freq_factor", s.low_freq_factor},
          {"high_freq_factor", s.high_freq_factor},
          {"original_max_position_embeddings", s.original_max_position}};
}

ojson config_json(const Model& m, const Exporter& ex, const ojson& checksums) {
  const LlamaConfig& c = m.config;
  const QuantizationInfo& q = m.quant;
  ojson qc = {{"quant_method", kQuantMethod},
              {"format_version", kQuantizedFormatVersion},
              {"method", q.method},
              {"bits", q.wbits},
              {"group_size", q.wgroup == 0 ? int64_t{-1} : q.wgroup},
              {"desc_act", false},
              {"sym", false},
              {"zero_point", "exact"},
              {"checkpoint_format", "gptq_v2"},
              {"kv_bits", q.kv.bits},
              {"kv_group_size", q.kv.group},
              {"poq", q.kv.poq},
              {"kv_smooth", kv_smooth_name(q.kv.smooth)},
              {"keep_float", ex.keep_float()},
              {"padding", ex.padding_json()}};
  if (!q.calibration.empty()) qc["calibration"] = q.calibration;
  qc["checksums"] = checksums;
  ojson out = {{"architectures", {c.architecture}},
               {"model_type", hf_model_type_of(c.architecture)},
               {"hidden_size", c.dim},
               {"intermediate_size", c.hidden_dim},
               {"num_hidden_layers", c.n_layers},
               {"num_attention_heads", c.n_heads},
               {"num_key_value_heads", c.n_kv_heads},
               {"head_dim", c.head_dim},
               {"vocab_size", c.vocab_size},
               {"max_position_embeddings", c.seq_len},
               {"rope_theta", float_json(c.rope_theta)},
               {"rms_norm_eps", float_json(c.norm_eps)},
               {"tie_word_embeddings", c.tied_output},
               {"hidden_act", "silu"},
               {"bos_token_id", c.bos_id},
               {"eos_token_id", c.eos_id},
               {"torch_dtype", "float32"}};
  if (c.architecture != "Qwen2ForCausalLM") out["attention_bias"] = c.o_bias;  // Qwen2: always
  if (c.rope_scaling.kind != RopeScaling::Kind::None) out["rope_scaling"] = rope_scaling_json(c);
  out["quantization_config"] = qc;
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

// Copies src over dst, writable by its owner (the source may be read-only).
void copy_into(const fs::path& src, const fs::path& dst) {
  std::error_code ec;
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
  WKVQ_REQUIRE(!ec, dst.string(), ": cannot copy ", src.string(), ": ", ec.message());
  fs::permissions(dst, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add, ec);
}

// Copies the tokenizer (and a SentencePiece model's two JSON companions) into the new directory
// `dir`; returns the names of the files written.
std::vector<std::string> copy_tokenizer(const std::string& tokenizer_path, const std::string& dir) {
  std::error_code ec;
  WKVQ_REQUIRE(fs::is_regular_file(tokenizer_path, ec), tokenizer_path,
               ": tokenizer file not found; pass an existing tokenizer.json, tokenizer.model or "
               "tokenizer.bin");
  const fs::path src(tokenizer_path);
  const bool hf = src.extension() == ".json", sp = src.extension() == ".model";
  std::vector<std::string> names = {quantized_tokenizer_name(tokenizer_path)};
  copy_into(src, fs::path(dir) / names[0]);
  for (const char* extra : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path e = src.parent_path() / extra;
    if ((sp || hf) && fs::is_regular_file(e, ec)) {
      copy_into(e, fs::path(dir) / extra);
      names.emplace_back(extra);
    }
  }
  return names;
}

}  // namespace

void save_quantized_model(const Model& m, const std::string& dir,
                          const std::string& tokenizer_path) {
  const int bits = check_saveable(m);
  m.config.validate(m.source.empty() ? "save_quantized_model" : m.source);
  validate_kv_settings(m.quant.kv, m.config.kv_dim());
  check_output_dir(dir);
  write_directory_atomically(dir, [&](const std::string& tmp) {
    Exporter ex(m, bits);
    SafetensorsWriter w;
    ex.add_float_tensors(w);             // F32
    ex.add_quantized_tensors(w, false);  // I32
    ex.add_quantized_tensors(w, true);   // F16
    w.set_metadata("quant_method", kQuantMethod);
    std::vector<std::string> files = {"model.safetensors"};
    w.write((fs::path(tmp) / files[0]).string());
    if (!tokenizer_path.empty()) {
      for (std::string& f : copy_tokenizer(tokenizer_path, tmp)) files.push_back(std::move(f));
    }
    ojson sums = ojson::object();
    for (const std::string& f : files) sums[f] = file_checksum((fs::path(tmp) / f).string());
    write_text((fs::path(tmp) / "config.json").string(), config_json(m, ex, sums).dump(2) + "\n");
  });
}

}  // namespace wkvq
