#include "cli/ppl_kvlab.h"

#include <cstdio>
#include <memory>

#include "cli/calibration.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/ppl_options.h"
#include "core/error.h"
#include "kvlab/kv_sweep.h"

namespace wkvq::cli {

void KvLabCliOptions::add_to(CLI::App* cmd) {
  cmd->add_option(
      "--kv-method", method,
      "Evaluate a KV-cache method by simulation in decode mode (docs/kvlab.md): fp16, "
      "rtn, wkvq, wkvq2d, wkvq-rot, wkvq2d-rot, quarot, q4_0, q4_1, kivi, turbo, kvquant, "
      "with optional :b=BITS,g=GROUP,r=RESIDUAL,w=WINDOW (e.g. wkvq2d:b=4,g=32); "
      "the int methods also take alloc=sens (per-layer key and value bits from a sensitivity "
      "measured on --calib, same total bits) or kb=3.3.2.2.2,vb=2.2.2.2.3 (given per-layer "
      "bits); smoothing and static ranges come from --calib");
  cmd->add_flag("--kv-sweep", sweep,
                "One row per KV method and bit budget (--kv-budgets): the method's configuration "
                "with the most bits per element within the budget, decode-mode PPL, KLD and KLD "
                "minus the weights-only KLD; needs --calib");
  cmd->add_option("--kv-sweep-methods", methods,
                  "Methods of --kv-sweep, --kv-method specs separated by spaces (default: q4_0, "
                  "q4_1, kivi, turbo, quarot, rtn, wkvq, wkvq-rot, wkvq2d, wkvq2d-rot, "
                  "wkvq2d:w=8, wkvq2d-rot:w=8, kvquant)");
  cmd->add_option("--kv-budgets", budgets,
                  "Bit budgets of --kv-sweep, bits per K/V element (default 4.5,3.5,2.5)")
      ->delimiter(',');
}

namespace {

// The smoothing the KV lab's smoothed methods use: the model's own, else --kv-smooth stats,
// else statistics from --calib (null when there is no calibration text).
struct LabSetup {
  PreparedModel p;
  KvSmoothing stats;
  std::vector<int> calib;
  KvLabCalibration calibration;
};

std::unique_ptr<LabSetup> setup_lab(const KvLabRun& run, Model loaded, const Tokenizer& tok) {
  const QuantCliOptions& q = *run.quant;
  WKVQ_REQUIRE(
      !q.kv_given.bits && !q.kv_given.group && !q.kv_given.vbits && !q.kv_given.window &&
          !q.kv_given.meta && q.kv_auto == 0,
      "--kv-method/--kv-sweep choose the KV cache; leave out --kvbits, --kvgroup, "
      "--kv-vbits, --kv-meta, --kv-window and --kv-auto (a method takes b=, g=, kb=/vb= and "
      "w=; "
      "wkvq2d is the rel8 metadata)");
  auto s = std::make_unique<LabSetup>();
  s->p = prepare_model(std::move(loaded), q, &tok);
  s->calibration.fp = &s->p.fp;
  s->calibration.model = &s->p.model;
  s->calibration.windows = {q.calib_ctx, q.calib_windows, q.calib_sinks};
  if (!q.calib.empty()) {
    s->calib = calibration_tokens(tok, q.calib);
    s->calibration.stream = &s->calib;
  }
  if (s->p.smoothing.n_layers > 0) {
    s->calibration.smoothing = &s->p.smoothing;
  } else if (!q.calib.empty()) {
    s->stats =
        stats_smoothing(s->p.fp, s->calib, q.calib, q.calib_windows, q.calib_ctx, q.calib_sinks);
    s->calibration.smoothing = &s->stats;
  }
  return s;
}

void run_one_method(const KvLabCliOptions& k, const KvLabRun& run, const LabSetup& s) {
  const Model& m = s.p.model;
  const KvMethodSpec spec = parse_kv_method(k.method);
  if (spec.alloc) info("KV method %s: measuring the layers' sensitivity\n", k.method.c_str());
  const auto method = make_kv_lab_method(spec, m.config, s.calibration);
  PplOptions opt = run.opt;
  if (run.kld) opt.kld_reference = &s.p.fp;
  const int64_t ctx = ppl_window(m, opt.ctx);
  const EvalMode mode = run.mode.empty() ? EvalMode::Decode : parse_eval_mode(run.mode);
  WKVQ_REQUIRE(mode != EvalMode::Prefill,
               "--kv-method runs a decode mode; --mode prefill never "
               "reads the KV cache");
  info("evaluating %s with KV method %s in %s mode\n", s.p.describe().c_str(),
       method->spec().label().c_str(), eval_mode_name(mode));
  const PplResult r = perplexity_many({kv_lab_eval(m, *method, mode, ctx)}, *run.stream, opt)[0];
  if (run.json) {
    nlohmann::json j = ppl_result_json(r);
    j["text"] = run.text;
    j["weights"] = s.p.describe();
    j["kv_method"] = method->spec().label();
    j["kernels"] = kernels_json();
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s, KV method %s: %.4f bits per K/V element at ctx %lld\n", s.p.describe().c_str(),
                method->spec().label().c_str(), r.kv_bits_per_element,
                static_cast<long long>(r.ctx));
    std::printf("mode %s  ctx %lld  windows %lld  tokens %lld\n", r.mode.c_str(),
                static_cast<long long>(r.ctx), static_cast<long long>(r.windows),
                static_cast<long long>(r.tokens));
    std::printf("ppl %.4f +/- %.4f  (nll %.5f +/- %.5f nats/token)  %.1f s\n", r.ppl,
                r.ppl * r.nll_stderr, r.nll, r.nll_stderr, r.seconds);
    if (r.has_kld) std::printf("kld %.6f +/- %.6f nats/token\n", r.kld, r.kld_stderr);
  }
  print_memory(m, r.kv_bytes_per_token);
}

void print_sweep(const KvLabRun& run, const LabSetup& s, const std::vector<KvSweepRow>& rows,
                 const PplResult& w_only) {
  if (!run.json) {
    std::printf("KV sweep: %s on %s, %s, decode mode, ctx %lld, %lld windows, %lld tokens\n",
                s.p.fp.source.c_str(), run.text.c_str(), s.p.describe().c_str(),
                static_cast<long long>(w_only.ctx), static_cast<long long>(w_only.windows),
                static_cast<long long>(w_only.tokens));
    std::printf("weights only (float KV): PPL %.4f +/- %.4f, KLD %.5f +/- %.5f\n", w_only.ppl,
                w_only.ppl * w_only.nll_stderr, w_only.kld, w_only.kld_stderr);
    std::printf("%s", format_kv_sweep_table(rows, w_only.kld).c_str());
    return;
  }
  nlohmann::json arr = nlohmann::json::array();
  for (const KvSweepRow& r : rows) {
    nlohmann::json row = {{"budget", r.budget}, {"method", r.method}, {"config", r.config}};
    if (r.config.empty()) {
      row["min_bits"] = r.min_bits;
    } else {
      row["result"] = ppl_result_json(r.result);
      row["kld_minus_w_only"] = r.result.kld - w_only.kld;
    }
    arr.push_back(row);
  }
  nlohmann::json j = {{"model", s.p.fp.source},
                      {"text", run.text},
                      {"weights", s.p.describe()},
                      {"w_only", ppl_result_json(w_only)},
                      {"rows", arr},
                      {"kernels", kernels_json()}};
  std::printf("%s\n", j.dump().c_str());
}

void run_sweep(const KvLabCliOptions& k, const KvLabRun& run, const LabSetup& s) {
  const Model& m = s.p.model;
  WKVQ_REQUIRE(s.calibration.stream != nullptr, "--kv-sweep needs calibration text: --calib FILE");
  const int64_t ctx = ppl_window(m, run.opt.ctx);
  const KvShape shape{m.config.kv_dim(), m.config.head_dim, m.config.n_layers};
  const std::vector<std::string> names = k.methods.empty() ? default_kv_sweep_methods() : k.methods;
  std::vector<KvSweepRow> rows;
  std::vector<std::unique_ptr<KvLabMethod>> methods;  // one per evaluated row
  std::vector<EvalSpec> specs = {EvalSpec{&m, EvalMode::Prefill, {}, nullptr, {}, 0}};
  for (const double budget : k.budgets) {
    for (const std::string& name : names) {
      const KvMethodSpec base = parse_kv_method(name);
      KvSweepRow row;
      row.budget = budget;
      row.method = name;
      const auto cfg = kv_config_for_budget(base, shape, ctx, budget);
      if (!cfg) {
        row.min_bits = 1e9;
        for (const KvMethodSpec& c : kv_sweep_candidates(base, shape)) {
          row.min_bits = std::min(row.min_bits, kv_bits_per_element(c, shape, ctx));
        }
        rows.push_back(row);
        continue;
      }
      if (cfg->alloc) info("KV sweep: %s: measuring the layers' sensitivity\n", name.c_str());
      methods.push_back(make_kv_lab_method(*cfg, m.config, s.calibration));
      row.config = methods.back()->spec().label();  // alloc=sens: with the chosen bits
      specs.push_back(kv_lab_eval(m, *methods.back(), EvalMode::Decode, ctx));
      rows.push_back(row);
    }
  }
  info("KV sweep: %zu evaluations in decode mode, window by window\n", specs.size() - 1);
  PplOptions opt = run.opt;
  opt.kld_reference = &s.p.fp;
  const std::vector<PplResult> results = perplexity_many(specs, *run.stream, opt);
  size_t next = 1;
  for (KvSweepRow& r : rows) {
    if (!r.config.empty()) r.result = results[next++];
  }
  print_sweep(run, s, rows, results[0]);
  print_memory(m, 0);
}

}  // namespace

void run_kv_lab(const KvLabCliOptions& k, const KvLabRun& run, Model loaded, const Tokenizer& tok) {
  WKVQ_REQUIRE(!(k.sweep && !k.method.empty()), "--kv-method and --kv-sweep: give one of them");
  const auto s = setup_lab(run, std::move(loaded), tok);
  if (k.sweep) {
    run_sweep(k, run, *s);
  } else {
    run_one_method(k, run, *s);
  }
}

}  // namespace wkvq::cli
