// What `wkvq ppl` reads from its command line, and what its modes print alike: one result as
// JSON, the progress line. The modes: cmd_ppl.cpp (one evaluation), ppl_ablation.h (the
// ladder), ppl_kvlab.h (the KV lab).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/calibration.h"
#include "cli/kernel_options.h"
#include "cli/ppl_kvlab.h"
#include "cli/quant_options.h"
#include "eval/perplexity.h"

namespace wkvq::cli {

struct PplCliOptions {
  std::string model, tokenizer, text, mode, kld_model;
  int64_t ctx = 0;
  int64_t max_windows = 0;
  bool json = false, kld = false, ablation = false;
  int threads = 0;
  KernelCliOptions kernels;  // --decode-gemv, --prefill-gemm
  QuantCliOptions quant;
  CalibCliOptions calib;
  std::vector<std::string> calibrated;  // --calibrated DIR: quantized models as extra rungs
  bool calibrate = false;               // --calibrate: the learned rungs, calibrated here
  KvLabCliOptions kvlab;                // --kv-method, --kv-sweep
};

// One evaluation's result as ppl --json prints it.
nlohmann::json ppl_result_json(const PplResult& r);

// On a terminal the window count updates one line in place; otherwise (a log file) one summary
// line when the last window is done; nothing with --quiet.
PplProgress ppl_progress_printer();

}  // namespace wkvq::cli
