// CrrOptions: validation and the record a resumed run must match (calibrate/crr.h).
#include <algorithm>
#include <sstream>

#include "calibrate/crr.h"
#include "core/error.h"

namespace wkvq {

int64_t crr_window(const LlamaConfig& c, const CrrOptions& opt) {
  return opt.window > 0 ? opt.window : std::min<int64_t>(2048, c.seq_len);
}

void CrrOptions::validate(const LlamaConfig& c) const {
  auto bits_ok = [](int b) { return b == 2 || b == 3 || b == 4 || b == 8; };
  WKVQ_REQUIRE(bits_ok(wbits) || wbits == 16, "calibration: --wbits must be 2, 3, 4, 8 or 16 ",
               "(floating point), got ", wbits);
  WKVQ_REQUIRE(bits_ok(kvbits) || kvbits == 16 || kvbits == 32,
               "calibration: --kvbits must be 2, 3, 4, 8, 16 or 32, got ", kvbits);
  WKVQ_REQUIRE(wgroup >= 0 && kvgroup >= 0, "calibration: group sizes must be >= 0");
  WKVQ_REQUIRE(k >= 0, "calibration: k must be >= 0, got ", k);
  WKVQ_REQUIRE(epochs >= 0, "calibration: epochs must be >= 0, got ", epochs);
  WKVQ_REQUIRE(samples >= 1, "calibration: need at least one sample window, got ", samples);
  WKVQ_REQUIRE(batch >= 1 && batch <= samples,
               "calibration: batch size must be in [1, samples = ", samples, "], got ", batch);
  const int64_t T = crr_window(c, *this);
  WKVQ_REQUIRE(T >= 1 && T <= c.seq_len, "calibration: window of ", T,
               " tokens outside [1, model context ", c.seq_len, "]");
  WKVQ_REQUIRE(lr_lwc >= 0 && lr_smooth >= 0, "calibration: learning rates must be >= 0");
  WKVQ_REQUIRE(!resume || !results_dir.empty(),
               "calibration: resume needs the results directory of the interrupted run");
}

std::string CrrOptions::record() const {
  std::ostringstream os;
  os.precision(17);
  os << "wkvq-crr 1\n"
     << "k=" << k << "\nepochs=" << epochs << "\nsamples=" << samples << "\nwindow=" << window
     << "\nbatch=" << batch << "\nlearn_lwc=" << learn_lwc << "\nlearn_smooth=" << learn_smooth
     << "\nstats_init=" << stats_init << "\nloss=" << (loss == CrrLoss::Mae ? "mae" : "mse")
     << "\npoq=" << poq << "\nwbits=" << wbits << "\nwgroup=" << wgroup << "\nkvbits=" << kvbits
     << "\nkvgroup=" << kvgroup << "\nlr_lwc=" << lr_lwc << "\nlr_smooth=" << lr_smooth
     << "\nlwc_init=" << lwc_init << "\nseed=" << seed << "\n";
  return os.str();
}

}  // namespace wkvq
