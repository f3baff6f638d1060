#include "plot/kv_sweep_data.h"

#include <algorithm>

#include "core/error.h"
#include "io/json_file.h"

namespace wkvq {

namespace {

constexpr const char* kExpected =
    "the JSON that `wkvq ppl --kv-sweep --json` prints (save its stdout to a file)";

double number_at(const nlohmann::json& j, const char* key, const std::string& where) {
  WKVQ_REQUIRE(j.is_object() && j.contains(key) && j[key].is_number(), where, ": no number \"", key,
               "\"; expected ", kExpected);
  return j[key].get<double>();
}

void add_row(KvSweepData& d, const nlohmann::json& row, const std::string& where) {
  WKVQ_REQUIRE(row.is_object() && row.contains("method") && row["method"].is_string(), where,
               ": no \"method\" string; expected ", kExpected);
  const std::string name = row["method"].get<std::string>();
  auto m = std::find_if(d.methods.begin(), d.methods.end(),
                        [&](const KvSweepMethod& x) { return x.name == name; });
  const bool fits = row.contains("result");
  if (m == d.methods.end()) {
    d.methods.push_back({name, {}});
    m = d.methods.end() - 1;
  }
  if (!fits) return;
  const nlohmann::json& r = row["result"];
  const std::string rw = where + ".result";
  KvSweepPoint p;
  p.config = row.value("config", name);
  p.bits = number_at(r, "kv_bits_per_element", rw);
  p.kld = number_at(r, "kld", rw);
  p.kld_stderr = number_at(r, "kld_stderr", rw);
  const bool seen = std::any_of(m->points.begin(), m->points.end(),
                                [&](const KvSweepPoint& q) { return q.config == p.config; });
  if (!seen) m->points.push_back(p);
}

}  // namespace

KvSweepData kv_sweep_from_json(const nlohmann::json& j, const std::string& source) {
  WKVQ_REQUIRE(j.is_object() && j.contains("rows") && j["rows"].is_array(), source,
               ": no \"rows\" array; expected ", kExpected);
  KvSweepData d;
  d.model = j.value("model", "");
  d.text = j.value("text", "");
  d.weights = j.value("weights", "");
  WKVQ_REQUIRE(j.contains("w_only"), source, ": no \"w_only\" result; expected ", kExpected);
  const std::string w = source + ": w_only";
  d.w_only_kld = number_at(j["w_only"], "kld", w);
  d.w_only_kld_stderr = number_at(j["w_only"], "kld_stderr", w);
  d.ctx = static_cast<int64_t>(number_at(j["w_only"], "ctx", w));
  d.windows = static_cast<int64_t>(number_at(j["w_only"], "windows", w));
  d.tokens = static_cast<int64_t>(number_at(j["w_only"], "tokens", w));
  for (size_t i = 0; i < j["rows"].size(); ++i) {
    add_row(d, j["rows"][i], source + ": rows[" + std::to_string(i) + "]");
  }
  for (auto& m : d.methods) {
    std::sort(m.points.begin(), m.points.end(),
              [](const KvSweepPoint& a, const KvSweepPoint& b) { return a.bits < b.bits; });
    if (m.points.empty()) d.unfit.push_back(m.name);
  }
  d.methods.erase(std::remove_if(d.methods.begin(), d.methods.end(),
                                 [](const KvSweepMethod& m) { return m.points.empty(); }),
                  d.methods.end());
  WKVQ_REQUIRE(!d.methods.empty(), source,
               ": no row has a result (no method fitted any budget); nothing to draw");
  return d;
}

KvSweepData read_kv_sweep_file(const std::string& path) {
  return kv_sweep_from_json(read_json_file(path, kExpected), path);
}

}  // namespace wkvq
