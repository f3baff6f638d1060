// CrrOptions: validation and the record a resumed run must match (calibrate/crr.h).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>

#include "calibrate/crr.h"
#include "core/error.h"
#include "formats/kv_quant.h"

namespace wkvq {

int64_t crr_window(const LlamaConfig& c, const CrrOptions& opt) {
  return opt.window > 0 ? opt.window : std::min<int64_t>(256, c.seq_len);
}

void CrrOptions::validate(const LlamaConfig& c) const {
  auto bits_ok = [](int b) { return b == 2 || b == 3 || b == 4 || b == 8; };
  WKVQ_REQUIRE(bits_ok(wbits) || wbits == 16, "calibration: --wbits must be 2, 3, 4, 8 or 16 ",
               "(floating point), got ", wbits);
  validate_kv_settings(kv, c.kv_dim());
  WKVQ_REQUIRE(wgroup >= 0, "calibration: the weight group size must be >= 0");
  WKVQ_REQUIRE(k >= 0, "calibration: k must be >= 0, got ", k);
  WKVQ_REQUIRE(epochs >= 0, "calibration: epochs must be >= 0, got ", epochs);
  WKVQ_REQUIRE(samples >= 1, "calibration: need at least one sample window, got ", samples);
  WKVQ_REQUIRE(batch >= 1 && batch <= samples,
               "calibration: batch size must be in [1, samples = ", samples, "], got ", batch);
  const int64_t T = crr_window(c, *this);
  WKVQ_REQUIRE(T >= 1 && T <= c.seq_len, "calibration: window of ", T,
               " tokens outside [1, model context ", c.seq_len, "]");
  WKVQ_REQUIRE(stats_windows >= 1 && stats_ctx >= 0,
               "calibration: statistics need >= 1 window of >= 0 tokens (0: default), got ",
               stats_windows, " of ", stats_ctx);
  WKVQ_REQUIRE(lr_lwc >= 0 && lr_smooth >= 0, "calibration: learning rates must be >= 0");
  WKVQ_REQUIRE(!frozen_weights || !learn_lwc,
               "calibration: the weights are frozen (an already quantized model): learned "
               "weight clipping (lwc) does not apply; learn smooth only");
  WKVQ_REQUIRE(!resume || !results_dir.empty(),
               "calibration: resume needs the results directory of the interrupted run");
}

std::string CrrOptions::record() const {
  std::ostringstream os;
  os.precision(17);
  os << "wkvq-crr 1\n"
     << "k=" << k << "\nepochs=" << epochs << "\nsamples=" << samples << "\nwindow=" << window
     << "\nbatch=" << batch << "\nlearn_lwc=" << learn_lwc << "\nlearn_smooth=" << learn_smooth()
     << "\nstats_init=" << smooth_from_stats() << "\nstats_windows=" << stats_windows
     << "\nstats_ctx=" << stats_ctx << "\nloss=" << (loss == CrrLoss::Mae ? "mae" : "mse")
     << "\npoq=" << kv.poq << "\nwbits=" << wbits << "\nwgroup=" << wgroup << "\nkvbits=" << kv.bits
     << "\nkvgroup=" << kv.group << "\nlr_lwc=" << lr_lwc << "\nlr_smooth=" << lr_smooth
     << "\nlwc_init=" << lwc_init << "\nseed=" << seed << "\n";
  if (frozen_weights) os << "frozen_weights=1\n";  // absent (the records before it): false
  // The KV format beyond bits and group, absent when at its default (the records before them)
  if (kv.vbits != 0) os << "kvvbits=" << kv.vbits << "\n";
  if (kv.window != 0) os << "kvwindow=" << kv.window << "\n";
  if (kv.rel8) os << "kvmeta=rel8\n";
  return os.str();
}

namespace {

// One "key=value" field of a record: parsers that throw with the line on anything malformed.
struct RecordField {
  std::string key, value;
  [[noreturn]] void bad(const std::string& why) const {
    fail("calibration options: '", key, "=", value, "': ", why);
  }
  int64_t integer() const {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(value, &used);
    } catch (const std::exception&) {
      bad("expected an integer");
    }
    if (used != value.size()) bad("expected an integer");
    return v;
  }
  uint64_t unsigned_integer() const {
    size_t used = 0;
    unsigned long long v = 0;
    try {
      v = std::stoull(value, &used);
    } catch (const std::exception&) {
      bad("expected an unsigned integer");
    }
    if (used != value.size() || value.empty() || value[0] == '-') {
      bad("expected an unsigned integer");
    }
    return v;
  }
  double real() const {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(value, &used);
    } catch (const std::exception&) {
      bad("expected a number");
    }
    if (used != value.size()) bad("expected a number");
    return v;
  }
  bool boolean() const {
    if (value != "0" && value != "1") bad("expected 0 or 1");
    return value == "1";
  }
};

}  // namespace

CrrOptions CrrOptions::parse_record(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  WKVQ_REQUIRE(std::getline(in, line) && line == "wkvq-crr 1",
               "calibration options: expected the first line 'wkvq-crr 1', found '", line,
               "'; the options file was not written by this version of wkvq");
  CrrOptions o;
  bool learn_smooth = false;
  const std::map<std::string, std::function<void(const RecordField&)>> setters = {
      {"k", [&](const RecordField& f) { o.k = static_cast<int>(f.integer()); }},
      {"epochs", [&](const RecordField& f) { o.epochs = static_cast<int>(f.integer()); }},
      {"samples", [&](const RecordField& f) { o.samples = f.integer(); }},
      {"window", [&](const RecordField& f) { o.window = f.integer(); }},
      {"batch", [&](const RecordField& f) { o.batch = f.integer(); }},
      {"learn_lwc", [&](const RecordField& f) { o.learn_lwc = f.boolean(); }},
      {"learn_smooth", [&](const RecordField& f) { learn_smooth = f.boolean(); }},
      {"stats_init", [&](const RecordField& f) { o.stats_init = f.boolean(); }},
      {"stats_windows", [&](const RecordField& f) { o.stats_windows = f.integer(); }},
      {"stats_ctx", [&](const RecordField& f) { o.stats_ctx = f.integer(); }},
      {"loss",
       [&](const RecordField& f) {
         if (f.value != "mae" && f.value != "mse") f.bad("expected mae or mse");
         o.loss = f.value == "mae" ? CrrLoss::Mae : CrrLoss::Mse;
       }},
      {"poq", [&](const RecordField& f) { o.kv.poq = f.boolean(); }},
      {"wbits", [&](const RecordField& f) { o.wbits = static_cast<int>(f.integer()); }},
      {"wgroup", [&](const RecordField& f) { o.wgroup = f.integer(); }},
      {"kvbits", [&](const RecordField& f) { o.kv.bits = static_cast<int>(f.integer()); }},
      {"kvgroup", [&](const RecordField& f) { o.kv.group = f.integer(); }},
      {"lr_lwc", [&](const RecordField& f) { o.lr_lwc = f.real(); }},
      {"lr_smooth", [&](const RecordField& f) { o.lr_smooth = f.real(); }},
      {"lwc_init", [&](const RecordField& f) { o.lwc_init = static_cast<float>(f.real()); }},
      {"seed", [&](const RecordField& f) { o.seed = f.unsigned_integer(); }},
      {"frozen_weights", [&](const RecordField& f) { o.frozen_weights = f.boolean(); }},
      {"kvvbits", [&](const RecordField& f) { o.kv.vbits = static_cast<int>(f.integer()); }},
      {"kvwindow", [&](const RecordField& f) { o.kv.window = f.integer(); }},
      {"kvmeta", [&](const RecordField& f) {
         if (f.value != "rel8") f.bad("expected rel8 (fp16 metadata is recorded by absence)");
         o.kv.rel8 = true;
       }}};
  // Keys a record may leave out (their defaults): those added after the first records.
  const auto optional_key = [](const std::string& key) {
    return key == "frozen_weights" || key == "kvvbits" || key == "kvwindow" || key == "kvmeta";
  };
  std::map<std::string, bool> seen;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    WKVQ_REQUIRE(eq != std::string::npos, "calibration options: line '", line,
                 "' is not key=value");
    const RecordField f{line.substr(0, eq), line.substr(eq + 1)};
    const auto it = setters.find(f.key);
    WKVQ_REQUIRE(it != setters.end(), "calibration options: unknown key '", f.key, "'");
    WKVQ_REQUIRE(!seen[f.key], "calibration options: '", f.key, "' appears twice");
    seen[f.key] = true;
    it->second(f);
  }
  for (const auto& [key, setter] : setters) {
    WKVQ_REQUIRE(seen[key] || optional_key(key), "calibration options: '", key, "' is missing");
  }
  o.kv.smooth = learn_smooth   ? KvSmoothMode::Learned
                : o.stats_init ? KvSmoothMode::Stats
                               : KvSmoothMode::None;
  return o;
}

std::string CrrOptions::summary() const {
  std::string learn = learn_lwc && quantize_weights() ? "lwc" : "";
  if (learn_smooth() && quantize_kv()) learn += learn.empty() ? "smooth" : "+smooth";
  if (learn.empty()) learn = "nothing learned";
  if (frozen_weights) learn += " on frozen weights";
  const std::string win = window > 0 ? std::to_string(window) : "min(256, context)";
  std::string format;  // the KV format trained for, beyond bits and group
  if (quantize_kv() && kv.vbits != 0) format += ", values " + std::to_string(kv.vbits) + "-bit";
  if (quantize_kv() && kv.rel8) format += ", rel8 metadata";
  if (quantize_kv() && kv.window != 0) format += ", fp16 window " + std::to_string(kv.window);
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "%s, k=%d, %s, %d epochs, %lld windows of %s, batch %lld, lr lwc %g smooth %g, "
                "smoothing init %s, %s in training%s, seed %llu",
                learn.c_str(), k, loss == CrrLoss::Mae ? "mae" : "mse", epochs,
                static_cast<long long>(samples), win.c_str(), static_cast<long long>(batch), lr_lwc,
                lr_smooth, smooth_from_stats() ? "stats" : "identity", kv.poq ? "POQ" : "no POQ",
                format.c_str(), static_cast<unsigned long long>(seed));
  return buf;
}

QuantizationInfo CrrOptions::quant_info() const {
  QuantizationInfo q;
  q.method = "wkvquant";
  q.wbits = quantize_weights() ? wbits : 0;
  q.wgroup = quantize_weights() ? wgroup : 0;
  q.kv = kv;
  if (!quantize_kv()) q.kv.smooth = KvSmoothMode::None;
  q.calibration = summary();
  return q;
}

}  // namespace wkvq
