// ppl's shared output (cli/ppl_options.h).
#include <chrono>
#include <cmath>

#include "cli/common.h"
#include "cli/console.h"
#include "cli/ppl_options.h"

namespace wkvq::cli {

nlohmann::json ppl_result_json(const PplResult& r) {
  nlohmann::json j = {{"ppl", r.ppl},
                      {"nll", r.nll},
                      {"nll_stderr", r.nll_stderr},
                      {"ppl_stderr", r.ppl * r.nll_stderr},
                      {"tokens", r.tokens},
                      {"windows", r.windows},
                      {"ctx", r.ctx},
                      {"mode", r.mode},
                      {"stream_tokens", r.stream_tokens},
                      {"kv_bits_per_element", r.kv_bits_per_element},
                      {"kv_bytes_per_token", r.kv_bytes_per_token},
                      {"seconds", r.seconds}};
  if (r.has_kld) {
    j["kld"] = r.kld;
    j["kld_stderr"] = r.kld_stderr;
  }
  return j;
}

PplProgress ppl_progress_printer() {
  const auto started = std::chrono::steady_clock::now();
  const bool tty = progress_on_tty();
  return [started, tty](int64_t done, int64_t total, double nll) {
    const double el = seconds_since(started);
    if (tty) {
      info("\rwindow %lld/%lld  ppl %.4f  elapsed %.1f s  eta %.1f s   ",
           static_cast<long long>(done), static_cast<long long>(total), std::exp(nll), el,
           el / static_cast<double>(done) * static_cast<double>(total - done));
      if (done == total) info("\n");
    } else if (done == total) {
      info("windows %lld/%lld  ppl %.4f  %.1f s\n", static_cast<long long>(done),
           static_cast<long long>(total), std::exp(nll), el);
    }
  };
}

}  // namespace wkvq::cli
