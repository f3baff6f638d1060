#include "plot/axis.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace wkvq {

namespace {
constexpr int kTargetTicks = 5;
constexpr double kMaxWaste = 1.5;  // whole ticks may cover at most this times the data
constexpr double kMaxTicks = 9;
constexpr int kMaxDecadeLabels = 6;  // a log axis over more decades labels every 2nd, 3rd, ...
constexpr double kRel = 1e-9;        // tolerance of tick arithmetic, relative to the step
}  // namespace

double nice_step(double lo, double hi, int target) {
  const double raw = (hi - lo) / target;
  WKVQ_REQUIRE(raw > 0 && std::isfinite(raw), "axis: an empty or infinite range [", lo, ", ", hi,
               "]");
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= raw * (1 - kRel)) return m * p;
  }
  return 10 * p;
}

std::string linear_tick_label(double v, double step) {
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + kRel)));
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, std::abs(v) < step * kRel ? 0.0 : v);
  return b;
}

std::string log_tick_label(double v) {
  char b[64];
  if (v >= 1e-4 && v < 1e5) {
    std::snprintf(b, sizeof b, "%.4g", v);
  } else {
    std::snprintf(b, sizeof b, "%.0e", v);
  }
  return b;
}

Axis::Axis(double lo, double hi, double px_lo, double px_hi, bool log)
    : lo_(lo), hi_(hi), px_lo_(px_lo), px_hi_(px_hi), log_(log) {
  WKVQ_REQUIRE(std::isfinite(lo) && std::isfinite(hi) && lo < hi,
               "axis: bounds must be finite "
               "with lo < hi, got [",
               lo, ", ", hi, "]");
  WKVQ_REQUIRE(!log || lo > 0, "axis: a log axis needs positive values, got lo = ", lo);
}

Axis Axis::linear(double lo, double hi, double px_lo, double px_hi, double pad) {
  WKVQ_REQUIRE(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && pad >= 0,
               "axis: bounds must be finite with lo <= hi, got [", lo, ", ", hi, "] (pad ", pad,
               ")");
  if (lo == hi) {
    const double half = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= half;
    hi += half;
  }
  const double span = hi - lo;
  lo -= pad * span;
  hi += pad * span;
  double step = nice_step(lo, hi, kTargetTicks);
  if (pad == 0) {  // the next smaller step when whole ticks would waste much of the axis
    const double finer = nice_step(lo, hi, 2 * kTargetTicks);
    const double covered = (std::ceil(hi / step - kRel) - std::floor(lo / step + kRel)) * step;
    const double n_finer = std::ceil(hi / finer - kRel) - std::floor(lo / finer + kRel) + 1;
    if (covered > kMaxWaste * span && finer < step && n_finer <= kMaxTicks) step = finer;
  }
  const double first = pad > 0 ? std::ceil(lo / step - kRel) : std::floor(lo / step + kRel);
  const double last = pad > 0 ? std::floor(hi / step + kRel) : std::ceil(hi / step - kRel);
  Axis a(pad > 0 ? lo : first * step, pad > 0 ? hi : last * step, px_lo, px_hi, false);
  for (double i = first; i <= last; ++i) {
    a.ticks_.push_back({i * step, linear_tick_label(i * step, step)});
  }
  return a;
}

Axis Axis::log10(double lo, double hi, double px_lo, double px_hi) {
  WKVQ_REQUIRE(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi,
               "axis: a log axis needs finite 0 < lo <= hi, got [", lo, ", ", hi, "]");
  int e0 = static_cast<int>(std::floor(std::log10(lo) + kRel));
  int e1 = static_cast<int>(std::ceil(std::log10(hi) - kRel));
  if (e1 == e0) ++e1;
  Axis a(std::pow(10.0, e0), std::pow(10.0, e1), px_lo, px_hi, true);
  const bool minor = e1 - e0 <= 2;
  const int stride = (e1 - e0 + kMaxDecadeLabels - 1) / kMaxDecadeLabels;  // many decades
  for (int e = e0; e <= e1; ++e) {
    if ((e - e0) % stride != 0) continue;
    for (const double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && (!minor || e == e1)) continue;
      const double v = m * std::pow(10.0, e);
      a.ticks_.push_back({v, log_tick_label(v)});
    }
  }
  return a;
}

Axis Axis::fixed(double lo, double hi, double px_lo, double px_hi, std::vector<Tick> ticks) {
  Axis a(lo, hi, px_lo, px_hi, false);
  for (const Tick& t : ticks) {
    WKVQ_REQUIRE(t.value >= lo && t.value <= hi, "axis: tick ", t.value, " outside [", lo, ", ", hi,
                 "]");
  }
  a.ticks_ = std::move(ticks);
  return a;
}

double Axis::t(double v) const { return log_ ? std::log10(v) : v; }

bool Axis::can_show(double v) const { return std::isfinite(v) && (!log_ || v > 0); }

double Axis::to_px(double v) const {
  WKVQ_ASSERT(can_show(v));
  return px_lo_ + (t(v) - t(lo_)) / (t(hi_) - t(lo_)) * (px_hi_ - px_lo_);
}

double Axis::from_px(double px) const {
  const double u = t(lo_) + (px - px_lo_) / (px_hi_ - px_lo_) * (t(hi_) - t(lo_));
  return log_ ? std::pow(10.0, u) : u;
}

}  // namespace wkvq
