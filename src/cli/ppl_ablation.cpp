// wkvq ppl --ablation (cli/ppl_ablation.h).
#include "cli/ppl_ablation.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "calibrate/block_file.h"
#include "cli/calibration.h"
#include "cli/common.h"
#include "cli/console.h"
#include "core/error.h"
#include "eval/ablation.h"
#include "model/weight_quantizer.h"

namespace wkvq::cli {

namespace {

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
  cq.kv_given.vbits = cq.kv_given.window = cq.kv_given.meta = false;  // the paper's format
  cq.kv_auto = 0;
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

// The KV format beyond the paper's (issue 16: --kv-vbits, --kv-window, --kv-meta on top of the
// ladder's --kvbits/--kvgroup, or --kv-auto's choice) with W-bit RTN weights and statistics
// smoothing, its rel8 ranges measured on those weights; nullopt when no such option is given.
std::optional<PreparedModel> format_model(const QuantCliOptions& q, const Model& fp,
                                          const Tokenizer& tok, int wbits) {
  const QuantCliOptions::KvGiven& g = q.kv_given;
  if (!g.vbits && !g.window && !g.meta && q.kv_auto == 0) return std::nullopt;
  QuantCliOptions f = q;
  f.wbits = wbits;
  f.kv_given.smooth = true;
  f.kv.smooth = KvSmoothMode::Stats;
  f.kv_given.poq = false;
  f.kv.poq = true;
  if (q.kv_auto == 0 && !g.bits) {  // the ladder's default bits
    f.kv.bits = 4;
    f.kv_given.bits = true;
  }
  PreparedModel p = prepare_model(Model(fp), f, &tok, /*keep_fp=*/false);
  return p;
}

// "K4 V3 g32 w16 rel8": the label of a format in rung names.
std::string format_label(const KvQuantSettings& kv, int head_dim) {
  std::string s = "K" + std::to_string(kv.key_bits()) + " V" + std::to_string(kv.value_bits()) +
                  " g" + std::to_string(kv.group == 0 ? head_dim : kv.group);
  if (kv.window > 0) s += " w" + std::to_string(kv.window);
  return kv.rel8 ? s + " rel8" : s;
}

// The format's rungs: RTN + POQ + statistics smoothing in that format, and with --calibrate
// WKVQuant (the CRR rung's options) trained under it, its rel8 ranges measured with the learned
// smoothing (as quantize does).
void add_format_rungs(const PplCliOptions& o, const std::string& model_path, const Model& fp,
                      const std::vector<int>& calib, PreparedModel& fmt, const std::string& w,
                      std::vector<AblationRung>& rungs, std::vector<double>& calib_seconds,
                      std::deque<Model>& learned) {
  const std::string label = w + " " + format_label(fmt.kv, fp.config.head_dim);
  rungs.push_back({label + " RTN + POQ + stats smoothing", &fmt.model, fmt.kv, &fmt.smoothing});
  calib_seconds.push_back(0.0);
  if (!o.calibrate) return;
  QuantCliOptions cq = o.quant;
  cq.kv_given.smooth = cq.kv_given.poq = false;
  cq.set_kv_format(fmt.kv);
  const CrrOptions crr = o.calib.resolve(cq);
  namespace fs = std::filesystem;
  const bool keep = !o.calib.run_dir.empty();
  const fs::path dir =
      keep ? fs::path(o.calib.run_dir) / "wkvquant_format"
           : fs::temp_directory_path() / ("wkvq-ablation-format-" + std::to_string(getpid()));
  const std::string name = label + " WKVQuant (learned under it)";
  info("calibrating rung '%s'\n", name.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  const bool resume = keep && fs::exists(block_file_path(dir.string(), 0));
  const auto r = run_calibration(model_path, fp, calib, o.quant.calib, crr, dir.string(), resume,
                                 -1, o.threads);
  PreparedModel p;
  p.model = apply_calibration(fp, *r, crr.wbits, crr.wgroup);
  apply_table_options(p.model, o.quant);
  p.fp.config = fp.config;
  p.kv = fmt.kv;
  p.kv.smooth = KvSmoothMode::Learned;
  p.smoothing = p.model.kv_smoothing;
  if (p.kv.rel8) add_kv_group_ranges(p, o.quant, calib);
  p.model.kv_smoothing = p.smoothing;
  calib_seconds.push_back(seconds_since(t0));
  learned.push_back(std::move(p.model));
  rungs.push_back({name, &learned.back(), p.kv, &learned.back().kv_smoothing});
  if (!keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

}  // namespace

// The ladder of design.md §2.4: FP; W RTN; W+KV RTN without POQ; + POQ; + statistics smoothing;
// then the learned rungs (--calibrate), the format's rungs (add_format_rungs) and calibrated
// model directories (--calibrated).
void run_ablation_cmd(const PplCliOptions& o, const std::string& model_path, const Model& fp,
                      const Tokenizer& tok, const std::vector<int>& stream,
                      const PplOptions& base) {
  const QuantCliOptions& q = o.quant;
  const int wbits = q.wbits > 0 ? q.wbits : 4;
  const int kvbits = q.kv_given.bits ? q.kv.bits : 4;
  WKVQ_REQUIRE(kvbits <= 8, "--ablation quantizes the KV cache: --kvbits must be 2, 3, 4 or 8");
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
  std::optional<PreparedModel> fmt = format_model(q, fp, tok, wbits);
  if (fmt) add_format_rungs(o, model_path, fp, calib, *fmt, w, rungs, calib_seconds, learned);
  add_calibrated_rungs(o, fp, rungs, calib_seconds, learned);
  info("evaluating %zu rungs in decode and prefill mode, window by window\n", rungs.size());
  const auto rows = run_ablation(fp, rungs, stream, base, ppl_progress_printer());
  print_ablation(o, fp, rows, calib_seconds, wbits, kvbits, kv, calibration);
  print_memory(wq, 0);
}

}  // namespace wkvq::cli
