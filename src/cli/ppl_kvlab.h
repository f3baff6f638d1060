// wkvq ppl --kv-method / --kv-sweep: the KV lab (issue 16, src/kvlab) on the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/quant_options.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "runtime/tokenizer.h"

namespace wkvq::cli {

struct KvLabCliOptions {
  std::string method;                // --kv-method SPEC
  bool sweep = false;                // --kv-sweep
  std::vector<std::string> methods;  // --kv-sweep-methods (default: default_kv_sweep_methods)
  std::vector<double> budgets = {4.5, 3.5, 2.5};  // --kv-budgets
  bool active() const { return sweep || !method.empty(); }
  void add_to(CLI::App* cmd);
};

// What ppl has read when the KV lab takes over.
struct KvLabRun {
  const QuantCliOptions* quant = nullptr;
  std::string text, mode;  // --text, --mode ("" = decode)
  bool json = false, kld = false;
  const std::vector<int>* stream = nullptr;
  PplOptions opt;  // ctx, max_windows
};

void run_kv_lab(const KvLabCliOptions& k, const KvLabRun& run, Model loaded, const Tokenizer& tok);

}  // namespace wkvq::cli
