#include "cli/quant_options.h"

#include <chrono>
#include <cstdio>
#include <optional>
#include <sstream>

#include "cli/common.h"
#include "cli/console.h"
#include "cli/kv_auto.h"
#include "core/error.h"
#include "model/output_head.h"
#include "model/weight_quantizer.h"
#include "runtime/kv_stats.h"

namespace wkvq::cli {

void QuantCliOptions::add_kv_to(CLI::App* cmd) {
  cmd->add_option_function<int>(
         "--kvbits",
         [this](const int& b) {
           kv.bits = b;
           kv_given.bits = b != 0;
         },
         "KV cache: 2, 3, 4, 8 (int), 16 (fp16), 32 (f32); 0: as the model says")
      ->check(CLI::IsMember({0, 2, 3, 4, 8, 16, 32}));
  cmd->add_option_function<int64_t>(
         "--kvgroup",
         [this](const int64_t& g) {
           kv.group = g;
           kv_given.group = g >= 0;
         },
         "KV quantization group, channels of one token (0: head_dim; default: as the model says)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 20));
  cmd->add_option_function<std::string>(
         "--poq",
         [this](const std::string& s) {
           kv.poq = s == "on";
           kv_given.poq = true;
         },
         "Past-only quantization of the KV cache: on (default) or off")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option_function<int>(
         "--kv-vbits",
         [this](const int& b) {
           kv.vbits = b;
           kv_given.vbits = true;
         },
         "Bits of the values of an int KV cache when they differ from the keys' (--kvbits): 2, 3, "
         "4 or 8; 0: the keys' bits (default: as the model says)")
      ->check(CLI::IsMember({0, 2, 3, 4, 8}));
  cmd->add_option_function<int64_t>(
         "--kv-window",
         [this](const int64_t& w) {
           kv.window = w;
           kv_given.window = true;
         },
         "Full-precision window of an int KV cache: the N most recent tokens also kept in fp16 and "
         "read from there by attention, on top of POQ (0: none; default: as the model says)")
      ->check(CLI::Range(int64_t{0}, kMaxKvWindow));
  cmd->add_option_function<std::string>(
         "--kv-meta",
         [this](const std::string& s) {
           kv.rel8 = s == "rel8";
           kv_given.meta = true;
         },
         "Group metadata of an int KV cache: fp16 (scale and minimum, 32 bits per group) or rel8 "
         "(two 8-bit codes against each group's static range from --calib text, 16 bits per "
         "group); default: as the model says, else fp16")
      ->check(CLI::IsMember({"fp16", "rel8"}));
  cmd->add_option("--kv-auto", kv_auto,
                  "Choose the KV cache format within this many bits per element (records and fp16 "
                  "window, at the calibration context) by measuring candidates on --calib text: "
                  "4-bit keys, 4/3/2-bit values, rel8 metadata, groups of head_dim x 1, 2, 4 (up "
                  "to 128), statistics smoothing (0: off)")
      ->check(CLI::Range(0.0, 64.0));
  cmd->add_option_function<std::string>(
         "--kv-smooth",
         [this](const std::string& s) {
           kv.smooth = parse_kv_smooth(s).value_or(KvSmoothMode::None);
           kv_given.smooth = true;
         },
         "KV channel smoothing: none, or stats (from --calib text); default: the model's own, "
         "else none")
      ->check(CLI::IsMember({"none", "stats"}));
}

void QuantCliOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--wbits", wbits,
                  "Quantize the weights round-to-nearest to 2, 3, 4 or 8 bits (0: as loaded)")
      ->check(CLI::IsMember({0, 2, 3, 4, 8}));
  cmd->add_option("--wgroup", wgroup, "Weight group size, input columns (0: one group per row)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--keep-float", keep_float,
                  "Linears kept in floating point: LAYER, NAME or LAYER.NAME, comma-separated "
                  "(names wq wk wv wo w_gate w_up w_down)");
  add_kv_to(cmd);
  cmd->add_option(
      "--calib", calib,
      "Calibration text file (for --kv-smooth stats, and the text wkvquant calibrates on)");
  cmd->add_option("--calib-windows", calib_windows, "Calibration windows used for statistics")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--calib-ctx", calib_ctx,
                  "Length of a calibration window (0: min(2048, model context))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--calib-sinks", calib_sinks,
                  "Positions at the start of every calibration window left out of the KV "
                  "statistics (the attention sink's outliers)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--head", head,
                  std::string("Storage of the output head: f32, f16, q8 or q4 (int8 / int4 groups "
                              "of --wgroup; default: ") +
                      table_storage_name(kDefaultQuantizedHead) +
                      " when the weights are quantized, else as loaded)")
      ->check(CLI::IsMember({"f32", "f16", "q8", "q4"}));
  cmd->add_option("--embed", embed,
                  std::string("Storage of the token embedding table: f32, f16, q8 or q4 (one row "
                              "read per token; default: ") +
                      table_storage_name(kDefaultQuantizedEmbed) +
                      " when the weights are quantized, else as loaded)")
      ->check(CLI::IsMember({"f32", "f16", "q8", "q4"}));
}

KvQuantSettings QuantCliOptions::kv_over(const KvQuantSettings& model) const {
  KvQuantSettings s = model;
  if (kv_given.bits) s.bits = kv.bits;
  if (kv_given.group) s.group = kv.group;
  if (kv_given.poq) s.poq = kv.poq;
  if (kv_given.smooth) s.smooth = kv.smooth;
  if (kv_given.window) s.window = kv.window;
  if (kv_given.vbits) s.vbits = kv.vbits;
  if (kv_given.meta) s.rel8 = kv.rel8;
  if (kv_given.bits && !s.quantized()) {  // the model's int-only settings do not carry over
    if (!kv_given.window) s.window = 0;
    if (!kv_given.vbits) s.vbits = 0;
    if (!kv_given.meta) s.rel8 = false;
  }
  return s;
}

void QuantCliOptions::set_kv_format(const KvQuantSettings& f) {
  kv.bits = f.bits;
  kv.group = f.group;
  kv.vbits = f.vbits;
  kv.window = f.window;
  kv.rel8 = f.rel8;
  kv_given.bits = kv_given.group = kv_given.vbits = kv_given.window = kv_given.meta = true;
  kv_auto = 0;
}

namespace {

// `wanted` for a table, or f32 with a note when it is the default f16 and the table does not fit.
TableStorage fitting(TableStorage wanted, const Linear& table, const char* what) {
  int64_t bad = 0;
  if (wanted != TableStorage::F16 || fits_fp16(table, &bad)) return wanted;
  info("%s: kept in f32 (weight %lld does not fit fp16)\n", what, static_cast<long long>(bad));
  return TableStorage::F32;
}

}  // namespace

TableStorage resolved_embed_storage(const Model& m, const std::string& embed) {
  if (!embed.empty()) return parse_table_storage(embed);
  // A float model, or a table stored otherwise already (a quantized directory's): as it is.
  if (m.quant.wbits == 0 || embedding_storage(m) != TableStorage::F32) return embedding_storage(m);
  return fitting(kDefaultQuantizedEmbed, embedding_table(m), "embedding table");
}

TableStorage resolved_head_storage(const Model& m, const std::string& head) {
  if (!head.empty()) return parse_table_storage(head);
  if (m.quant.wbits == 0) return head_storage(m);
  if (m.output.q != nullptr || m.output.w16 != nullptr) return head_storage(m);  // kept
  return fitting(kDefaultQuantizedHead, m.output, "output head");
}

void apply_table_options(Model& m, const QuantCliOptions& o) {
  const TableStorage e = resolved_embed_storage(m, o.embed);
  const TableStorage h = resolved_head_storage(m, o.head);
  if (m.config.tied_output && e == h) {
    store_embeddings(m, e);  // the head follows: one table
    return;
  }
  store_output_head(m, h);
  store_embeddings(m, e);
}

RandomQuantization random_quantization(const QuantCliOptions& o, const LlamaConfig& c) {
  RandomQuantization rq;
  rq.weights.bits = o.wbits;
  rq.weights.group = o.wgroup;
  rq.weights.keep_float = KeepFloat(o.keep_float, c.n_layers);
  rq.embed = o.embed.empty() ? kDefaultQuantizedEmbed : parse_table_storage(o.embed);
  rq.head = o.head.empty() ? kDefaultQuantizedHead : parse_table_storage(o.head);
  return rq;
}

KvSmoothing stats_smoothing(const Model& fp, const std::vector<int>& stream,
                            const std::string& calib, int64_t windows, int64_t ctx, int64_t sinks) {
  const auto t0 = std::chrono::steady_clock::now();
  CalibWindows w;
  w.ctx = ctx;
  w.max_windows = windows;
  w.sink_positions = sinks;
  const KvChannelStats st = collect_kv_stats(fp, stream, w);
  info("kv smoothing: statistics of %lld tokens of %s (%.1f s)\n",
       static_cast<long long>(st.tokens), calib.c_str(), seconds_since(t0));
  return smoothing_from_stats(st);
}

namespace {

// The --calib text's tokens, encoded once for whichever of statistics smoothing, rel8 ranges and
// --kv-auto asks first.
class CalibTokens {
 public:
  CalibTokens(const QuantCliOptions& o, const Tokenizer* tok) : o_(o), tok_(tok) {}
  CalibTokens(const QuantCliOptions& o, const std::vector<int>& tokens)
      : o_(o), tok_(nullptr), tokens_(tokens) {}
  bool available() const { return tokens_ || (!o_.calib.empty() && tok_ != nullptr); }
  const std::vector<int>& get() const {
    if (!tokens_) tokens_ = tok_->encode(read_text_file(o_.calib, "--calib"), true, false);
    return *tokens_;
  }

 private:
  const QuantCliOptions& o_;
  const Tokenizer* tok_;
  mutable std::optional<std::vector<int>> tokens_;
};

// rel8 metadata: the smoothing's static group ranges, the model's own when they fit (same groups,
// same smoothing), else measured on --calib text (or o.range_tokens) with the model that runs: the
// ranges of the K/V its cache will hold.
void add_group_ranges(PreparedModel& p, const QuantCliOptions& o, const CalibTokens& calib) {
  const int64_t group = p.kv.group == 0 ? p.fp.config.head_dim : p.kv.group;
  if (!o.kv_given.smooth && p.smoothing.has_ranges() && p.smoothing.ranges.group == group) return;
  const bool text = calib.available();
  WKVQ_REQUIRE(text || !o.range_tokens.empty(), "--kv-meta rel8 codes each KV group against a ",
               "static range measured on calibration text",
               p.smoothing.has_ranges()
                   ? " (the model's own ranges are for other groups or another smoothing)"
                   : "",
               "; pass --calib FILE");
  const Model& m = p.model;
  if (p.smoothing.n_layers == 0) {
    p.smoothing = KvSmoothing::identity(p.fp.config.n_layers, p.fp.config.kv_dim());
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int>& stream = text ? calib.get() : o.range_tokens;
  CalibWindows w;
  w.ctx = o.calib_ctx;
  w.max_windows = o.calib_windows;
  w.sink_positions = o.calib_sinks;
  p.smoothing.set_ranges(smoothed_kv_group_ranges(m, stream, w, group, &p.smoothing), "--calib");
  info("kv rel8 ranges: groups of %lld channels from %s (%s model, %.1f s)\n",
       static_cast<long long>(group),
       text ? o.calib.c_str() : "random tokens (speed only: no calibration text)",
       m.quant.wbits > 0 ? "quantized" : "float", seconds_since(t0));
}

// --kv-auto: statistics smoothing unless the model has its own or --kv-smooth says otherwise,
// then the format measured on the calibration text (cli/kv_auto.h).
void auto_kv_format(PreparedModel& p, const QuantCliOptions& o, const CalibTokens& calib) {
  const QuantCliOptions::KvGiven& g = o.kv_given;
  WKVQ_REQUIRE(calib.available(), "--kv-auto measures its candidates on calibration text; pass ",
               "--calib FILE");
  const std::vector<int>& stream = calib.get();
  // The float model, where one is held: p.fp when kept, else the model as loaded if float.
  const Model* fp = !p.fp.layers.empty() && p.fp.quant.wbits == 0 ? &p.fp
                    : p.model.quant.wbits == 0                    ? &p.model
                                                                  : nullptr;
  if (p.smoothing.n_layers == 0 && !g.smooth && fp != nullptr) {
    p.smoothing =
        stats_smoothing(*fp, stream, o.calib, o.calib_windows, o.calib_ctx, o.calib_sinks);
    p.kv.smooth = KvSmoothMode::Stats;
  }
  choose_kv_format(p, o, stream, fp);
}

}  // namespace

void add_kv_group_ranges(PreparedModel& p, const QuantCliOptions& o,
                         const std::vector<int>& calib_tokens) {
  add_group_ranges(p, o, CalibTokens(o, calib_tokens));
}

PreparedModel prepare_model(Model loaded, const QuantCliOptions& o, const Tokenizer* tok,
                            bool keep_fp) {
  const QuantCliOptions::KvGiven& given = o.kv_given;
  WKVQ_REQUIRE(o.kv_auto == 0 ||
                   (!given.bits && !given.group && !given.window && !given.vbits && !given.meta),
               "--kv-auto chooses the KV cache's bits, group, window and metadata; leave out ",
               "--kvbits, --kvgroup, --kv-window, --kv-vbits and --kv-meta (or --kv-auto)");
  const CalibTokens calib(o, tok);
  PreparedModel p;
  p.fp = std::move(loaded);
  const QuantizationInfo& q = p.fp.quant;
  if (o.wbits > 0) {
    WKVQ_REQUIRE(q.wbits == 0, "--wbits: the model ", p.fp.source, " is already quantized (",
                 q.wbits, " bits); load its floating-point original to quantize it again");
    WeightQuantOptions wo;
    wo.bits = o.wbits;
    wo.group = o.wgroup;
    wo.keep_float = KeepFloat(o.keep_float, p.fp.config.n_layers);
    const auto t0 = std::chrono::steady_clock::now();
    p.model = quantize_weights_rtn(p.fp, wo);
    info("weights: RTN %d-bit, group %lld (%.1f s)\n", o.wbits, static_cast<long long>(o.wgroup),
         seconds_since(t0));
  } else if (keep_fp || (o.kv_given.smooth && o.kv.smooth == KvSmoothMode::Stats)) {
    p.model = p.fp;  // (rel8 ranges and --kv-auto read p.model when p.fp is not kept)
  } else {
    p.model = std::move(p.fp);  // no copy: tables converted below are freed at once
    p.fp = Model{};             // the settings only (q refers to p.fp.quant)
    p.fp.config = p.model.config;
    p.fp.quant = p.model.quant;
    p.fp.source = p.model.source;
    p.fp.kv_smoothing = p.model.kv_smoothing;
  }
  apply_table_options(p.model, o);
  p.kv = o.kv_over(q.kv);
  validate_kv_settings(p.kv, p.fp.config.kv_dim());
  if (!o.kv_given.smooth && p.fp.kv_smoothing.n_layers > 0) {  // the model's own
    p.smoothing = p.fp.kv_smoothing;
  } else if (!o.kv_given.smooth) {
    p.kv.smooth = KvSmoothMode::None;
  } else if (p.kv.smooth == KvSmoothMode::Stats) {
    WKVQ_REQUIRE(q.wbits == 0, "--kv-smooth stats needs the floating-point model; ", p.fp.source,
                 " is already quantized (it carries its own smoothing)");
    WKVQ_REQUIRE(tok != nullptr, "--kv-smooth stats needs a tokenizer for the --calib text");
    WKVQ_REQUIRE(!o.calib.empty(), "--kv-smooth stats needs calibration text: pass --calib FILE");
    p.smoothing =
        stats_smoothing(p.fp, calib.get(), o.calib, o.calib_windows, o.calib_ctx, o.calib_sinks);
  }
  if (o.kv_auto > 0) {
    auto_kv_format(p, o, calib);
  } else if (p.kv.quantized() && p.kv.rel8) {
    add_group_ranges(p, o, calib);
  }
  p.model.kv_smoothing = p.smoothing;
  p.model.quant.kv = p.kv;
  if (!keep_fp) {  // the float weights the quantized model does not read are freed here
    Model settings;
    settings.config = p.fp.config;
    settings.quant = p.fp.quant;
    settings.source = p.fp.source;
    p.fp = std::move(settings);
  }
  advise_huge_pages(p.model);
  return p;
}

std::string PreparedModel::describe() const {
  std::ostringstream os;
  const QuantizationInfo& q = model.quant;
  if (q.wbits == 0) {
    os << "W32 (float)";
  } else {
    os << "W" << q.wbits << " g" << q.wgroup << " " << q.method;
  }
  os << ", embed " << table_storage_name(embedding_storage(model)) << ", head "
     << table_storage_name(head_storage(model));
  os << ", KV";
  if (kv.quantized()) {
    os << kv.bits;
    if (kv.value_bits() != kv.bits) os << " (V" << kv.value_bits() << ")";
    os << " g" << (kv.group == 0 ? model.config.head_dim : kv.group)
       << (kv.poq ? " POQ" : " no-POQ");
    if (kv.rel8) os << " rel8";
    if (kv.window > 0) os << " + fp16 window " << kv.window;
    os << ", smoothing " << kv_smooth_name(smoothing.n_layers > 0 ? kv.smooth : KvSmoothMode::None);
  } else {
    os << kv.bits;
  }
  return os.str();
}

}  // namespace wkvq::cli
