#include "kvlab/kv_sweep.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "eval/text_table.h"
#include "kvlab/kv_alloc_measure.h"
#include "kvlab/kv_ranges.h"
#include "kvlab/sim_kv_store.h"

namespace wkvq {

std::unique_ptr<KvLabMethod> make_kv_lab_method(const KvMethodSpec& spec_in, const LlamaConfig& c,
                                                const KvLabCalibration& calib) {
  const KvMethodSpec spec =
      spec_in.alloc && spec_in.layer_bits.empty() ? allocate_kv_layers(spec_in, c, calib) : spec_in;
  if (!spec.needs_ranges()) {
    return std::make_unique<KvLabMethod>(spec, c, calib.smoothing, nullptr);
  }
  WKVQ_REQUIRE(calib.fp != nullptr && calib.stream != nullptr, "--kv-method ", spec.label(),
               " needs static ranges from calibration text: pass --calib FILE");
  char key[64];
  std::snprintf(key, sizeof key, "f%d s%d r%d g%lld", static_cast<int>(spec.family),
                spec.smooth ? 1 : 0, spec.rotate ? 1 : 0, static_cast<long long>(spec.group));
  auto it = calib.ranges->find(key);
  if (it == calib.ranges->end()) {
    const KvLabMethod probe(spec, c, calib.smoothing, nullptr);  // its transform only
    it = calib.ranges
             ->emplace(key, calibrate_kv_ranges(*calib.fp, probe, *calib.stream, calib.windows))
             .first;
  }
  return std::make_unique<KvLabMethod>(spec, c, calib.smoothing, &it->second);
}

EvalSpec kv_lab_eval(const Model& model, const KvLabMethod& method, EvalMode mode, int64_t ctx) {
  EvalSpec e;
  e.model = &model;
  e.mode = mode;
  const KvLabMethod* m = &method;
  const LlamaConfig c = model.config;
  e.store = [m, c](int64_t window, bool poq) -> std::unique_ptr<EvalKvStore> {
    return std::make_unique<SimKvStore>(*m, c, window, poq);
  };
  e.store_bits = kv_bits_per_element(method.spec(), method.shape(), ctx);
  return e;
}

std::vector<KvMethodSpec> kv_sweep_candidates(const KvMethodSpec& base, const KvShape& s) {
  std::vector<KvMethodSpec> out;
  std::vector<int> bits = {2, 3, 4};
  std::vector<int64_t> groups = {base.group};
  switch (base.family) {
    case KvFamily::Fp16:
    case KvFamily::Q4_0:
    case KvFamily::Q4_1:
      return {base};
    case KvFamily::Turbo:
      bits = {1, 2, 3, 4};
      break;
    case KvFamily::Kivi:
      groups = {32, 64, 128};
      break;
    case KvFamily::KvQuant:
      groups = {8, 16, 32, 64, 128};
      break;
    case KvFamily::Int:
      groups = {8, 16, 32, 64, 128};
      break;
  }
  if (base.bits_given) bits = {base.bits};
  if (base.group_given) groups = {base.group};
  for (const int b : bits) {
    for (const int64_t g : groups) {
      KvMethodSpec m = base;
      m.bits = b;
      m.group = g;
      if (m.family == KvFamily::Kivi && !base.group_given) m.residual = g;
      if (m.family != KvFamily::Turbo && g > s.kv_dim) continue;
      if (m.family == KvFamily::Int && s.kv_dim % g != 0) continue;
      out.push_back(m);
    }
  }
  return out;
}

namespace {
// alloc=sens: the most code bits over the 2 n_layers tensors, up to the menu's widest code on
// every tensor, whose bits per element stay within the budget (at least the uniform's).
int64_t alloc_total_for_budget(const KvMethodSpec& uniform, const KvShape& s, int64_t ctx,
                               double budget) {
  WKVQ_REQUIRE(s.n_layers > 0, "alloc=sens in a sweep needs the number of layers");
  const int tensors = 2 * s.n_layers;
  const int64_t base = kv_alloc_total(uniform, s.n_layers);
  const int64_t top = int64_t{tensors} * kv_alloc_menu(uniform, base, tensors).back();
  int64_t total = base;
  KvMethodSpec m = uniform;
  for (int64_t u = base + 1; u <= top; ++u) {
    m.alloc_total_bits = u;
    if (kv_bits_per_element(m, s, ctx) > budget + 1e-9) break;
    total = u;
  }
  return total;
}
}  // namespace

std::optional<KvMethodSpec> kv_config_for_budget(const KvMethodSpec& base, const KvShape& s,
                                                 int64_t ctx, double budget) {
  std::optional<KvMethodSpec> best;
  double best_bits = -1.0;
  for (const KvMethodSpec& m : kv_sweep_candidates(base, s)) {
    const double b = kv_bits_per_element(m, s, ctx);
    if (b > budget + 1e-9) continue;
    if (b > best_bits + 1e-9 || (b > best_bits - 1e-9 && best && m.bits > best->bits)) {
      best = m;
      best_bits = b;
    }
  }
  if (best && best->alloc) best->alloc_total_bits = alloc_total_for_budget(*best, s, ctx, budget);
  return best;
}

std::vector<std::string> default_kv_sweep_methods() {
  return {"q4_0",     "q4_1",   "kivi",       "turbo",      "quarot",         "rtn",    "wkvq",
          "wkvq-rot", "wkvq2d", "wkvq2d-rot", "wkvq2d:w=8", "wkvq2d-rot:w=8", "kvquant"};
}

std::string format_kv_sweep_table(const std::vector<KvSweepRow>& rows, double base_kld) {
  std::vector<std::vector<std::string>> cells = {
      {"budget", "method", "configuration", "bits/elem", "decode PPL", "KLD", "KLD - W-only"}};
  char b[96];
  for (const KvSweepRow& r : rows) {
    std::snprintf(b, sizeof b, "%g", r.budget);  // 4.5, 3.8125
    std::vector<std::string> row = {b, r.method};
    if (r.config.empty()) {
      if (r.min_bits >= 1e9) {  // no configuration runs on this shape (kivi g > kv_dim, ...)
        std::snprintf(b, sizeof b, "none (no configuration for this model's shape)");
      } else {
        std::snprintf(b, sizeof b, "none (cheapest %.3f bits)", r.min_bits);
      }
      row.insert(row.end(), {b, "-", "-", "-", "-"});
    } else {
      row.push_back(r.config);
      std::snprintf(b, sizeof b, "%.3f", r.result.kv_bits_per_element);
      row.emplace_back(b);
      std::snprintf(b, sizeof b, "%.4f +/- %.4f", r.result.ppl, r.result.ppl * r.result.nll_stderr);
      row.emplace_back(b);
      std::snprintf(b, sizeof b, "%.5f +/- %.5f", r.result.kld, r.result.kld_stderr);
      row.emplace_back(b);
      std::snprintf(b, sizeof b, "%+.5f", r.result.kld - base_kld);
      row.emplace_back(b);
    }
    cells.push_back(row);
  }
  return format_text_table(cells);
}

}  // namespace wkvq
