#include "cli/calibration.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "calibrate/block_file.h"
#include "calibrate/token_file.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/worker_process.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace wkvq::cli {

namespace fs = std::filesystem;

void CalibCliOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--k", crr.k,
                  "CRR: full-precision blocks after the calibrated one in the loss (0: the "
                  "block's own output)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--loss", loss, "CRR loss: mae (WKVQuant) or mse (OmniQuant)")
      ->capture_default_str()
      ->check(CLI::IsMember({"mae", "mse"}));
  cmd->add_option("--epochs", crr.epochs, "Epochs over the calibration windows, per block")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option(
         "--samples", crr.samples,
         "Windows of the --calib text (wkvquant: seeded random ones; gptq: consecutive from the "
         "start)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--window", crr.window,
                  "Tokens per calibration window (0: min(256, model context))")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--batch", crr.batch, "Windows per optimizer step")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--learn", learn,
                  "What is learned: lwc (weight clipping), smooth (KV smoothing), both "
                  "comma-separated, or none")
      ->capture_default_str();
  cmd->add_option("--smooth-init", smooth_init,
                  "Initial KV smoothing: stats (as --kv-smooth stats: --calib-windows windows of "
                  "--calib-ctx tokens of --calib) or identity")
      ->capture_default_str()
      ->check(CLI::IsMember({"stats", "identity"}));
  cmd->add_option("--train-poq", train_poq,
                  "Attention form in training: on (teacher-forced POQ) or off (the current "
                  "token's K/V quantized too, OmniQuant-style)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--lr-lwc", crr.lr_lwc, "AdamW learning rate of the LWC parameters")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--lr-smooth", crr.lr_smooth, "AdamW learning rate of the KV smoothing")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--lwc-init", crr.lwc_init,
                  "Initial LWC logits gamma = beta (sigmoid(4) = 0.982: almost no clipping)")
      ->capture_default_str()
      ->check(CLI::Range(-20.0f, 20.0f));
  add_seed_option(cmd, &crr.seed, "Seed of the calibration windows and their order");
  cmd->add_option("--run-dir", run_dir,
                  "Directory of the calibration run's per-block results (default: OUT.calib-run, "
                  "removed when the model is written)");
  cmd->add_flag("--resume", resume,
                "Continue an interrupted calibration from the block files in the run directory");
  cmd->add_option("--stop-after-block", stop_after_block,
                  "Stop after this block (0-based) is calibrated, leaving a run to --resume")
      ->check(CLI::Range(-1, 1 << 20));
  cmd->add_option("--gptq-damp", gptq_damp,
                  "GPTQ (--method gptq): damping added to the Hessian's diagonal, as a fraction "
                  "of its mean")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 10.0));
  cmd->add_flag("--act-order", act_order,
                "GPTQ (--method gptq): quantize columns in descending Hessian-diagonal order, "
                "with each group's scale and zero point computed from the original weights "
                "(static groups: the stored format keeps column-order groups)");
}

bool CalibCliOptions::applies_to_gptq(const std::string& option_name) {
  return option_name == "--samples" || option_name == "--window" || option_name == "--run-dir" ||
         option_name == "--gptq-damp" || option_name == "--act-order";
}

GptqOptions CalibCliOptions::gptq(const QuantCliOptions& q) const {
  GptqOptions o;
  o.bits = q.wbits > 0 ? q.wbits : 4;
  o.group = q.wgroup;
  o.damp = gptq_damp;
  o.act_order = act_order;
  o.samples = crr.samples;
  o.window = crr.window;
  return o;
}

CrrOptions CalibCliOptions::resolve(const QuantCliOptions& q) const {
  WKVQ_REQUIRE(q.keep_float.empty(),
               "--keep-float is not supported with --method wkvquant (every linear of every "
               "block is calibrated); use --method rtn to keep layers in floating point");
  WKVQ_REQUIRE(!q.kv_given.smooth,
               "--kv-smooth does not apply to --method wkvquant: its smoothing starts from "
               "--smooth-init and is learned unless --learn leaves out smooth");
  WKVQ_REQUIRE(q.kv_auto == 0,
               "--kv-auto: calibration (--method wkvquant, --learn smooth) trains the KV format "
               "it is given; choose one with `wkvq quantize --method rtn --calib FILE` (its "
               "config.json names it), then pass its --kvbits, --kvgroup, --kv-vbits, "
               "--kv-window and --kv-meta here");
  WKVQ_REQUIRE(!q.kv_given.poq || q.kv.poq,
               "--poq off: a wkvquant model is calibrated for POQ decoding; to evaluate it "
               "without POQ use `wkvq ppl --mode decode-nopoq`");
  CrrOptions o = crr;
  o.wbits = q.wbits > 0 ? q.wbits : 4;
  WKVQ_REQUIRE(o.wbits != 3, "--wbits 3: the quantized model directory stores 2, 4 or 8 bits");
  o.wgroup = q.wgroup;
  o.kv.bits = q.kv_given.bits ? q.kv.bits : 4;
  o.kv.group = q.kv_given.group ? q.kv.group : 0;
  o.kv.vbits = q.kv_given.vbits ? q.kv.vbits : 0;     // values' bits (0: the keys')
  o.kv.window = q.kv_given.window ? q.kv.window : 0;  // the fp16 window, in training too
  o.kv.rel8 = q.kv_given.meta && q.kv.rel8;           // rel8 group metadata, in training too
  o.loss = loss == "mse" ? CrrLoss::Mse : CrrLoss::Mae;
  o.stats_init = smooth_init == "stats";
  o.stats_windows = q.calib_windows;
  o.stats_ctx = q.calib_ctx;
  o.kv.poq = train_poq == "on";
  o.learn_lwc = false;
  bool learn_smooth = false;
  std::stringstream ss(learn);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part == "lwc") {
      o.learn_lwc = true;
    } else if (part == "smooth") {
      learn_smooth = true;
    } else {
      WKVQ_REQUIRE(part == "none" && learn == "none", "--learn: expected lwc, smooth, ",
                   "lwc,smooth or none, found '", learn, "'");
    }
  }
  o.kv.smooth = learn_smooth   ? KvSmoothMode::Learned
                : o.stats_init ? KvSmoothMode::Stats
                               : KvSmoothMode::None;
  return o;
}

CrrOptions CalibCliOptions::resolve_frozen(const QuantCliOptions& q,
                                           const QuantizationInfo& weights,
                                           const std::string& what) const {
  WKVQ_REQUIRE(q.wbits == 0, "--wbits ", q.wbits, ": the weights of ", what,
               " are quantized already (", weights.wbits,
               "-bit) and kept bit for bit; leave out --wbits");
  CrrOptions o = resolve(q);
  WKVQ_REQUIRE(!o.learn_lwc, "--learn ", learn, ": the weights of ", what,
               " are quantized already and kept bit for bit, so weight clipping (lwc) cannot be "
               "learned; pass --learn smooth to learn only the KV smoothing on them");
  o.frozen_weights = true;
  o.wbits = weights.wbits;
  o.wgroup = weights.wgroup;
  return o;
}

namespace {

// The worker's GPTQ options (its --gptq and --frozen-gptq runs).
std::vector<std::string> gptq_worker_args(const GptqOptions& opt);

std::string worker_path() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  WKVQ_REQUIRE(!ec, "cannot find this executable's directory (/proc/self/exe: ", ec.message(),
               ") to run the calibration worker wkvq-calibrate");
  const fs::path worker = self.parent_path() / "wkvq-calibrate";
  WKVQ_REQUIRE(fs::exists(worker), "the calibration worker ", worker.string(),
               " is missing: this wkvq was built without libtorch. Install libtorch-dev and "
               "rebuild with -DWKVQ_CALIBRATE=ON (the default), e.g. bash scripts/build.sh");
  return worker.string();
}

}  // namespace

std::vector<int> calibration_tokens(const Tokenizer& tok, const std::string& calib_path) {
  WKVQ_REQUIRE(!calib_path.empty(), "calibration needs text: pass --calib FILE");
  return tok.encode(read_text_file(calib_path, "--calib"), true, false);
}

namespace {

// A double as text that reads back to the same value.
std::string exact_text(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Creates run_dir (the caller holds its lock) and writes the calibration tokens into it.
void prepare_run_dir(const std::string& run_dir, const std::vector<int>& tokens,
                     const std::string& calib) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  WKVQ_REQUIRE(!ec, run_dir, ": cannot create the calibration run directory: ", ec.message());
  info("calibration text: %s, %zu tokens; run directory %s\n", calib.c_str(), tokens.size(),
       run_dir.c_str());
  write_token_file((fs::path(run_dir) / "calib_tokens.bin").string(), tokens);
}

}  // namespace

Model run_gptq(const std::string& model_path, const Model& fp, const std::vector<int>& tokens,
               const std::string& calib, const GptqOptions& opt, const std::string& run_dir,
               int threads) {
  opt.validate(fp.config);
  const std::string worker = worker_path();
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  const RunDirLock lock(run_dir);
  prepare_run_dir(run_dir, tokens, calib);
  const std::string result = gptq_result_file(run_dir);
  fs::remove(result, ec);
  std::vector<std::string> args = {worker,      "--gptq", "--model",   model_path,
                                   "--run-dir", run_dir,  "--threads", std::to_string(threads)};
  for (std::string& a : gptq_worker_args(opt)) args.push_back(std::move(a));
  if (quiet()) args.emplace_back("--quiet");
  const auto t0 = std::chrono::steady_clock::now();
  run_worker(args, "GPTQ keeps no partial results: run the command again");
  info("gptq finished in %.1f s\n", seconds_since(t0));
  return apply_gptq(fp, read_gptq_result(result, fp, opt), opt);
}

std::optional<CalibrationResult> run_calibration(const std::string& model_path, const Model& fp,
                                                 const std::vector<int>& tokens,
                                                 const std::string& calib, const CrrOptions& opt,
                                                 const std::string& run_dir, bool resume,
                                                 int stop_after_block, int threads,
                                                 const FrozenGptq* frozen) {
  opt.validate(fp.config);
  const std::string worker = worker_path();
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  WKVQ_REQUIRE(!ec, run_dir, ": cannot create the calibration run directory: ", ec.message());
  const RunDirLock lock(run_dir);
  prepare_run_dir(run_dir, tokens, calib);
  const std::string record = opt.record();
  write_file_atomically((fs::path(run_dir) / "options.txt").string(), record.data(), record.size());
  std::vector<std::string> args = {
      worker, "--model", model_path, "--run-dir", run_dir, "--threads", std::to_string(threads)};
  if (resume) args.emplace_back("--resume");
  if (quiet()) args.emplace_back("--quiet");
  if (frozen != nullptr) {
    args.emplace_back("--frozen-gptq");
    args.push_back(frozen->result_file);
    for (std::string& a : gptq_worker_args(frozen->options)) args.push_back(std::move(a));
  }
  if (stop_after_block >= 0) {
    args.emplace_back("--stop-after-block");
    args.push_back(std::to_string(stop_after_block));
  }
  const auto t0 = std::chrono::steady_clock::now();
  run_worker(args, "Finished blocks are kept in " + run_dir +
                       ": rerun the same command with --resume to continue");
  const double seconds = seconds_since(t0);
  if (stop_after_block >= 0 && stop_after_block < fp.config.n_layers - 1) {
    info("calibration stopped after block %d (%.1f s); continue with --resume\n", stop_after_block,
         seconds);
    return std::nullopt;
  }
  CalibrationResult r;
  r.quant = opt.quant_info();
  for (BlockFile& f : read_block_files(run_dir, fp.config.n_layers)) {
    WKVQ_REQUIRE(f.record.rfind(record, 0) == 0, block_file_path(run_dir, f.block),
                 ": not calibrated with the options asked for (another run's file?)");
    r.blocks.push_back(std::move(f.data));
  }
  info("calibration finished in %.1f s\n", seconds);
  return r;
}

std::string gptq_result_file(const std::string& run_dir) {
  return (fs::path(run_dir) / "gptq_weights.safetensors").string();
}

namespace {

std::vector<std::string> gptq_worker_args(const GptqOptions& opt) {
  std::vector<std::string> args = {
      "--bits",    std::to_string(opt.bits),    "--group",  std::to_string(opt.group),
      "--damp",    exact_text(opt.damp),        "--block",  std::to_string(opt.block),
      "--samples", std::to_string(opt.samples), "--window", std::to_string(opt.window)};
  if (opt.act_order) args.emplace_back("--act-order");
  return args;
}

}  // namespace

Model learn_smoothing_on_gptq(const std::string& model_path, const Model& fp, const Model& gptq,
                              const std::vector<int>& tokens, const std::string& calib,
                              const CrrOptions& crr, const GptqOptions& opt,
                              const std::string& gptq_run_dir, const std::string& run_dir,
                              int threads) {
  WKVQ_REQUIRE(crr.frozen_weights,
               "learn_smoothing_on_gptq: the CRR options must freeze the "
               "weights (CalibCliOptions::resolve_frozen)");
  const FrozenGptq frozen{gptq_result_file(gptq_run_dir), opt};
  const std::optional<CalibrationResult> r =
      run_calibration(model_path, fp, tokens, calib, crr, run_dir, false, -1, threads, &frozen);
  return apply_smoothing(gptq, *r);
}

}  // namespace wkvq::cli
