// The KV sweep of issue 16 item 5: for each KV method and bit budget, the method's configuration
// with the most bits per element within the budget, evaluated in decode mode against the
// full-precision model, and the table of the results.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eval/perplexity.h"
#include "kvlab/kv_lab_method.h"
#include "model/model.h"
#include "runtime/kv_stats.h"

namespace wkvq {

// What a KV lab method may need from calibration: the smoothing (null: none available) and the
// calibration text for static ranges (null: none).
struct KvLabCalibration {
  const Model* fp = nullptr;
  const Model* model = nullptr;  // the evaluated weights: alloc=sens measures with them
  const KvSmoothing* smoothing = nullptr;
  const std::vector<int>* stream = nullptr;
  CalibWindows windows;
  // Static ranges already calibrated, by transform and group ("s1 r0 g32"): they depend on
  // neither the bits nor the window, so a sweep calibrates each once.
  std::shared_ptr<std::map<std::string, KvGroupRanges>> ranges =
      std::make_shared<std::map<std::string, KvGroupRanges>>();
  // alloc=sens: the KLD of each sensitivity probe measured (kvlab/kv_alloc_measure.h), by the
  // probe's label, so a sweep measures each once for all its budgets.
  std::shared_ptr<std::map<std::string, double>> probes =
      std::make_shared<std::map<std::string, double>>();
};

// The method ready to run: static ranges calibrated here when the spec needs them, per-layer bits
// chosen here for alloc=sens (kvlab/kv_alloc_measure.h).
std::unique_ptr<KvLabMethod> make_kv_lab_method(const KvMethodSpec& spec, const LlamaConfig& c,
                                                const KvLabCalibration& calib);

// The evaluation of `model` in `mode` (decode or decode-nopoq) through a SimKvStore of `method`
// (kept by reference), reporting its bits per element at `ctx`.
EvalSpec kv_lab_eval(const Model& model, const KvLabMethod& method, EvalMode mode, int64_t ctx);

// The configurations a sweep tries for a method (bits, groups; its other parameters as given),
// and the one with the most bits per element <= budget at ctx (ties: more code bits), if any.
// alloc=sens: that uniform configuration's group, with the most code bits in all
// (alloc_total_bits, the menu's widths allowing) whose bits per element stay within the budget
// (s.n_layers needed).
std::vector<KvMethodSpec> kv_sweep_candidates(const KvMethodSpec& base, const KvShape& s);
std::optional<KvMethodSpec> kv_config_for_budget(const KvMethodSpec& base, const KvShape& s,
                                                 int64_t ctx, double budget);

// The methods of the default sweep, as --kv-method specs.
std::vector<std::string> default_kv_sweep_methods();

struct KvSweepRow {
  double budget = 0;
  std::string method;   // the spec's base name
  std::string config;   // its label; empty: nothing within the budget
  double min_bits = 0;  // the cheapest configuration's bits (when none fits; >= 1e9: none runs)
  PplResult result;
};

// The table: budget, method, configuration, bits/element, decode PPL +- stderr, KLD +- stderr,
// KLD minus `base_kld` (the weights-only KLD).
std::string format_kv_sweep_table(const std::vector<KvSweepRow>& rows, double base_kld);

}  // namespace wkvq
