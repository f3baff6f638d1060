// Writing the quantized model directory (layout in quantized_model_io.h); reading it back is in
// quantized_model_load.cpp.
#include "model/quantized_model_io.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/gptq.h"
#include "formats/kv_quant.h"
#include "io/atomic_dir.h"
#include "io/atomic_file.h"
#include "io/checksum.h"
#include "io/hf_config.h"
#include "io/safetensors_writer.h"
#include "model/output_head.h"
#include "model/quantized_config.h"
#include "model/quantized_dir_files.h"
#include "model/quantized_kv_tensors.h"
#include "model/quantized_model_check.h"
#include "model/quantized_model_names.h"
#include "model/weight_quantizer.h"

namespace wkvq {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

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

// What is written, with the q/k rows of an interleaved model permuted into rotate-half order.
class Exporter {
 public:
  Exporter(const Model& m, int bits, bool gptq)
      : m_(m), pack_(gptq_pack_factor(bits)), gptq_(gptq) {
    const LlamaConfig& c = m.config;
    if (c.rope_layout == RopeLayout::Interleaved) {
      q_order_ = rotate_half_row_order(c.n_heads, c.head_dim);
      k_order_ = rotate_half_row_order(c.n_kv_heads, c.head_dim);
    }
    if (gptq_) {
      check_gptq_shapes();
      WKVQ_REQUIRE(m.tok_embeddings_packed.q == nullptr,
                   "--format gptq: the GPTQ convention stores the embedding table in floating "
                   "point; save with --embed f16 (or f32), or use --format wkvq");
      WKVQ_REQUIRE(m.output.q == nullptr || m.output.q->bits == bits,
                   "--format gptq: the output head is quantized with ", m.output.q->bits,
                   " bits, the linears with ", bits,
                   " (the convention has one bit width); save with --head f16, or use --format "
                   "wkvq");
    } else {
      for (const LayerWeights& lw : m.layers) {
        for (int i = 0; i < 7; ++i) {
          WKVQ_REQUIRE(linear_by_index(lw, i).in_order == nullptr,
                       "save_quantized_model: act-order (desc_act) weights have no place in "
                       "wkvq's own layout; save with --format gptq");
        }
      }
    }
  }

  // The dtype of float tensors: F32 in wkvq's layout, F16 in the GPTQ convention (BF16 from a
  // bf16 source).
  DType float_dtype() const {
    return !gptq_ ? DType::F32 : m_.bf16_source ? DType::BF16 : DType::F16;
  }
  GptqZeros zeros() const { return zeros_; }
  bool act_order() const { return act_order_; }

  void add_float_tensors(SafetensorsWriter& w) {
    const LlamaConfig& c = m_.config;
    const int64_t dim = c.dim, vocab = c.vocab_size;
    const Linear& packed = m_.tok_embeddings_packed;
    if (m_.tok_embeddings != nullptr) {
      add_float(w, "model.embed_tokens.weight", vocab, dim, m_.tok_embeddings, nullptr);
    } else if (gptq_) {  // fp16 (int-b is refused): as float_dtype()
      add_float(w, "model.embed_tokens.weight", vocab, dim, nullptr, nullptr, &packed);
    }  // wkvq's layout: with the I32 / F16 tensors (add_quantized_tensors)
    add_vector(w, "model.norm.weight", m_.final_norm, dim, nullptr);
    if (!c.tied_output && m_.output.w != nullptr) {
      add_float(w, "lm_head.weight", vocab, dim, m_.output.w, nullptr);
    } else if (!c.tied_output && m_.output.w16 != nullptr && gptq_) {  // F16 as stored
      w.add("lm_head.weight", DType::F16, {vocab, dim}, m_.output.w16);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const LayerWeights& lw = m_.layers[static_cast<size_t>(l)];
      add_vector(w, layer_tensor(l, "input_layernorm.weight"), lw.attn_norm, dim, nullptr);
      add_vector(w, layer_tensor(l, "post_attention_layernorm.weight"), lw.ffn_norm, dim, nullptr);
      if (!gptq_) add_smoothing(w, l);
      add_attention_extras(w, l);
      for (int i = 0; i < 7; ++i) {
        const Linear& lin = linear_by_index(lw, i);
        if (lin.q != nullptr) continue;
        keep_float_.push_back(std::to_string(l) + "." + kLinearNames[i]);
        const std::string prefix = linear_prefix(l, i);
        float_modules_.push_back(prefix.substr(0, prefix.size() - 1));
        add_float(w, prefix + "weight", lin.out, lin.in, lin.w, row_order(i), &lin);
      }
    }
  }

  // The smoothing vectors (GPTQ convention: into their own file).
  void add_smoothing_tensors(SafetensorsWriter& w) {
    for (int l = 0; l < m_.kv_smoothing.n_layers; ++l) add_smoothing(w, l);
  }

  const std::vector<std::string>& float_modules() const { return float_modules_; }

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
    const std::vector<int64_t> shape = {m_.config.vocab_size, m_.config.dim};
    if (scales && !gptq_ && !m_.config.tied_output && m_.output.w16 != nullptr) {
      w.add("lm_head.weight", DType::F16, shape, m_.output.w16);
    }
    const Linear& packed = m_.tok_embeddings_packed;
    if (gptq_ || m_.tok_embeddings != nullptr) return;
    if (packed.q != nullptr) add_gptq(w, "model.embed_tokens.", packed, nullptr, scales);
    if (scales && packed.w16 != nullptr) {
      w.add("model.embed_tokens.weight", DType::F16, shape, packed.w16);
    }
  }

  ojson padding_json() const {
    ojson list = ojson::array();
    auto note = [&](const std::string& name, const Linear& lin) {
      if (lin.q == nullptr) return;
      const int64_t pack = gptq_pack_factor(lin.q->bits);
      const int64_t in_p = (lin.in + pack - 1) / pack * pack;
      const int64_t out_p = (lin.out + pack - 1) / pack * pack;
      if (in_p == lin.in && out_p == lin.out) return;
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
    note("embed_tokens", m_.tok_embeddings_packed);
    return {{"values_per_int32", pack_}, {"fill", 0}, {"linears", list}};
  }

  const std::vector<std::string>& keep_float() const { return keep_float_; }

 private:
  // v as fp16 (or, bf16, bfloat16 rounded to nearest even) bits; a value beyond the type is an
  // error naming the tensor and the element.
  static uint16_t half_of(const std::string& name, float v, int64_t i, bool bf16) {
    uint16_t h = 0;
    if (bf16) {
      uint32_t b;
      std::memcpy(&b, &v, sizeof b);
      b += 0x7FFFu + ((b >> 16) & 1u);
      h = static_cast<uint16_t>(b >> 16);
    } else {
      h = f32_to_fp16(v);
    }
    const uint16_t exp_mask = bf16 ? 0x7F80u : 0x7C00u;
    WKVQ_REQUIRE((h & exp_mask) != exp_mask, "save_quantized_model: tensor '", name, "' holds ", v,
                 " at element ", i, ", beyond ", bf16 ? "bf16" : "fp16",
                 " (the float type of the GPTQ convention); use --format wkvq");
    return h;
  }

  // (rows, cols) f32 values, rows reordered by `order` when given, as float_dtype().
  void add_float(SafetensorsWriter& w, const std::string& name, int64_t rows, int64_t cols,
                 const float* p, const std::vector<int64_t>* order, const Linear* lin = nullptr) {
    if (!gptq_ && order == nullptr && p != nullptr) {
      w.add(name, DType::F32, {rows, cols}, p);
      return;
    }
    const bool f16 = gptq_, bf16 = float_dtype() == DType::BF16;
    // p null: the rows of a linear stored in fp16 / bf16, converted exactly (Linear::rows_f32).
    WKVQ_REQUIRE(p != nullptr || (lin != nullptr && lin->has_float()),
                 "save_quantized_model: ", name, " has no float values");
    w.add_lazy(name, float_dtype(), {rows, cols}, [=](uint8_t* dst) {
      std::vector<float> buf(static_cast<size_t>(p == nullptr ? cols : 0));
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t from = order == nullptr ? r : (*order)[static_cast<size_t>(r)];
        const float* src = p != nullptr ? p + from * cols : buf.data();
        if (p == nullptr) lin->rows_f32(from, 1, buf.data());
        if (!f16) {
          std::memcpy(dst + r * cols * 4, src, static_cast<size_t>(cols) * sizeof(float));
          continue;
        }
        for (int64_t c = 0; c < cols; ++c) {
          const uint16_t h = half_of(name, src[c], r * cols + c, bf16);
          std::memcpy(dst + 2 * (r * cols + c), &h, 2);
        }
      }
    });
  }

  // n f32 values, element i = p[order[i]] when order is given, as float_dtype().
  void add_vector(SafetensorsWriter& w, const std::string& name, const float* p, int64_t n,
                  const std::vector<int64_t>* order) {
    std::vector<float> v = permuted(p, n, order);
    if (!gptq_) {
      w.add_owned(name, DType::F32, {n}, std::move(v));
      return;
    }
    const bool bf16 = float_dtype() == DType::BF16;
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = half_of(name, v[i], static_cast<int64_t>(i), bf16);
    w.add_owned(name, float_dtype(), {n}, std::move(h));
  }

  // The GPTQ convention has no padding, whole groups, and one zero-point form for the file.
  void check_gptq_shapes() {
    bool any_zero = false;
    auto check = [&](const std::string& name, const Linear& lin) {
      if (lin.q == nullptr) return;
      const int64_t g = m_.quant.wgroup;
      WKVQ_REQUIRE(lin.in % pack_ == 0 && lin.out % pack_ == 0, "--format gptq: ", name,
                   " has shape (out ", lin.out, ", in ", lin.in, "), not a multiple of ", pack_,
                   " values per int32 in both: the GPTQ convention has no padding (keep it in "
                   "float with --keep-float, or use --format wkvq)");
      WKVQ_REQUIRE(g == 0 || lin.in % g == 0, "--format gptq: ", name, " has ", lin.in,
                   " input columns, not a multiple of group_size ", g,
                   " (the engines' kernels need whole groups; choose a --wgroup dividing it)");
      for (uint8_t z : lin.q->zeros) any_zero = any_zero || z == 0;
      act_order_ = act_order_ || lin.in_order != nullptr;
    };
    for (int l = 0; l < m_.config.n_layers; ++l) {
      for (int i = 0; i < 7; ++i) {
        const std::string p = linear_prefix(l, i);
        check(p.substr(0, p.size() - 1), linear_by_index(m_.layers[static_cast<size_t>(l)], i));
      }
    }
    if (!m_.config.tied_output) check("lm_head", m_.output);
    zeros_ = any_zero ? GptqZeros::kAsIs : GptqZeros::kMinusOne;
    if (any_zero) {
      std::fprintf(stderr,
                   "notice: some weight group has zero point 0, which GPTQ's classic v1 form "
                   "(stored minus one) cannot hold: writing checkpoint_format \"gptq_v2\" "
                   "(GPTQModel loads it; engines reading only v1 do not)\n");
    }
  }

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
      add_vector(w, linear_prefix(l, i) + "bias", lin.bias, lin.out, row_order(i));
    }
    if (lw.q_norm == nullptr) return;
    const int hd = m_.config.head_dim;
    const std::vector<int64_t> head_order =
        q_order_.empty() ? std::vector<int64_t>() : rotate_half_row_order(1, hd);
    const std::vector<int64_t>* order = head_order.empty() ? nullptr : &head_order;
    add_vector(w, layer_tensor(l, kHfQNormName), lw.q_norm, hd, order);
    add_vector(w, layer_tensor(l, kHfKNormName), lw.k_norm, hd, order);
  }

  static std::vector<float> permuted(const float* p, int64_t n, const std::vector<int64_t>* order) {
    std::vector<float> v(p, p + n);
    if (order != nullptr) {
      for (size_t r = 0; r < v.size(); ++r) v[r] = p[(*order)[r]];
    }
    return v;
  }

  // Layer l's smoothing vectors and static group ranges (model/quantized_kv_tensors.h).
  void add_smoothing(SafetensorsWriter& w, int l) { add_kv_static_tensors(w, m_, l, k_order_); }

  void add_gptq(SafetensorsWriter& w, const std::string& prefix, const Linear& lin,
                const std::vector<int64_t>* order, bool scales) {
    const QuantizedMatrix& q = *lin.q;
    const int64_t in = q.cols, out = q.rows, g = q.n_groups;
    const int bits = q.bits;  // the linears' bits, or a table's own (--head / --embed q8)
    if (scales) {             // (G, out): the transpose of the matrix's (rows, groups) scales
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
    static const std::vector<int32_t> kIdentity;
    const std::vector<int32_t>& cols = lin.in_order ? *lin.in_order : kIdentity;
    const std::vector<int32_t>* c = &cols;
    auto get = [&q, order, cache, bits, zeros = zeros_, c]() -> const GptqTensors& {
      if (!*cache) {
        *cache = order == nullptr ? to_gptq(q, zeros, bits, *c)
                                  : to_gptq(permute_rows(q, *order), zeros, bits, *c);
      }
      return **cache;
    };
    auto copy = [](uint8_t* dst, const std::vector<int32_t>& v) {
      std::memcpy(dst, v.data(), v.size() * sizeof(int32_t));
    };
    const int64_t p = gptq_pack_factor(bits);
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
  int64_t pack_;
  bool gptq_;
  GptqZeros zeros_ = GptqZeros::kAsIs;
  bool act_order_ = false;
  std::vector<int64_t> q_order_, k_order_;  // empty: no permutation (rotate-half already)
  std::vector<std::string> keep_float_;
  std::vector<std::string> float_modules_;  // HF module names of keep_float_
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

// quantization_config of wkvq's own layout (format_version 2).
ojson wkvq_quantization_config(const Model& m, const Exporter& ex, const ojson& checksums) {
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
              {"padding", ex.padding_json()},
              {"embed_storage", table_storage_name(embedding_storage(m))},
              {"head_storage", table_storage_name(head_storage(m))}};
  if (q.kv.window > 0) qc["kv_window"] = q.kv.window;
  if (q.kv.quantized() && q.kv.value_bits() != q.kv.bits) qc["kv_value_bits"] = q.kv.value_bits();
  if (q.kv.quantized() && q.kv.rel8) qc["kv_meta"] = "rel8";
  if (!q.calibration.empty()) qc["calibration"] = q.calibration;
  qc["checksums"] = checksums;
  return qc;
}

ojson config_json(const Model& m, const Exporter& ex, const ojson& checksums, bool gptq) {
  const LlamaConfig& c = m.config;
  const QuantizationInfo& q = m.quant;
  ojson qc;
  if (gptq) {
    qc = gptq_quantization_config(q, ex.zeros() == GptqZeros::kMinusOne, ex.float_modules(),
                                  !c.tied_output && m.output.q != nullptr);
    qc["desc_act"] = ex.act_order();
  } else {
    qc = wkvq_quantization_config(m, ex, checksums);
  }
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
               {"torch_dtype", !gptq           ? "float32"
                               : m.bf16_source ? "bfloat16"
                                               : "float16"}};
  if (c.architecture != "Qwen2ForCausalLM") out["attention_bias"] = c.o_bias;  // Qwen2: always
  if (c.rope_scaling.kind != RopeScaling::Kind::None) out["rope_scaling"] = rope_scaling_json(c);
  out["quantization_config"] = qc;
  if (gptq) out[kWkvqSection] = wkvq_section_json(q, ex.keep_float(), checksums);
  return out;
}

}  // namespace

void save_quantized_model(const Model& m, const std::string& dir, const std::string& tokenizer_path,
                          QuantizedDirFormat format) {
  const bool gptq = format == QuantizedDirFormat::kGptq;
  const int bits = check_saveable(m);
  m.config.validate(m.source.empty() ? "save_quantized_model" : m.source);
  validate_kv_settings(m.quant.kv, m.config.kv_dim());
  check_output_dir(dir);
  write_directory_atomically(dir, [&](const std::string& tmp) {
    Exporter ex(m, bits, gptq);
    SafetensorsWriter w;
    if (!gptq) ex.add_float_tensors(w);  // F32
    ex.add_quantized_tensors(w, false);  // I32
    ex.add_quantized_tensors(w, true);   // F16
    if (gptq) ex.add_float_tensors(w);   // F16
    if (gptq) {
      w.set_metadata("format", "pt");  // transformers' loader requires it
    } else {
      w.set_metadata("quant_method", kQuantMethod);
    }
    std::vector<std::string> files = {"model.safetensors"};
    w.write((fs::path(tmp) / files[0]).string());
    if (gptq && writes_kv_static(m.quant.kv)) {
      SafetensorsWriter kv;
      ex.add_smoothing_tensors(kv);
      kv.set_metadata("format", "pt");
      files.emplace_back(kKvSmoothingFile);
      kv.write((fs::path(tmp) / kKvSmoothingFile).string());
    }
    if (!tokenizer_path.empty()) {
      for (std::string& f : copy_tokenizer(tokenizer_path, tmp)) files.push_back(std::move(f));
    }
    ojson sums = ojson::object();
    for (const std::string& f : files) sums[f] = file_checksum((fs::path(tmp) / f).string());
    write_text((fs::path(tmp) / "config.json").string(),
               config_json(m, ex, sums, gptq).dump(2) + "\n");
  });
}

}  // namespace wkvq
