#include "eval/ablation.h"

#include <cstdio>
#include <sstream>

namespace wkvq {

std::vector<AblationRow> run_ablation(const Model& fp, const std::vector<AblationRung>& rungs,
                                      const std::vector<int>& stream, const PplOptions& base,
                                      const std::function<void(const std::string&)>& progress) {
  std::vector<AblationRow> rows;
  for (const AblationRung& r : rungs) {
    AblationRow row;
    row.rung = r.name;
    PplOptions o = base;
    o.kv = r.kv;
    o.smoothing = r.smoothing;
    o.kld_reference = &fp;
    o.mode = r.kv.poq ? EvalMode::Decode : EvalMode::DecodeNoPoq;
    row.decode = perplexity(*r.model, stream, o);
    o.mode = EvalMode::Prefill;
    row.prefill = perplexity(*r.model, stream, o);
    if (progress) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%-34s decode %.4f  prefill %.4f  (%.1f s)", r.name.c_str(),
                    row.decode.ppl, row.prefill.ppl, row.decode.seconds + row.prefill.seconds);
      progress(buf);
    }
    rows.push_back(row);
  }
  return rows;
}

std::string format_ablation_table(const std::vector<AblationRow>& rows) {
  std::ostringstream os;
  char buf[512];
  std::snprintf(buf, sizeof buf, "| %-34s | %-21s | %-17s | %-21s | %-17s |\n", "rung",
                "decode PPL", "decode KLD", "prefill PPL", "prefill KLD");
  os << buf;
  os << "|" << std::string(36, '-') << "|" << std::string(23, '-') << "|" << std::string(19, '-')
     << "|" << std::string(23, '-') << "|" << std::string(19, '-') << "|\n";
  for (const AblationRow& r : rows) {
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
    std::snprintf(buf, sizeof buf, "| %-34s | %-21s | %-17s | %-21s | %-17s |\n", r.rung.c_str(),
                  ppl(r.decode).c_str(), kld(r.decode).c_str(), ppl(r.prefill).c_str(),
                  kld(r.prefill).c_str());
    os << buf;
  }
  return os.str();
}

}  // namespace wkvq
