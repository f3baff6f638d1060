// Reading the quantized model directory (layout in quantized_model_io.h). Everything is checked
// against config.json before use: dtypes, shapes (from the config, bits and group size), GPTQ
// packing and padding, zero points, scales (finite, > 0), smoothing scales (> 0), and no tensor
// is left unexplained. Every message names the file and the field.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/gptq.h"
#include "formats/kv_quant.h"
#include "io/checksum.h"
#include "io/hf_config.h"
#include "io/json_file.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/linear.h"
#include "model/loader.h"
#include "model/quantized_config.h"
#include "model/quantized_model_io.h"
#include "model/quantized_model_names.h"
#include "model/weight_quantizer.h"

namespace wkvq {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void parse_keep_float(const QcReader& r, const LlamaConfig& c, QuantConfig& q) {
  const json& list = r.at("keep_float");
  if (!list.is_array()) r.bad("keep_float", "must be a list of \"LAYER.NAME\" strings");
  for (const json& e : list) {
    const std::string s = e.is_string() ? e.get<std::string>() : std::string();
    const size_t dot = s.find('.');
    int layer = -1, lin = -1;
    if (dot != std::string::npos && dot > 0 && dot <= 6 &&
        s.find_first_not_of("0123456789") == dot) {
      layer = std::stoi(s.substr(0, dot));
      for (int i = 0; i < 7; ++i) lin = s.substr(dot + 1) == kLinearNames[i] ? i : lin;
    }
    if (layer < 0 || layer >= c.n_layers || lin < 0 || !q.keep.emplace(layer, lin).second) {
      r.bad("keep_float", "entry " + e.dump() + " is not a distinct LAYER.NAME with a layer < " +
                              std::to_string(c.n_layers) +
                              " and NAME one of wq wk wv wo w_gate w_up w_down");
    }
  }
}

}  // namespace

void parse_wkvq_keys(const QcReader& r, const LlamaConfig& c, QuantConfig& q) {
  QuantizationInfo& info = q.info;
  info.method = r.string("method");
  if (info.method.empty()) r.bad("method", "must name the quantization method");
  const int64_t kvbits = r.integer("kv_bits");
  info.kv.bits = static_cast<int>(std::clamp<int64_t>(kvbits, -1, 64));
  info.kv.group = r.integer("kv_group_size");
  if (r.has("kv_window")) info.kv.window = r.integer("kv_window");  // absent: no window
  if (r.has("kv_value_bits")) {                                     // absent: the keys' bits
    info.kv.vbits = static_cast<int>(std::clamp<int64_t>(r.integer("kv_value_bits"), -1, 64));
  }
  if (r.has("kv_meta")) {  // absent: fp16 scale and min
    const std::string meta = r.string("kv_meta");
    if (meta != "rel8" && meta != "fp16") r.bad("kv_meta", "expected \"fp16\" or \"rel8\"");
    info.kv.rel8 = meta == "rel8";
  }
  try {
    validate_kv_settings(info.kv, c.kv_dim());
  } catch (const Error& e) {
    r.bad("kv_bits", std::string("with kv_group_size = ") + std::to_string(info.kv.group) +
                         ", kv_window = " + std::to_string(info.kv.window) +
                         ", kv_value_bits = " + std::to_string(info.kv.value_bits()) +
                         (info.kv.rel8 ? ", kv_meta = rel8" : "") + ": " + e.what());
  }
  info.kv.poq = r.boolean("poq");
  const std::optional<KvSmoothMode> smooth = parse_kv_smooth(r.string("kv_smooth"));
  if (!smooth) r.bad("kv_smooth", "expected \"none\", \"stats\" or \"learned\"");
  info.kv.smooth = *smooth;
  if (r.has("calibration")) info.calibration = r.string("calibration");
  parse_keep_float(r, c, q);
}

namespace {

QuantConfig parse_wkvq_quant_config(const json& root, const std::string& path,
                                    const LlamaConfig& c) {
  const QcReader r(root["quantization_config"], path, "quantization_config");
  QuantConfig q;
  QuantizationInfo& info = q.info;
  const int64_t version = r.integer("format_version");
  if (version > kQuantizedFormatVersion) {
    r.bad("format_version",
          "written by a newer wkvq (this one reads format_version 1, 2 and 4 with quant_method "
          "\"wkvq\", 3 with \"gptq\"); update wkvq");
  }
  if (version < 1 || version == 3) r.bad("format_version", "unknown version");
  if (version >= 4) {
    q.tables_named = true;
    for (const char* key : {"embed_storage", "head_storage"}) {
      try {
        (key[0] == 'e' ? q.embed : q.head) = parse_table_storage(r.string(key));
      } catch (const Error& e) {
        r.bad(key, e.what());
      }
    }
  }
  if (version >= 2) {  // version 1 directories load without checksums
    q.checksums = r.at("checksums");
    if (!q.checksums.is_object() || !q.checksums.contains("model.safetensors")) {
      r.bad("checksums", "must map model.safetensors (and the tokenizer files) to checksums");
    }
  }
  const int64_t bits = r.integer("bits");
  if (bits != 2 && bits != 4 && bits != 8) r.bad("bits", "must be 2, 4 or 8");
  info.wbits = static_cast<int>(bits);
  q.pack = gptq_pack_factor(info.wbits);
  const int64_t group = r.integer("group_size");
  if (group != -1 && group < 1) r.bad("group_size", "must be -1 (one group per row) or >= 1");
  info.wgroup = group == -1 ? 0 : group;
  if (r.boolean("desc_act")) r.bad("desc_act", "act-order (permuted groups) is not supported");
  r.boolean("sym");
  const std::string zp = r.string("zero_point");
  if (zp != "exact" && zp != "minus_one")
    r.bad("zero_point", "expected \"exact\" or \"minus_one\"");
  q.zeros = zp == "exact" ? GptqZeros::kAsIs : GptqZeros::kMinusOne;
  parse_wkvq_keys(r, c, q);
  const json& pad = r.at("padding");
  if (!pad.is_object()) r.bad("padding", "must be an object");
  WKVQ_REQUIRE(!pad.contains("values_per_int32") || pad["values_per_int32"] == q.pack, path,
               ": quantization_config.padding.values_per_int32 = ", pad["values_per_int32"].dump(),
               ": must be 32 / bits = ", q.pack);
  return q;
}

QuantConfig parse_quant_config(const json& root, const std::string& path, const LlamaConfig& c) {
  WKVQ_REQUIRE(root.contains("quantization_config") && root["quantization_config"].is_object(),
               path, ": quantization_config is missing or not an object");
  const QcReader r(root["quantization_config"], path, "quantization_config");
  const std::string method = r.string("quant_method");
  if (method == kQuantMethod) return parse_wkvq_quant_config(root, path, c);
  if (method == kGptqQuantMethod) return parse_gptq_quant_config(root, path, c);
  r.bad("quant_method", "expected \"wkvq\" or \"gptq\"");
}

// The tensors of model.safetensors, fetched by name with dtype and shape checked; remembers
// which were used so that unexplained ones can be reported.
class Tensors {
 public:
  // any_float: F32 tensors may also be stored as F16 or BF16 (converted to f32 on load).
  Tensors(const SafetensorsFile& f, Model& m, bool any_float = false)
      : f_(f), m_(m), any_float_(any_float) {}

  bool has(const std::string& name) const { return f_.find(name) != nullptr; }

  const TensorInfo& get(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                        const std::string& why) {
    const TensorInfo* t = f_.find(name);
    WKVQ_REQUIRE(t != nullptr, f_.path(), ": tensor '", name, "' is missing (", why, ")");
    WKVQ_REQUIRE(t->dtype == dtype, f_.path(), ": tensor '", name, "': dtype ",
                 dtype_name(t->dtype), ", expected ", dtype_name(dtype));
    WKVQ_REQUIRE(t->shape == shape, f_.path(), ": tensor '", name, "': shape ", t->shape_string(),
                 ", expected ", shape_to_string(shape), " (", why, ")");
    used_.insert(name);
    return *t;
  }

  // F32 data, in place when aligned, else an owned copy; checked finite.
  const float* f32(const std::string& name, const std::vector<int64_t>& shape,
                   const std::string& why) {
    const DType stored = dtype_of(name);
    const bool convert = any_float_ && (stored == DType::F16 || stored == DType::BF16);
    const TensorInfo& t = get(name, convert ? stored : DType::F32, shape, why);
    const float* p = convert ? nullptr : t.f32_in_place();
    if (p == nullptr && t.numel > 0) {
      float* buf = m_.storage.allocate(static_cast<size_t>(t.numel));
      t.to_f32(buf);
      p = buf;
    }
    for (int64_t i = 0; i < t.numel; ++i) {
      WKVQ_REQUIRE(std::isfinite(p[i]), f_.path(), ": tensor '", name, "': non-finite value ", p[i],
                   " at element ", i);
    }
    return p;
  }

  // F16 data (bits), in place when aligned, else an owned copy; checked finite.
  const uint16_t* f16(const std::string& name, const std::vector<int64_t>& shape,
                      const std::string& why) {
    const TensorInfo& t = get(name, DType::F16, shape, why);
    const uint16_t* p = reinterpret_cast<const uint16_t*>(t.data);
    if (t.numel > 0 && reinterpret_cast<uintptr_t>(t.data) % alignof(uint16_t) != 0) {
      uint16_t* buf = m_.storage.allocate_fp16(static_cast<size_t>(t.numel));
      std::memcpy(buf, t.data, t.nbytes);
      p = buf;
    }
    for (int64_t i = 0; i < t.numel; ++i) {
      WKVQ_REQUIRE((p[i] & 0x7C00u) != 0x7C00u, f_.path(), ": tensor '", name,
                   "': non-finite fp16 value at element ", i);
    }
    return p;
  }

  DType dtype_of(const std::string& name) const {
    const TensorInfo* t = f_.find(name);
    return t != nullptr ? t->dtype : DType::F32;
  }

  template <class T>
  std::vector<T> copy(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                      const std::string& why) {
    const TensorInfo& t = get(name, dtype, shape, why);
    std::vector<T> v(static_cast<size_t>(t.numel));
    if (t.nbytes > 0) std::memcpy(v.data(), t.data, t.nbytes);
    m_.storage.release_pages(t.data, static_cast<int64_t>(t.nbytes));  // read once: copied
    return v;
  }

  void reject_unused() const {
    for (const auto& [name, t] : f_.tensors()) {
      WKVQ_REQUIRE(used_.count(name) != 0, f_.path(), ": unexpected tensor '", name,
                   "' (config.json does not call for it: check keep_float, kv_smooth and "
                   "tie_word_embeddings)");
    }
  }

  const std::string& path() const { return f_.path(); }

 private:
  const SafetensorsFile& f_;
  Model& m_;
  bool any_float_;
  std::set<std::string> used_;
};

// bits: the linears' (qc.info.wbits) or a table's own (embed_storage / head_storage q8, q4).
Linear load_quantized_linear(Tensors& t, const std::string& prefix, int64_t out, int64_t in,
                             const QuantConfig& qc, int bits) {
  const int64_t p = gptq_pack_factor(bits), group = weight_group_size(in, qc.info.wgroup);
  if (qc.gptq_layout && qc.info.wgroup != 0) {
    WKVQ_REQUIRE(in % qc.info.wgroup == 0, t.path(), ": tensor '", prefix, "qweight': group_size ",
                 qc.info.wgroup, " does not divide its ", in,
                 " input columns (the GPTQ convention's groups are whole)");
  }
  GptqTensors g;
  g.bits = bits;
  g.in = in;
  g.out = out;
  g.group = group;
  g.n_groups = (in + group - 1) / group;
  const std::string why = "in = " + std::to_string(in) + ", out = " + std::to_string(out) +
                          ", bits = " + std::to_string(g.bits) +
                          ", group = " + std::to_string(group);
  g.qweight = t.copy<int32_t>(prefix + "qweight", DType::I32, {(in + p - 1) / p, out}, why);
  g.qzeros = t.copy<int32_t>(prefix + "qzeros", DType::I32, {g.n_groups, (out + p - 1) / p}, why);
  g.scales = t.copy<uint16_t>(prefix + "scales", DType::F16, {g.n_groups, out}, why);
  if (t.has(prefix + "g_idx")) {
    g.g_idx = t.copy<int32_t>(prefix + "g_idx", DType::I32, {in}, why);
  } else {
    for (int64_t i = 0; i < in; ++i) g.g_idx.push_back(static_cast<int32_t>(i / group));
  }
  QuantizedMatrix m;
  std::vector<int32_t> order;
  try {
    m = from_gptq(g, qc.zeros, qc.gptq_layout ? &order : nullptr);
  } catch (const Error& e) {
    fail(t.path(), ": tensors '", prefix, "{qweight,qzeros,scales,g_idx}': ", e.what());
  }
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < g.n_groups; ++k) {
      const float s = fp16_to_f32(m.scales[static_cast<size_t>(o * g.n_groups + k)]);
      WKVQ_REQUIRE(std::isfinite(s) && s > 0.0f, t.path(), ": tensor '", prefix, "scales': scale ",
                   s, " of row ", o, ", group ", k, " (scales must be finite and > 0)");
    }
  }
  Linear lin;
  lin.out = out;
  lin.in = in;
  lin.q = inference_matrix(std::move(m));
  if (!order.empty()) lin.in_order = std::make_shared<const std::vector<int32_t>>(std::move(order));
  return lin;
}

// The F32 q/k/v(/o) biases and q/k norms config.json calls for.
void load_attention_extras(Tensors& t, const LlamaConfig& c, int l, LayerWeights& lw) {
  for (int i = 0; i < 4; ++i) {
    if (i < 3 ? !c.qkv_bias : !c.o_bias) continue;
    Linear& lin = linear_by_index(lw, i);
    lin.bias = t.f32(linear_prefix(l, i) + "bias", {lin.out},
                     c.architecture + (i < 3 ? " has q/k/v biases" : ": attention_bias is true"));
  }
  if (!c.qk_norm) return;
  const std::string why = c.architecture + " has q/k norms of head_dim";
  lw.q_norm = t.f32(layer_tensor(l, kHfQNormName), {c.head_dim}, why);
  lw.k_norm = t.f32(layer_tensor(l, kHfKNormName), {c.head_dim}, why);
}

// The smoothing vectors (kv_smooth not "none") and the static group ranges (kv_meta rel8; on an
// identity smoothing when kv_smooth is "none").
KvSmoothing load_smoothing(Tensors& t, const LlamaConfig& c, const KvQuantSettings& settings) {
  KvSmoothing s = KvSmoothing::identity(c.n_layers, c.kv_dim());
  if (settings.quantized() && settings.rel8) {
    KvGroupRanges r;
    r.n_layers = c.n_layers;
    r.group = settings.group == 0 ? c.head_dim : settings.group;
    r.n_groups = (c.kv_dim() + r.group - 1) / r.group;
    const std::string why = "kv_meta is \"rel8\": ceil(kv_dim / kv_group_size) groups";
    const char* names[4] = {"k_lo", "k_hi", "v_lo", "v_hi"};
    std::vector<float>* dst[4] = {&r.klo, &r.khi, &r.vlo, &r.vhi};
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string p = layer_tensor(l, "self_attn.kv_ranges.");
      for (int i = 0; i < 4; ++i) {
        const float* v = t.f32(p + names[i], {r.n_groups}, why);
        dst[i]->insert(dst[i]->end(), v, v + r.n_groups);
      }
    }
    s.set_ranges(std::move(r), t.path().c_str());
  }
  if (settings.smooth == KvSmoothMode::None) return s;
  const int64_t kv = c.kv_dim();
  const std::string why = "kv_dim = n_kv_heads * head_dim; config.json kv_smooth is not \"none\"";
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = layer_tensor(l, "self_attn.kv_smoothing.");
    const auto o = static_cast<size_t>(int64_t{l} * kv);
    const char* names[4] = {"k_shift", "k_scale", "v_shift", "v_scale"};
    std::vector<float>* dst[4] = {&s.dk, &s.sk, &s.dv, &s.sv};
    for (int i = 0; i < 4; ++i) {
      const float* v = t.f32(p + names[i], {kv}, why);
      for (int64_t ch = 0; ch < kv; ++ch) {
        WKVQ_REQUIRE(i % 2 == 0 || v[ch] > 0.0f, t.path(), ": tensor '", p, names[i], "': channel ",
                     ch, " is ", v[ch], " (smoothing scales must be > 0)");
        (*dst[i])[o + static_cast<size_t>(ch)] = v[ch];
      }
    }
  }
  return s;
}

// The embedding table as quantization_config.embed_storage says (f32 before format_version 4): f32
// or fp16 in place from the file (only the rows read become resident), or int-b, unpacked.
void load_embeddings(Tensors& t, const QuantConfig& qc, Model& m) {
  const int64_t vocab = m.config.vocab_size, dim = m.config.dim;
  const char* why = "vocab_size, hidden_size";
  const std::string name = "model.embed_tokens.weight";
  if (qc.embed == TableStorage::F32) {
    m.tok_embeddings = t.f32(name, {vocab, dim}, why);
  } else if (qc.embed == TableStorage::F16) {
    m.tok_embeddings_packed = Linear{vocab, dim, nullptr, nullptr, t.f16(name, {vocab, dim}, why)};
  } else {
    m.tok_embeddings_packed = load_quantized_linear(t, "model.embed_tokens.", vocab, dim, qc,
                                                    table_storage_bits(qc.embed));
  }
  // The finiteness scan read the whole table: only the rows the tokens use stay resident.
  const Linear& p = m.tok_embeddings_packed;
  if (m.tok_embeddings != nullptr) m.storage.release_pages(m.tok_embeddings, vocab * dim * 4);
  if (p.w16 != nullptr) m.storage.release_pages(p.w16, p.float_bytes());
}

// The output head: the embedding table when tied, else lm_head as its tensors (and, from
// format_version 4, head_storage) say.
void load_head(Tensors& t, const QuantConfig& qc, Model& m, const std::string& config_path) {
  const LlamaConfig& c = m.config;
  const int64_t vocab = c.vocab_size, dim = c.dim;
  if (c.tied_output) {
    m.output = m.tok_embeddings != nullptr ? Linear{vocab, dim, m.tok_embeddings, nullptr, nullptr}
                                           : m.tok_embeddings_packed;
  } else if (t.has("lm_head.qweight")) {
    const bool own_bits = qc.tables_named && qc.head != TableStorage::F32;
    const int bits = own_bits ? table_storage_bits(qc.head) : qc.info.wbits;
    m.output = load_quantized_linear(t, "lm_head.", vocab, dim, qc, bits);
  } else if (t.dtype_of("lm_head.weight") == DType::F16) {
    m.output = Linear{vocab, dim, nullptr, nullptr,
                      t.f16("lm_head.weight", {vocab, dim}, "tie_word_embeddings is false")};
  } else {
    m.output =
        Linear{vocab, dim, t.f32("lm_head.weight", {vocab, dim}, "tie_word_embeddings is false"),
               nullptr, nullptr};
  }
  if (qc.tables_named && !c.tied_output && head_storage(m) != qc.head) {
    fail(config_path, ": quantization_config.head_storage is \"", table_storage_name(qc.head),
         "\" but model.safetensors holds the head as ", table_storage_name(head_storage(m)),
         "; the directory is inconsistent: write it again (wkvq quantize)");
  }
}

// Checks every file listed in quantization_config.checksums (`st`: model.safetensors, already
// mapped) against its recorded checksum.
void verify_checksums(const QuantConfig& qc, const std::string& dir, const MappedFile& st,
                      const std::string& config_path) {
  for (const auto& [name, sum] : qc.checksums.items()) {
    bool known = false;
    for (const char* f : kQuantizedDirFiles) known = known || (name == f && name != "config.json");
    WKVQ_REQUIRE(known && sum.is_string(), config_path, ": quantization_config.checksums.", name,
                 " = ", sum.dump(), ": expected a checksum string of a file of the directory");
    const std::string path = (fs::path(dir) / name).string();
    if (name == "model.safetensors") {  // hashed chunk by chunk, its pages released
      verify_checksum_text(path, mapped_file_checksum(st), sum.get<std::string>(), config_path);
    } else {
      const auto map = MappedFile::open(path);
      verify_checksum(path, map->data(), map->size(), sum.get<std::string>(), config_path);
    }
  }
}

}  // namespace

bool is_quantized_model_dir(const std::string& path) {
  try {
    std::error_code ec;
    const fs::path config = fs::path(path) / "config.json";
    if (!fs::is_directory(path, ec) || !fs::is_regular_file(config, ec)) return false;
    return is_quantized_config(read_json_file(config.string()));
  } catch (const std::exception&) {
    return false;
  }
}

bool is_quantized_config(const json& config) {
  if (!config.is_object() || !config.contains("quantization_config")) return false;
  const json& q = config["quantization_config"];
  return q.is_object() && q.contains("quant_method") &&
         (q["quant_method"] == kQuantMethod || q["quant_method"] == kGptqQuantMethod);
}

Model load_quantized_model(const std::string& dir) {
  return load_quantized_model(dir, read_json_file((fs::path(dir) / "config.json").string()));
}

Model load_quantized_model(const std::string& dir, const json& config) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  Model m;
  m.source = dir;
  const HfConfig hf = hf_config_from_json(config, config_path);
  m.config = config_from_hf(hf);
  const LlamaConfig& c = m.config;
  c.validate(config_path);
  print_sliding_window_notice(hf, config_path);
  const QuantConfig qc = parse_quant_config(config, config_path, c);
  m.quant = qc.info;

  std::error_code ec;
  WKVQ_REQUIRE(fs::is_regular_file(fs::path(dir) / "model.safetensors", ec), dir,
               ": model.safetensors not found (wkvq reads quantized directories with one "
               "model.safetensors; sharded or differently named checkpoints are not supported)");
  const SafetensorsFile file =
      SafetensorsFile::open((fs::path(dir) / "model.safetensors").string());
  verify_checksums(qc, dir, *file.mapping(), config_path);
  m.storage.hold_file(file.mapping());
  Tensors t(file, m, qc.gptq_layout);
  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  m.bf16_source = t.dtype_of("model.embed_tokens.weight") == DType::BF16;
  load_embeddings(t, qc, m);
  m.final_norm = t.f32("model.norm.weight", {dim}, "hidden_size");
  const int64_t shapes[7][2] = {{q, dim},      {kv, dim},     {kv, dim},    {dim, q},
                                {hidden, dim}, {hidden, dim}, {dim, hidden}};
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& lw = m.layers[static_cast<size_t>(l)];
    lw.attn_norm = t.f32(layer_tensor(l, "input_layernorm.weight"), {dim}, "hidden_size");
    lw.ffn_norm = t.f32(layer_tensor(l, "post_attention_layernorm.weight"), {dim}, "hidden_size");
    for (int i = 0; i < 7; ++i) {
      const int64_t out = shapes[i][0], in = shapes[i][1];
      Linear& lin = linear_by_index(lw, i);
      if (qc.keep.count({l, i}) != 0) {
        lin.out = out;
        lin.in = in;
        lin.w = t.f32(linear_prefix(l, i) + "weight", {out, in},
                      "keep_float lists " + std::to_string(l) + "." + kLinearNames[i]);
      } else {
        lin = load_quantized_linear(t, linear_prefix(l, i), out, in, qc, qc.info.wbits);
      }
    }
    load_attention_extras(t, c, l, lw);
  }
  load_head(t, qc, m, config_path);
  const KvQuantSettings& kvs = m.quant.kv;
  const bool kv_static = kvs.smooth != KvSmoothMode::None || (kvs.quantized() && kvs.rel8);
  if (kv_static && !qc.gptq_layout) m.kv_smoothing = load_smoothing(t, c, kvs);
  t.reject_unused();
  if (kv_static && qc.gptq_layout) {
    const std::string kv_path = (fs::path(dir) / kKvSmoothingFile).string();
    WKVQ_REQUIRE(qc.checksums.contains(kKvSmoothingFile), config_path, ": ", kWkvqSection,
                 ".kv_smooth is \"", kv_smooth_name(m.quant.kv.smooth), "\"",
                 kvs.rel8 ? " and kv_meta \"rel8\"" : "", " but checksums list no ",
                 kKvSmoothingFile);
    const SafetensorsFile kv_file = SafetensorsFile::open(kv_path);
    Tensors kt(kv_file, m);
    m.kv_smoothing = load_smoothing(kt, c, kvs);
    kt.reject_unused();
  }
  return m;
}

}  // namespace wkvq
