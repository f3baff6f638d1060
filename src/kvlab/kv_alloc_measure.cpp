#include "kvlab/kv_alloc_measure.h"

#include <algorithm>

#include "core/error.h"

namespace wkvq {

namespace {
// `uniform` with tensor t at b bits, the others not quantized (alloc=solo) or at the uniform bits.
KvMethodSpec probe_spec(const KvMethodSpec& uniform, int tensors, int t, int b) {
  KvMethodSpec p = uniform;
  p.alloc = p.alloc_solo = false;
  p.alloc_total_bits = 0;
  p.layer_bits.assign(static_cast<size_t>(tensors), uniform.alloc_solo ? 0 : uniform.bits);
  p.layer_bits[static_cast<size_t>(t)] = b;
  return p;
}
}  // namespace

KvSensitivity measure_kv_sensitivity(const KvMethodSpec& uniform, const std::vector<int>& menu,
                                     const LlamaConfig& c, const KvLabCalibration& calib) {
  WKVQ_REQUIRE(calib.model != nullptr && calib.stream != nullptr, "--kv-method ", uniform.label(),
               ": alloc=sens measures on calibration text: pass --calib FILE");
  KvSensitivity s;
  s.n_tensors = 2 * c.n_layers;
  s.bits = menu;
  const int64_t ctx = calib_window_ctx(c, calib.windows);
  std::vector<std::string> keys;
  std::vector<std::unique_ptr<KvLabMethod>> methods;
  std::vector<EvalSpec> specs;
  for (int t = 0; t < s.n_tensors; ++t) {
    for (const int b : menu) {
      const KvMethodSpec p = probe_spec(uniform, s.n_tensors, t, b);
      if (calib.probes->count(p.label()) != 0 ||
          std::find(keys.begin(), keys.end(), p.label()) != keys.end()) {
        continue;  // measured, or in this batch (alloc=sens: the uniform itself, once per t)
      }
      keys.push_back(p.label());
      methods.push_back(make_kv_lab_method(p, c, calib));
      specs.push_back(kv_lab_eval(*calib.model, *methods.back(), EvalMode::Decode, ctx));
    }
  }
  if (!specs.empty()) {
    PplOptions opt;
    opt.ctx = ctx;
    opt.max_windows = calib.windows.max_windows;
    opt.kld_reference = calib.model;
    const std::vector<PplResult> r = perplexity_many(specs, *calib.stream, opt);
    for (size_t i = 0; i < r.size(); ++i) (*calib.probes)[keys[i]] = r[i].kld;
  }
  for (int t = 0; t < s.n_tensors; ++t) {
    for (const int b : menu) {
      s.cost.push_back(calib.probes->at(probe_spec(uniform, s.n_tensors, t, b).label()));
    }
  }
  return s;
}

KvMethodSpec allocate_kv_layers(const KvMethodSpec& spec, const LlamaConfig& c,
                                const KvLabCalibration& calib) {
  WKVQ_REQUIRE(spec.alloc && spec.family == KvFamily::Int && spec.bits != 0, "--kv-method ",
               spec.label(), ": alloc=sens shares out the bits of an int method's quantizer");
  const int tensors = 2 * c.n_layers;
  const int64_t total = kv_alloc_total(spec, c.n_layers);
  KvSensitivity s = measure_kv_sensitivity(spec, kv_alloc_menu(spec, total, tensors), c, calib);
  make_kv_sensitivity_monotone(s);
  KvMethodSpec out = spec;
  out.layer_bits = allocate_kv_bits(s, total);
  return out;
}

}  // namespace wkvq
