// WKVQuant calibration from the CLI: the CRR options of `wkvq quantize --method wkvquant` and
// `wkvq ppl --ablation --calibrate`, and running the calibration worker `wkvq-calibrate` (a
// separate process: libtorch and Debian's libsentencepiece cannot share one, src/CMakeLists.txt).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "calibrate/calibration_result.h"
#include "calibrate/crr.h"
#include "calibrate/gptq_result.h"
#include "cli/quant_options.h"
#include "model/model.h"
#include "runtime/tokenizer.h"

namespace wkvq::cli {

struct CalibCliOptions {
  CrrOptions crr;            // k, loss, epochs, samples, window, batch, lrs, init, seed
  std::string loss = "mae";  // --loss
  std::string learn = "lwc,smooth";
  std::string smooth_init = "stats";
  std::string train_poq = "on";
  std::string run_dir;  // "": a default beside the output
  bool resume = false;
  int stop_after_block = -1;
  double gptq_damp = 0.01;  // --gptq-damp
  bool act_order = false;   // --act-order

  // Registers --k --loss --epochs --samples --window --batch --learn --smooth-init --train-poq
  // --lr-lwc --lr-smooth --lwc-init --seed --run-dir --resume --stop-after-block --gptq-damp
  // --act-order on `cmd`.
  void add_to(CLI::App* cmd);
  // The options of the calibration that apply to GPTQ (--samples --window --run-dir --gptq-damp
  // --act-order): the others, given with --method gptq, are refused.
  static bool applies_to_gptq(const std::string& option_name);
  // GPTQ options for the quantization settings `q` (--wbits, default 4, and --wgroup) and
  // --samples, --window, --gptq-damp, --act-order.
  GptqOptions gptq(const QuantCliOptions& q) const;
  // The CRR options for the quantization settings `q` (--wbits, --wgroup, --kvbits, --kvgroup;
  // defaults W4 g128, KV4 in groups of head_dim). Throws on a bad combination.
  CrrOptions resolve(const QuantCliOptions& q) const;
  // The CRR options that learn the KV smoothing on frozen, already quantized weights (`weights`:
  // their settings; `what` names them in messages): resolve(q) with frozen_weights, the weights'
  // bits and group, and no LWC (--learn with lwc, or --wbits, is refused).
  CrrOptions resolve_frozen(const QuantCliOptions& q, const QuantizationInfo& weights,
                            const std::string& what) const;
};

// Frozen GPTQ weights for a CRR run on the floating-point model: the worker's GPTQ result file
// (run_gptq's, gptq_result_file) and the options it was computed with.
struct FrozenGptq {
  std::string result_file;
  GptqOptions options;
};

// The --calib text as one token stream with BOS first; throws when no file was given.
std::vector<int> calibration_tokens(const Tokenizer& tok, const std::string& calib_path);

// Runs `wkvq-calibrate` on the floating-point model at `model_path` (already loaded as `fp`)
// with the calibration tokens (`calib` names their file in messages), in `run_dir` (created;
// with `resume`, finished blocks there are kept). Returns the result, or nothing when
// `stop_after_block` stopped the run before the last block. Throws when the worker is missing or
// fails.
//
// With opt.frozen_weights the weights are frozen: `frozen` given, the GPTQ weights of its result
// file on the floating-point `fp` (the reference); null, fp's own (an already quantized model,
// which is then its own reference).
std::optional<CalibrationResult> run_calibration(const std::string& model_path, const Model& fp,
                                                 const std::vector<int>& tokens,
                                                 const std::string& calib, const CrrOptions& opt,
                                                 const std::string& run_dir, bool resume,
                                                 int stop_after_block, int threads,
                                                 const FrozenGptq* frozen = nullptr);

// Runs `wkvq-calibrate --gptq` on the floating-point model at `model_path` (loaded as `fp`) in
// `run_dir` (created) and returns fp with its linears GPTQ-quantized (apply_gptq). The result
// file stays in run_dir (gptq_result_file).
Model run_gptq(const std::string& model_path, const Model& fp, const std::vector<int>& tokens,
               const std::string& calib, const GptqOptions& opt, const std::string& run_dir,
               int threads);
std::string gptq_result_file(const std::string& run_dir);

// WKVQuant's KV part learned on GPTQ weights: CRR with the weights frozen (`crr` from
// resolve_frozen) on the floating-point `fp` at `model_path` (the reference) with the GPTQ weights
// `gptq` that run_gptq(..., opt, gptq_run_dir, ...) returned, in `run_dir`. Returns gptq with the
// learned smoothing (apply_smoothing).
Model learn_smoothing_on_gptq(const std::string& model_path, const Model& fp, const Model& gptq,
                              const std::vector<int>& tokens, const std::string& calib,
                              const CrrOptions& crr, const GptqOptions& opt,
                              const std::string& gptq_run_dir, const std::string& run_dir,
                              int threads);

}  // namespace wkvq::cli
