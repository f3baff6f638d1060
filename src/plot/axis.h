// Axis: the map between data values and pixels along one direction of a plot, linear or log10,
// and its ticks: 1, 2, 5 x 10^k steps on a linear axis, powers of ten (with 2 and 5 between them
// when the axis spans at most two decades; every 2nd, 3rd, ... power beyond six decades) on a log
// axis.
#pragma once

#include <string>
#include <vector>

namespace wkvq {

struct Tick {
  double value = 0;
  std::string label;
};

class Axis {
 public:
  // The axis over at least [lo, hi], drawn from pixel px_lo (where lo lands) to px_hi; px_lo >
  // px_hi is a y axis (y down). pad = 0: widened to whole ticks (a finer step when the coarse
  // one would cover more than 1.5x the data, if that gives at most 9 ticks); pad > 0: exactly [lo -
  // pad * (hi - lo), hi + pad * (hi - lo)] (points at the ends stay inside the frame), ticks
  // inside. lo == hi is widened around the value. Throws on non-finite bounds, lo > hi, or (log) lo
  // <= 0.
  static Axis linear(double lo, double hi, double px_lo, double px_hi, double pad = 0);
  static Axis log10(double lo, double hi, double px_lo, double px_hi);
  // [lo, hi] exactly, with the given ticks (their values inside [lo, hi]); linear.
  static Axis fixed(double lo, double hi, double px_lo, double px_hi, std::vector<Tick> ticks);

  bool is_log() const { return log_; }
  double lo() const { return lo_; }
  double hi() const { return hi_; }
  // Pixel of a data value and back: from_px(to_px(v)) == v up to rounding. A value outside the
  // axis maps beyond its ends; on a log axis, v must be > 0 (see can_show).
  double to_px(double v) const;
  double from_px(double px) const;
  bool can_show(double v) const;
  const std::vector<Tick>& ticks() const { return ticks_; }

 private:
  Axis(double lo, double hi, double px_lo, double px_hi, bool log);
  double t(double v) const;  // v in axis units (log10 on a log axis)
  double lo_, hi_, px_lo_, px_hi_;
  bool log_;
  std::vector<Tick> ticks_;
};

// The 1, 2, 5 x 10^k step closest above (hi - lo) / target.
double nice_step(double lo, double hi, int target);
// `v` printed with as many decimals as `step` needs ("0.25" for step 0.05, "-3" for step 1).
std::string linear_tick_label(double v, double step);
// A log tick: "0.01", "20", "1e-05" (plain decimals from 1e-4 to 1e5).
std::string log_tick_label(double v);

}  // namespace wkvq
