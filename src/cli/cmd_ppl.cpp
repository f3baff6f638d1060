// wkvq ppl: perplexity (and KL divergence) of a model on a text file in one evaluation mode
// (design.md §3), or the whole ablation ladder (--ablation).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "calibrate/block_file.h"
#include "cli/calibration.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/ppl_kvlab.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "eval/ablation.h"
#include "eval/perplexity.h"
#include "model/weight_quantizer.h"

namespace wkvq::cli {

namespace {

struct PplCliOptions {
  std::string model, tokenizer, text, mode, kld_model;
  int64_t ctx = 0;
  int64_t max_windows = 0;
  bool json = false, kld = false, ablation = false;
  int threads = 0;
  QuantCliOptions quant;
  CalibCliOptions calib;
  std::vector<std::string> calibrated;  // --calibrated DIR: quantized models as extra rungs
  bool calibrate = false;               // --calibrate: the learned rungs, calibrated here
  KvLabCliOptions kvlab;                // --kv-method, --kv-sweep
};

}  // namespace

nlohmann::json ppl_result_json(const PplResult& r) {
  nlohmann::json j = {{"ppl", r.ppl},
                      {"nll", r.nll},
                      {"nll_stderr", r.nll_stderr},
                      {"ppl_stderr", r.ppl * r.nll_stderr},
                      {"tokens", r.tokens},
                      {"windows", r.windows},
                      {"ctx", r.ctx},
                      {"mode", r.mode},
                      {"stream_tokens", r.stream_tokens},
                      {"kv_bits_per_element", r.kv_bits_per_element},
                      {"kv_bytes_per_token", r.kv_bytes_per_token},
                      {"seconds", r.seconds}};
  if (r.has_kld) {
    j["kld"] = r.kld;
    j["kld_stderr"] = r.kld_stderr;
  }
  return j;
}

namespace {

// On a terminal the window count updates one line in place; otherwise (a log file) one summary
// line when the last window is done; nothing with --quiet.
PplProgress progress_printer() {
  const auto started = std::chrono::steady_clock::now();
  const bool tty = progress_on_tty();
  return [started, tty](int64_t done, int64_t total, double nll) {
    const double el = seconds_since(started);
    if (tty) {
      info("\rwindow %lld/%lld  ppl %.4f  elapsed %.1f s  eta %.1f s   ",
           static_cast<long long>(done), static_cast<long long>(total), std::exp(nll), el,
           el / static_cast<double>(done) * static_cast<double>(total - done));
      if (done == total) info("\n");
    } else if (done == total) {
      info("windows %lld/%lld  ppl %.4f  %.1f s\n", static_cast<long long>(done),
           static_cast<long long>(total), std::exp(nll), el);
    }
  };
}

// The learned rungs of --calibrate (design.md §2.4: LWC, learned smoothing, the loss and k as
// separate claims), each calibrated from the options with one part changed.
struct LearnedRung {
  std::string name, slug;
  CrrOptions crr;
};

std::vector<LearnedRung> learned_rungs(const CrrOptions& base, const std::string& wkv) {
  CrrOptions lwc = base;
  lwc.learn_lwc = true;
  lwc.kv.smooth = base.stats_init ? KvSmoothMode::Stats : KvSmoothMode::None;  // kept
  lwc.k = 0;
  lwc.loss = CrrLoss::Mse;
  CrrOptions smooth = lwc;
  smooth.kv.smooth = KvSmoothMode::Learned;
  CrrOptions mae = smooth;
  mae.loss = CrrLoss::Mae;
  CrrOptions crr = mae;
  crr.k = base.k;
  crr.loss = base.loss;
  const std::string k = std::to_string(base.k);
  const std::string loss = base.loss == CrrLoss::Mae ? "MAE" : "MSE";
  return {{wkv + " + LWC (k=0, MSE)", "lwc", lwc},
          {wkv + " + learned smoothing (k=0, MSE)", "lwc_smooth", smooth},
          {wkv + " + MAE loss (k=0)", "lwc_smooth_mae", mae},
          {wkv + " + CRR (k=" + k + ", " + loss + ") = WKVQuant", "wkvquant_k" + k, crr}};
}

// The learned rungs of --calibrate (LWC, + learned smoothing, + MAE, + CRR; design.md §2.4), each
// calibrated by the worker process and appended to `rungs` (their models kept in `learned`).
// Returns the settings summary of the CRR rung.
std::string add_learned_rungs(const PplCliOptions& o, const std::string& model_path,
                              const Model& fp, const std::vector<int>& calib,
                              const KvQuantSettings& kv, const KvSmoothing& smooth,
                              const std::string& w, const std::string& wkv,
                              std::vector<AblationRung>& rungs, std::vector<double>& calib_seconds,
                              std::deque<Model>& learned) {
  const QuantCliOptions& q = o.quant;
  QuantCliOptions cq = q;
  cq.kv_given.smooth = false;
  cq.kv_given.poq = false;
  cq.keep_float.clear();
  WKVQ_REQUIRE(q.keep_float.empty(), "--calibrate: --keep-float is not supported");
  const CrrOptions crr_base = o.calib.resolve(cq);
  namespace fs = std::filesystem;
  const bool keep = !o.calib.run_dir.empty();
  const fs::path root =
      keep ? fs::path(o.calib.run_dir)
           : fs::temp_directory_path() / ("wkvq-ablation-" + std::to_string(getpid()));
  for (const LearnedRung& lr : learned_rungs(crr_base, wkv)) {
    const fs::path dir = root / lr.slug;
    info("calibrating rung '%s'\n", lr.name.c_str());
    const auto t0 = std::chrono::steady_clock::now();
    const bool resume = keep && fs::exists(block_file_path(dir.string(), 0));
    const auto r = run_calibration(model_path, fp, calib, q.calib, lr.crr, dir.string(), resume, -1,
                                   o.threads);
    calib_seconds.push_back(seconds_since(t0));
    learned.push_back(apply_calibration(fp, *r, lr.crr.wbits, lr.crr.wgroup));
    apply_table_options(learned.back(), q);
    rungs.push_back({lr.name, &learned.back(), kv, &learned.back().kv_smoothing});
  }
  // GPTQ weights (design.md's baseline): alone, with WKVQuant's KV part that needs no learning
  // (POQ and statistics smoothing), and with its learned smoothing (the CRR rung's options, the
  // GPTQ weights frozen).
  info("quantizing rung 'GPTQ' weights\n");
  auto t0 = std::chrono::steady_clock::now();
  const GptqOptions gopt = o.calib.gptq(cq);
  Model& gptq = learned.emplace_back(
      run_gptq(model_path, fp, calib, q.calib, gopt, (root / "gptq").string(), o.threads));
  apply_table_options(gptq, q);
  calib_seconds.push_back(seconds_since(t0));
  rungs.push_back({w + " GPTQ, FP KV", &gptq, KvQuantSettings{}, nullptr});
  calib_seconds.push_back(0.0);
  rungs.push_back({wkv + " GPTQ + POQ + stats smoothing", &gptq, kv, &smooth});
  const std::string k = std::to_string(crr_base.k);
  const std::string name = wkv + " GPTQ + learned smoothing (CRR k=" + k + ", " +
                           (crr_base.loss == CrrLoss::Mae ? "MAE" : "MSE") + ")";
  info("calibrating rung '%s'\n", name.c_str());
  t0 = std::chrono::steady_clock::now();
  CrrOptions frozen = crr_base;  // the CRR rung's options, learning the smoothing only
  frozen.frozen_weights = true;
  frozen.learn_lwc = false;
  frozen.kv.smooth = KvSmoothMode::Learned;
  frozen.wbits = gptq.quant.wbits;
  frozen.wgroup = gptq.quant.wgroup;
  const Model& smoothed = learned.emplace_back(learn_smoothing_on_gptq(
      model_path, fp, gptq, calib, q.calib, frozen, gopt, (root / "gptq").string(),
      (root / "gptq_smooth").string(), o.threads));
  calib_seconds.push_back(seconds_since(t0));
  rungs.push_back({name, &smoothed, kv, &smoothed.kv_smoothing});
  if (!keep) {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  return crr_base.summary();
}

// The rungs of --calibrated: quantized model directories, each with its own settings.
void add_calibrated_rungs(const PplCliOptions& o, const Model& fp, std::vector<AblationRung>& rungs,
                          std::vector<double>& calib_seconds, std::deque<Model>& learned) {
  const QuantCliOptions& q = o.quant;
  for (const std::string& dir : o.calibrated) {
    learned.push_back(load_model_verbose(dir));
    apply_table_options(learned.back(), q);
    const Model& m = learned.back();
    WKVQ_REQUIRE(m.quant.wbits > 0, "--calibrated ", dir, ": not a quantized model directory");
    WKVQ_REQUIRE(m.config.dim == fp.config.dim && m.config.n_layers == fp.config.n_layers &&
                     m.config.vocab_size == fp.config.vocab_size,
                 "--calibrated ", dir, ": a model of another shape (", m.config.summary(),
                 ") than ", fp.source);
    KvQuantSettings mkv = m.quant.kv;
    mkv.poq = true;
    std::string name = "W" + std::to_string(m.quant.wbits) + "KV" +
                       std::to_string(m.quant.kv.bits) + " " + m.quant.method;
    if (!m.quant.calibration.empty()) name += " (" + m.quant.calibration + ")";
    rungs.push_back({name, &m, mkv, m.kv_smoothing.n_layers > 0 ? &m.kv_smoothing : nullptr});
    calib_seconds.push_back(0.0);
  }
}

// The ablation rows as one JSON object (--json) or as a table with the calibration times.
void print_ablation(const PplCliOptions& o, const Model& fp, const std::vector<AblationRow>& rows,
                    const std::vector<double>& calib_seconds, int wbits, int kvbits,
                    const KvQuantSettings& kv, const std::string& calibration) {
  const QuantCliOptions& q = o.quant;
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (size_t i = 0; i < rows.size(); ++i) {
      const AblationRow& r = rows[i];
      nlohmann::json row = {{"rung", r.rung},
                            {"decode", ppl_result_json(r.decode)},
                            {"prefill", ppl_result_json(r.prefill)}};
      if (calib_seconds[i] > 0) row["calibration_seconds"] = calib_seconds[i];
      arr.push_back(row);
    }
    nlohmann::json j = {{"model", fp.source},
                        {"text", o.text},
                        {"calib", q.calib},
                        {"wbits", wbits},
                        {"wgroup", q.wgroup},
                        {"kvbits", kvbits},
                        {"kvgroup", kv.group == 0 ? fp.config.head_dim : kv.group},
                        {"rungs", arr}};
    if (o.calibrate) j["calibration"] = calibration;
    j["kernels"] = kernels_json();
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "ablation: %s on %s, ctx %lld, %lld windows, %lld tokens; weights g%lld, KV g%lld\n",
        fp.source.c_str(), o.text.c_str(), static_cast<long long>(rows[0].decode.ctx),
        static_cast<long long>(rows[0].decode.windows),
        static_cast<long long>(rows[0].decode.tokens), static_cast<long long>(q.wgroup),
        static_cast<long long>(kv.group == 0 ? fp.config.head_dim : kv.group));
    std::printf("%s", format_ablation_table(rows).c_str());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (calib_seconds[i] > 0) {
        std::printf("calibration of '%s': %.1f s\n", rows[i].rung.c_str(), calib_seconds[i]);
      }
    }
  }
}

// The ladder of design.md §2.4: FP; W RTN; W+KV RTN without POQ; + POQ; + statistics smoothing;
// then the learned rungs (--calibrate) and calibrated model directories (--calibrated).
void run_ablation_cmd(const PplCliOptions& o, const std::string& model_path, const Model& fp,
                      const Tokenizer& tok, const std::vector<int>& stream,
                      const PplOptions& base) {
  const QuantCliOptions& q = o.quant;
  const int wbits = q.wbits > 0 ? q.wbits : 4;
  const int kvbits = q.kv_given.bits ? q.kv.bits : 4;
  WKVQ_REQUIRE(kvbits <= 8, "--ablation quantizes the KV cache: --kvbits must be 2, 3, 4 or 8");
  WKVQ_REQUIRE(
      !q.kv_given.vbits && !q.kv_given.window && !q.kv_given.meta && q.kv_auto == 0,
      "--ablation runs the paper's ladder with one KV bit width, fp16 group metadata "
      "and no window; leave out --kv-vbits, --kv-meta, --kv-window and --kv-auto (evaluate them "
      "with ppl --kvbits ... without --ablation)");
  WKVQ_REQUIRE(fp.quant.wbits == 0, "--ablation needs the floating-point model, not ", fp.source);
  WeightQuantOptions wo;
  wo.bits = wbits;
  wo.group = q.wgroup;
  wo.keep_float = KeepFloat(q.keep_float, fp.config.n_layers);
  Model wq = quantize_weights_rtn(fp, wo);
  apply_table_options(wq, q);
  WKVQ_REQUIRE(!q.calib.empty(), "--ablation needs calibration text: pass --calib FILE");
  const std::vector<int> calib = calibration_tokens(tok, q.calib);  // tokenized once for all rungs
  const KvSmoothing smooth =
      stats_smoothing(fp, calib, q.calib, q.calib_windows, q.calib_ctx, q.calib_sinks);
  KvQuantSettings kv;
  kv.bits = kvbits;
  kv.group = q.kv_given.group ? q.kv.group : 0;
  validate_kv_settings(kv, fp.config.kv_dim());
  KvQuantSettings nopoq = kv;
  nopoq.poq = false;
  const std::string w = "W" + std::to_string(wbits);
  const std::string wkv = w + "KV" + std::to_string(kvbits);
  std::vector<AblationRung> rungs = {{"FP", &fp, KvQuantSettings{}, nullptr},
                                     {w + " RTN, FP KV", &wq, KvQuantSettings{}, nullptr},
                                     {wkv + " RTN, no POQ", &wq, nopoq, nullptr},
                                     {wkv + " RTN + POQ", &wq, kv, nullptr},
                                     {wkv + " RTN + POQ + stats smoothing", &wq, kv, &smooth}};
  std::vector<double> calib_seconds(rungs.size(), 0.0);
  std::deque<Model> learned;  // stable addresses for the rungs
  std::string calibration;    // the settings of the learned rungs' CRR rung
  if (o.calibrate) {
    calibration = add_learned_rungs(o, model_path, fp, calib, kv, smooth, w, wkv, rungs,
                                    calib_seconds, learned);
  }
  add_calibrated_rungs(o, fp, rungs, calib_seconds, learned);
  info("evaluating %zu rungs in decode and prefill mode, window by window\n", rungs.size());
  const auto rows = run_ablation(fp, rungs, stream, base, progress_printer());
  print_ablation(o, fp, rows, calib_seconds, wbits, kvbits, kv, calibration);
  print_memory(wq, 0);
}

void run_ppl(const PplCliOptions& o) {
  apply_threads(o.threads);
  const std::string model_path = resolve_model_path(o.model);
  // --kld and --ablation run the floating-point model too: it is loaded in f32 for them.
  Model loaded = load_model_verbose(
      model_path, o.quant.wbits > 0 && !o.kld && !o.ablation && !o.kvlab.active());
  const auto tok = open_tokenizer(o.tokenizer, model_path, loaded.config.vocab_size);
  const std::string text = read_text_file(o.text);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> stream = tok->encode(text, /*bos=*/true, /*eos=*/false);
  info("text: %s, %zu bytes, %zu tokens (tokenized in %.2f s)\n", o.text.c_str(), text.size(),
       stream.size(), seconds_since(t0));
  PplOptions opt;
  opt.ctx = o.ctx;
  opt.max_windows = o.max_windows;
  WKVQ_REQUIRE(o.ablation || (!o.calibrate && o.calibrated.empty()),
               "--calibrate and --calibrated add rungs to --ablation: pass --ablation too");
  WKVQ_REQUIRE(!o.calib.resume && o.calib.stop_after_block < 0,
               "--resume and --stop-after-block belong to wkvq quantize; --ablation --calibrate "
               "resumes by itself when --run-dir holds an earlier run's rungs");
  if (o.ablation) {
    WKVQ_REQUIRE(!o.kvlab.active(), "--ablation and --kv-method/--kv-sweep: give one of them");
    run_ablation_cmd(o, model_path, loaded, *tok, stream, opt);
    return;
  }
  if (o.kvlab.active()) {
    const KvLabRun run{&o.quant, o.text, o.mode, o.json, o.kld, &stream, opt};
    run_kv_lab(o.kvlab, run, std::move(loaded), *tok);
    return;
  }

  const bool fp_reference = o.kld && o.kld_model.empty();  // --kld against the model itself
  const PreparedModel p = prepare_model(std::move(loaded), o.quant, tok.get(), fp_reference);
  std::unique_ptr<Model> kld_model;
  if (o.kld) {
    if (!o.kld_model.empty()) {
      kld_model = std::make_unique<Model>(load_model_verbose(o.kld_model));
    } else {
      WKVQ_REQUIRE(p.fp.quant.wbits == 0, "--kld: ", p.fp.source,
                   " is already quantized; give its floating-point original with --kld-model");
    }
    opt.kld_reference = kld_model ? kld_model.get() : &p.fp;
  }
  opt.kv = p.kv;
  opt.smoothing = p.smoothing_or_null();
  opt.mode = o.mode.empty() ? (p.kv.quantized() ? EvalMode::Decode : EvalMode::Prefill)
                            : parse_eval_mode(o.mode);
  info("evaluating %s in %s mode\n", p.describe().c_str(), eval_mode_name(opt.mode));
  const PplResult r = perplexity(p.model, stream, opt, progress_printer());

  if (o.json) {
    nlohmann::json j = ppl_result_json(r);
    j["model"] = model_path;
    j["text"] = o.text;
    j["quantization"] = p.describe();
    j["weight_bytes"] = p.model.weight_bytes();
    j["kernels"] = kernels_json();
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\nmode %s  ctx %lld  windows %lld  tokens %lld\n", p.describe().c_str(),
                r.mode.c_str(), static_cast<long long>(r.ctx), static_cast<long long>(r.windows),
                static_cast<long long>(r.tokens));
    std::printf("ppl %.4f +/- %.4f  (nll %.5f +/- %.5f nats/token)  %.1f s\n", r.ppl,
                r.ppl * r.nll_stderr, r.nll, r.nll_stderr, r.seconds);
    if (r.has_kld) std::printf("kld %.6f +/- %.6f nats/token\n", r.kld, r.kld_stderr);
  }
  print_memory(p.model, r.kv_bytes_per_token);
}

}  // namespace

void register_ppl(CLI::App& app) {
  auto o = std::make_shared<PplCliOptions>();
  CLI::App* cmd = app.add_subcommand("ppl", "Perplexity and KL divergence of a model on a text");
  cmd->add_option("--model", o->model,
                  "llama2.c .bin file, Hugging Face directory or quantized model directory "
                  "(default: stories260K from $WKVQ_SHARED_DIR or ../shared)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer file: tokenizer.json, tokenizer.model or tokenizer.bin (default: "
                  "beside the model, tokenizer.json preferred)");
  cmd->add_option("--text", o->text,
                  "Text file, tokenized as one stream with BOS first (when the tokenizer adds one)")
      ->required();
  cmd->add_option("--ctx", o->ctx, "Window length T (default: min(2048, model context))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--max-windows", o->max_windows, "Score at most N windows (default: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--mode", o->mode,
                  "prefill (one pass, float KV), decode (teacher-forced POQ over the quantized "
                  "cache) or decode-nopoq; default: decode when the KV cache is quantized, else "
                  "prefill")
      ->check(CLI::IsMember({"prefill", "decode", "decode-nopoq"}));
  cmd->add_flag("--kld", o->kld,
                "Also the mean KL divergence from the floating-point model's next-token "
                "distribution");
  cmd->add_option("--kld-model", o->kld_model,
                  "Floating-point reference for --kld when --model is already quantized");
  cmd->add_flag("--ablation", o->ablation,
                "Run the ablation ladder (FP; W RTN; WKV RTN without POQ; + POQ; + statistics "
                "smoothing) in decode and prefill modes; needs --calib");
  cmd->add_flag("--calibrate", o->calibrate,
                "With --ablation: add the learned rungs, each calibrated here (+LWC; +learned "
                "smoothing; +MAE loss; +CRR with --k), with the calibration options below, and "
                "the GPTQ rungs (GPTQ weights with float KV; with the quantized KV cache, "
                "POQ and statistics smoothing; and with the KV smoothing learned by the CRR "
                "rung's options on the frozen GPTQ weights; --samples, --window, --gptq-damp, "
                "--act-order)");
  cmd->add_option("--calibrated", o->calibrated,
                  "With --ablation: quantized model directories (e.g. from wkvq quantize "
                  "--method wkvquant) added as rungs; repeatable");
  cmd->add_flag("--json", o->json, "Print one JSON object on stdout instead of the table");
  o->kvlab.add_to(cmd);
  o->quant.add_to(cmd);
  CLI::App* crr =
      cmd->add_option_group("calibration", "Calibration options of --ablation --calibrate");
  o->calib.add_to(crr);
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] { run_ppl(*o); });
}

}  // namespace wkvq::cli
