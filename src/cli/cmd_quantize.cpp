// wkvq quantize: quantize a floating-point model and write the quantized model directory
// (design.md §5, model/quantized_model_io.h). --method rtn: round-to-nearest weights, the KV
// settings (and statistics smoothing) recorded for the runtime. --method wkvquant: LWC clipping
// and KV smoothing learned block by block with the CRR loss (design.md §2.3), by the calibration
// worker (cli/calibration.h); on an already quantized model (a GPTQ checkpoint, a quantized
// directory) with --learn smooth, only the KV smoothing is learned, on the frozen weights.
// --method gptq: GPTQ weights (calibrate/gptq.h, in the same worker), the KV settings and optional
// statistics smoothing as with rtn, or with --learn smooth WKVQuant's smoothing learned on them.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "cli/calibration.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/kv_auto.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "model/quantized_model_io.h"
#include "model/quantized_model_names.h"
#include "model/random_model.h"
#include "runtime/kv_cache.h"

namespace wkvq::cli {

namespace {

struct QuantizeCliOptions {
  std::string method, model, out, tokenizer;
  std::string random_shape, shape_file;  // seeded random weights instead of --model
  uint64_t seed = 1;
  std::string format = "wkvq";  // the directory layout: wkvq or gptq
  int threads = 0;
  QuantCliOptions quant;
  CalibCliOptions calib;
  const CLI::App* crr_group = nullptr;  // the calibration options, refused with --method rtn
  bool learn_given = false;             // --learn on the command line
};

// --kv-auto before calibration: the format measured with RTN weights (or the frozen ones) and
// statistics smoothing on the calibration text (cli/kv_auto.h), then given to the calibration
// as if on the command line, which trains the smoothing under it. `loaded` is kept as it was.
void choose_format_to_calibrate(QuantCliOptions& q, Model& loaded, const Tokenizer& tok) {
  QuantCliOptions pick = q;
  pick.wbits = loaded.quant.wbits > 0 ? 0 : (q.wbits > 0 ? q.wbits : 4);
  PreparedModel p = prepare_model(std::move(loaded), pick, &tok, /*keep_fp=*/true);
  loaded = std::move(p.fp);
  q.set_kv_format(p.kv);
  info("calibrating for that KV format (the smoothing learned under it)\n");
}

// The WKVQuant model: the floating-point model calibrated by the worker, or nothing when the run
// was stopped early (--stop-after-block). q: o.quant with run_quantize's defaults.
std::optional<PreparedModel> calibrated_model(const QuantizeCliOptions& o, QuantCliOptions q,
                                              const std::string& model_path, Model loaded,
                                              const Tokenizer& tok) {
  const std::vector<int> tokens = calibration_tokens(tok, q.calib);
  // An already quantized model keeps its weights: only the KV smoothing is learned on them.
  const bool frozen = loaded.quant.wbits > 0;
  if (frozen) q.wbits = o.quant.wbits;  // (not run_quantize's default: resolve_frozen checks it)
  if (q.kv_auto > 0) choose_format_to_calibrate(q, loaded, tok);
  const CrrOptions crr =
      frozen ? o.calib.resolve_frozen(q, loaded.quant, model_path) : o.calib.resolve(q);
  const bool default_dir = o.calib.run_dir.empty();
  const std::string run_dir = default_dir ? o.out + ".calib-run" : o.calib.run_dir;
  const std::optional<CalibrationResult> r =
      run_calibration(model_path, loaded, tokens, q.calib, crr, run_dir, o.calib.resume,
                      o.calib.stop_after_block, o.threads);
  if (!r) return std::nullopt;
  PreparedModel p;
  p.model =
      frozen ? apply_smoothing(loaded, *r) : apply_calibration(loaded, *r, crr.wbits, crr.wgroup);
  apply_table_options(p.model, q);
  p.fp = std::move(loaded);
  p.kv = p.model.quant.kv;  // crr.kv as calibrated, decoded with POQ
  p.kv.poq = true;
  validate_kv_settings(p.kv, p.model.config.kv_dim());
  p.smoothing = p.model.kv_smoothing;
  if (p.kv.quantized() && p.kv.rel8) add_kv_group_ranges(p, q, tokens);  // as calibrated
  p.model.kv_smoothing = p.smoothing;
  p.model.quant.kv = p.kv;
  if (default_dir) {
    std::error_code ec;
    std::filesystem::remove_all(run_dir, ec);
  }
  return p;
}

// --method gptq: the floating-point model with GPTQ weights, then the KV settings and smoothing
// of prepare_model, or (--learn smooth) the smoothing learned on them.
PreparedModel gptq_prepared(const QuantizeCliOptions& o, QuantCliOptions q,
                            const std::string& model_path, Model loaded, const Tokenizer& tok) {
  WKVQ_REQUIRE(q.keep_float.empty(),
               "--keep-float is not supported with --method gptq; use --method rtn to keep "
               "layers in floating point");
  WKVQ_REQUIRE(!q.calib.empty(), "--method gptq needs calibration text: pass --calib FILE");
  const std::vector<int> tokens = calibration_tokens(tok, q.calib);
  const bool default_dir = o.calib.run_dir.empty();
  const std::string run_dir = default_dir ? o.out + ".calib-run" : o.calib.run_dir;
  const GptqOptions gopt = o.calib.gptq(q);
  Model gptq = run_gptq(model_path, loaded, tokens, q.calib, gopt, run_dir, o.threads);
  if (o.learn_given && q.kv_auto > 0) choose_format_to_calibrate(q, loaded, tok);
  if (o.learn_given) {  // WKVQuant's KV part learned on the frozen GPTQ weights
    QuantCliOptions kv = q;
    kv.wbits = 0;
    const CrrOptions crr = o.calib.resolve_frozen(kv, gptq.quant, "--method gptq");
    gptq = learn_smoothing_on_gptq(model_path, loaded, gptq, tokens, q.calib, crr, gopt, run_dir,
                                   (std::filesystem::path(run_dir) / "smooth").string(), o.threads);
  }
  if (default_dir) {
    std::error_code ec;
    std::filesystem::remove_all(run_dir, ec);
  }
  QuantCliOptions kv_only = q;
  kv_only.wbits = 0;  // the weights are GPTQ's; prepare_model adds the KV part
  PreparedModel p = prepare_model(std::move(loaded), kv_only, &tok);
  if (o.learn_given) {  // the learned smoothing, decoded with POQ
    p.kv = gptq.quant.kv;
    p.kv.poq = true;
    validate_kv_settings(p.kv, gptq.config.kv_dim());
    gptq.quant.kv = p.kv;
    p.smoothing = gptq.kv_smoothing;
  } else {
    gptq.kv_smoothing = p.model.kv_smoothing;
    gptq.quant.kv = p.model.quant.kv;
  }
  apply_table_options(gptq, q);
  p.model = std::move(gptq);
  if (p.kv.quantized() && p.kv.rel8) {  // the ranges of the K/V the GPTQ weights make
    p.smoothing.ranges = {};
    p.smoothing.rel8.clear();
    add_kv_group_ranges(p, q, tokens);
    p.model.kv_smoothing = p.smoothing;
  }
  return p;
}

// The GPTQ convention keeps the embeddings and the head in floating point (fp16 in the file):
// the defaults for --format gptq, and int-b tables are refused by the writer.
void gptq_tables(QuantCliOptions& q) {
  if (q.embed.empty()) q.embed = "f32";
  if (q.head.empty()) q.head = "f16";
}

void save_and_report(const QuantizeCliOptions& o, const std::string& model_path,
                     const std::string& tok_path, const PreparedModel& p, double before,
                     std::chrono::steady_clock::time_point t0);

// The KV default of every method when the command line gives no KV option: the best format
// within kDefaultKvAutoBits measured on --calib text (--kv-auto, cli/kv_auto.h; wkvquant, and
// gptq with --learn smooth, then learn their smoothing under it); without calibration text (rtn),
// KV4 in groups of head_dim with fp16 metadata, and a note saying how to get the default.
void default_kv_format(const QuantizeCliOptions& o, QuantCliOptions& q) {
  const QuantCliOptions::KvGiven& g = q.kv_given;
  if (q.kv_auto > 0 || g.bits || g.group || g.window || g.vbits || g.meta || g.smooth || g.poq) {
    return;  // the command line chooses the KV cache (any KV option given)
  }
  if (!q.calib.empty()) {
    q.kv_auto = kDefaultKvAutoBits;
    return;
  }
  if (o.method != "rtn") return;  // (wkvquant and gptq ask for --calib)
  info(
      "kv cache: KV4 in groups of head_dim (fp16 metadata); pass --calib FILE for the default "
      "format, the best within %.1f bits measured on that text (--kv-auto %.1f)\n",
      kDefaultKvAutoBits, kDefaultKvAutoBits);
}

// --random-shape / --shape-file: seeded random weights of the shape, RTN-quantized as they are
// generated (never held in f32), for benchmarks of a saved model of a real shape.
void run_quantize_random(const QuantizeCliOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  WKVQ_REQUIRE(o.model.empty() && o.method == "rtn",
               "--random-shape / --shape-file make seeded random weights: give no --model, and "
               "--method rtn (there is nothing to calibrate on)");
  QuantCliOptions q = o.quant;
  if (q.wbits == 0) q.wbits = 4;
  if (!q.kv_given.bits) {
    q.kv.bits = 4;
    q.kv_given.bits = true;
  }
  WKVQ_REQUIRE(!q.kv_given.smooth || q.kv.smooth == KvSmoothMode::None,
               "--kv-smooth stats needs a real model's activations, not random weights");
  WKVQ_REQUIRE(!q.kv_given.meta || !q.kv.rel8,
               "--kv-meta rel8 needs static KV ranges from a real model's activations on "
               "calibration text, not random weights");
  if (o.format == "gptq") gptq_tables(q);
  const LlamaConfig c =
      o.shape_file.empty() ? shape_preset(o.random_shape) : load_shape_file(o.shape_file);
  const std::string what = o.shape_file.empty() ? o.random_shape : o.shape_file;
  info("random weights (seed %llu): %s\n", static_cast<unsigned long long>(o.seed),
       c.summary().c_str());
  std::unique_ptr<Tokenizer> tok;
  if (!o.tokenizer.empty()) {
    tok = load_tokenizer(o.tokenizer);
    check_tokenizer_fits(*tok, o.tokenizer, what, c.vocab_size);
  }
  Model m = make_random_quantized_model(c, o.seed, random_quantization(q, c));
  const double dim = c.dim, layers = c.n_layers;
  const double linears = dim * (2.0 * c.q_dim() + 2.0 * c.kv_dim() + 3.0 * c.hidden_dim);
  const double tables = static_cast<double>(c.vocab_size) * dim * (c.tied_output ? 1 : 2);
  const double before = 4.0 * (tables + layers * (linears + 2 * dim) + dim);  // as f32
  q.wbits = 0;  // quantized already: prepare_model adds the KV settings
  const PreparedModel p = prepare_model(std::move(m), q, nullptr, /*keep_fp=*/false);
  save_and_report(o, what, o.tokenizer, p, before, t0);
}

void run_quantize(const QuantizeCliOptions& o) {
  WKVQ_REQUIRE(o.method == "rtn" || o.method == "wkvquant" || o.method == "gptq",
               "--method: unknown method '", o.method, "'; available methods: rtn, wkvquant, gptq");
  for (const CLI::Option* opt : o.crr_group->get_options()) {
    const std::string& name = opt->get_name();
    const bool gptq_only = name == "--gptq-damp" || name == "--act-order";
    if (o.method == "rtn") {
      WKVQ_REQUIRE(opt->count() == 0, name, " is a calibration option: it needs ",
                   gptq_only ? "--method gptq" : "--method wkvquant");
    } else if (o.method == "gptq") {
      const bool partial = name == "--resume" || name == "--stop-after-block";
      WKVQ_REQUIRE(opt->count() == 0 || CalibCliOptions::applies_to_gptq(name) ||
                       (o.learn_given && !partial),
                   name,
                   partial ? " does not apply to --method gptq (GPTQ keeps no partial results)"
                           : " is a wkvquant calibration option: --method gptq uses it only with "
                             "--learn smooth (WKVQuant's KV smoothing learned on the GPTQ "
                             "weights)");
    } else {
      WKVQ_REQUIRE(opt->count() == 0 || !gptq_only, opt->get_name(),
                   " is a GPTQ option: it needs --method gptq");
    }
  }
  QuantCliOptions q = o.quant;
  WKVQ_REQUIRE(q.wbits != 3,
               "--wbits 3: saving 3-bit weights is not supported (the GPTQ layout "
               "of the quantized model directory packs 2, 4 or 8 bits); use --wbits 2, 4 or 8");
  apply_threads(o.threads);
  const auto t0 = std::chrono::steady_clock::now();
  const bool random = !o.random_shape.empty() || !o.shape_file.empty();
  if (random) {
    run_quantize_random(o);
    return;
  }
  const std::string model_path = resolve_model_path(o.model);
  Model loaded = load_model_verbose(model_path, /*to_quantize=*/true);
  // An already quantized model (a wkvq or GPTQ directory) with --method rtn and no --wbits keeps
  // its weights bit for bit: the directory is rewritten (--format, KV settings).
  const bool keep_weights = loaded.quant.wbits > 0 && q.wbits == 0 && o.method == "rtn";
  if (keep_weights) {
    info("weights: kept as quantized in %s (%s, %d-bit)\n", model_path.c_str(),
         loaded.quant.method.c_str(), loaded.quant.wbits);
  } else {
    if (q.wbits == 0) q.wbits = 4;
    default_kv_format(o, q);
    if (!q.kv_given.bits && q.kv_auto == 0) {
      q.kv.bits = 4;
      q.kv_given.bits = true;
    }
  }
  const std::string tok_path = o.tokenizer.empty()
                                   ? find_tokenizer_beside(model_path, loaded.config.vocab_size)
                                   : o.tokenizer;
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(tok_path);
  check_tokenizer_fits(*tok, tok_path, model_path, loaded.config.vocab_size);
  if (o.format == "gptq") gptq_tables(q);
  const auto before = static_cast<double>(loaded.weight_bytes());
  std::optional<PreparedModel> prepared;
  if (o.method == "wkvquant") {
    prepared = calibrated_model(o, q, model_path, std::move(loaded), *tok);
    if (!prepared) return;
  } else if (o.method == "gptq") {
    prepared = gptq_prepared(o, q, model_path, std::move(loaded), *tok);
  } else {
    prepared = prepare_model(std::move(loaded), q, tok.get(), /*keep_fp=*/false);
  }
  save_and_report(o, model_path, tok_path, *prepared, before, t0);
}

void save_and_report(const QuantizeCliOptions& o, const std::string& model_path,
                     const std::string& tok_path, const PreparedModel& p, double before,
                     std::chrono::steady_clock::time_point t0) {
  save_quantized_model(p.model, o.out, tok_path,
                       o.format == "gptq" ? QuantizedDirFormat::kGptq : QuantizedDirFormat::kWkvq);
  const double seconds = seconds_since(t0);

  namespace fs = std::filesystem;
  const KvCache probe(p.model.config, 1, p.kv, p.smoothing_or_null());
  const auto after = static_cast<double>(p.model.weight_bytes());
  std::printf("quantized %s: %s (%.1f s)\n", model_path.c_str(), p.describe().c_str(), seconds);
  std::printf("wrote %s: config.json, model.safetensors (%s), %s\n", o.out.c_str(),
              human_bytes(static_cast<double>(fs::file_size(fs::path(o.out) / "model.safetensors")))
                  .c_str(),
              tok_path.empty() ? "no tokenizer" : quantized_tokenizer_name(tok_path));
  std::printf("weights: %s -> %s (%.2fx smaller)\n", human_bytes(before).c_str(),
              human_bytes(after).c_str(), after > 0 ? before / after : 0.0);
  std::printf("KV cache: %.2f bits per element, %s per token", probe.bits_per_element(),
              human_bytes(static_cast<double>(probe.bytes_per_token())).c_str());
  if (p.kv.window > 0) {
    const int64_t ctx = p.model.config.seq_len;
    std::printf(", + fp16 window of %lld tokens (%s per sequence): %.2f bits per element at %lld",
                static_cast<long long>(p.kv.window),
                human_bytes(static_cast<double>(probe.window_bytes())).c_str(),
                probe.bits_per_element_at(ctx), static_cast<long long>(ctx));
  }
  std::printf("\n");
  print_memory(p.model, probe.bytes_per_token());
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize",
      "Quantize a model and write a quantized model directory (Hugging Face layout, "
      "GPTQ-convention weights)");
  cmd->add_option("--method", o->method,
                  "rtn (round-to-nearest weights; KV settings and optional statistics "
                  "smoothing recorded), wkvquant (LWC and KV smoothing learned with the CRR "
                  "loss; needs --calib; on a quantized --model only the KV smoothing, with "
                  "--learn smooth, the weights kept bit for bit) or gptq (GPTQ weights from "
                  "--calib activations, --gptq-damp, --act-order; KV settings and --kv-smooth "
                  "as with rtn, or with --learn smooth the KV smoothing learned on the GPTQ "
                  "weights)")
      ->required();
  cmd->add_option("--model", o->model,
                  "llama2.c .bin file or Hugging Face directory, floating point (default: "
                  "stories260K from $WKVQ_SHARED_DIR or ../shared); or a quantized directory "
                  "(wkvq's or a GPTQ checkpoint) whose weights are kept bit for bit by --method "
                  "rtn without --wbits (the directory rewritten: --format, KV settings) and by "
                  "--method wkvquant --learn smooth (the KV smoothing learned on them)");
  cmd->add_option("--out", o->out, "Output directory (new, empty, or an earlier quantized model)")
      ->required();
  cmd->add_option("--format", o->format,
                  "Directory layout: wkvq (default: F32 float tensors, exact zero points, "
                  "padding; lossless for wkvq) or gptq (the GPTQ convention transformers, vLLM "
                  "and GPTQModel load: fp16 float tensors, v1 zero points, KV smoothing in "
                  "wkvq_kv.safetensors; shapes must be multiples of 32/wbits and --wgroup)")
      ->check(CLI::IsMember({"wkvq", "gptq"}));
  auto* random = cmd->add_option(
      "--random-shape", o->random_shape,
      "Instead of --model: seeded random weights of a named shape (tinyllama-1.1b, llama2-7b, "
      "stories260k-shape), RTN-quantized as generated; for benchmarks of a saved model");
  cmd->add_option("--shape-file", o->shape_file,
                  "Instead of --model: random weights of the shape in a JSON file with HF "
                  "config.json keys (bench/shapes/)")
      ->excludes(random);
  add_seed_option(cmd, &o->seed, "Seed of --random-shape / --shape-file weights");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer copied into the output: tokenizer.json (with its "
                  "tokenizer_config.json), tokenizer.model or tokenizer.bin (default: the one "
                  "beside the model)");
  o->quant.add_to(cmd);
  CLI::App* crr = cmd->add_option_group(
      "calibration",
      "Calibration options of --method wkvquant (--samples, --window, --run-dir, "
      "--gptq-damp and --act-order also of --method gptq; all but --resume and "
      "--stop-after-block with --method gptq --learn smooth)");
  o->calib.add_to(crr);
  o->crr_group = crr;
  add_threads_option(cmd, &o->threads);
  cmd->footer(
      "Defaults for quantize: --wbits 4; the KV cache with --calib (and no KV option) "
      "--kv-auto 4.5, the best format within 4.5 bits per element measured on that text "
      "(every method; wkvquant learns its KV smoothing under that format, as under any KV "
      "format given), else --kvbits 4 (the KV settings are recorded in the directory's "
      "config.json; commands that load it may override them). With --method "
      "wkvquant an interrupted calibration keeps its finished blocks in the run directory; "
      "rerun the same command with --resume to continue.");
  cmd->callback([o, crr] {
    o->learn_given = crr->get_option("--learn")->count() > 0;
    run_quantize(*o);
  });
}

}  // namespace wkvq::cli
