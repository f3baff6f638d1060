// The KV sweep as a figure draws it: read from the JSON `wkvq ppl --kv-sweep --json` prints
// (cli/ppl_kvlab.cpp): per method, its evaluated configurations (bits per element, KLD).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wkvq {

struct KvSweepPoint {
  std::string config;
  double bits = 0, kld = 0, kld_stderr = 0;
};

struct KvSweepMethod {
  std::string name;                  // the --kv-sweep-methods spec ("wkvq2d:w=8")
  std::vector<KvSweepPoint> points;  // by bits; a configuration once (it recurs across budgets)
};

struct KvSweepData {
  std::string model, text, weights;
  int64_t ctx = 0, windows = 0, tokens = 0;
  double w_only_kld = 0, w_only_kld_stderr = 0;
  std::vector<KvSweepMethod> methods;  // in the order of the rows; none without a point
  std::vector<std::string> unfit;      // methods with no configuration within any budget
};

// Throws, naming `source` and saying what was expected, when `j` is not such a sweep (no "rows"
// array, a row without method or with a result lacking bits or KLD, no "w_only" KLD).
KvSweepData kv_sweep_from_json(const nlohmann::json& j, const std::string& source);
// The file at `path`: read_json_file, then kv_sweep_from_json.
KvSweepData read_kv_sweep_file(const std::string& path);

}  // namespace wkvq
