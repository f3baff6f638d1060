#include "eval/ablation.h"

#include <cstdio>

#include "eval/text_table.h"

namespace wkvq {

std::vector<AblationRow> run_ablation(const Model& fp, const std::vector<AblationRung>& rungs,
                                      const std::vector<int>& stream, const PplOptions& base,
                                      const PplProgress& progress) {
  std::vector<EvalSpec> specs;  // per rung: decode, prefill
  for (const AblationRung& r : rungs) {
    const EvalMode decode = r.kv.poq ? EvalMode::Decode : EvalMode::DecodeNoPoq;
    specs.push_back({r.model, decode, r.kv, r.smoothing});
    specs.push_back({r.model, EvalMode::Prefill, r.kv, r.smoothing});
  }
  PplOptions o = base;
  o.kld_reference = &fp;
  const std::vector<PplResult> results = perplexity_many(specs, stream, o, progress);
  std::vector<AblationRow> rows;
  for (size_t i = 0; i < rungs.size(); ++i) {
    rows.push_back({rungs[i].name, results[2 * i], results[2 * i + 1]});
  }
  return rows;
}

std::string format_ablation_table(const std::vector<AblationRow>& rows) {
  auto ppl = [](const PplResult& p) {
    char b[64];
    std::snprintf(b, sizeof b, "%.4f +/- %.4f", p.ppl, p.ppl * p.nll_stderr);
    return std::string(b);
  };
  auto kld = [](const PplResult& p) {
    char b[64];
    std::snprintf(b, sizeof b, "%.5f +/- %.5f", p.kld, p.kld_stderr);
    return std::string(b);
  };
  std::vector<std::vector<std::string>> cells = {
      {"rung", "decode PPL", "decode KLD", "prefill PPL", "prefill KLD"}};
  for (const AblationRow& r : rows) {
    cells.push_back({r.rung, ppl(r.decode), kld(r.decode), ppl(r.prefill), kld(r.prefill)});
  }
  return format_text_table(cells);
}

}  // namespace wkvq
