#include "plot/line_panel.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace wkvq {

namespace {

constexpr double kTickLen = 5, kMarkerSize = 7, kCapHalf = 3;
const char* const kAxisColor = "#333333";
const char* const kGridColor = "#e4e4e4";

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v, bool log) {
    if (!std::isfinite(v) || (log && v <= 0)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

Range x_range(const PanelSpec& p) {
  Range r;
  for (const Series& s : p.series) {
    for (const double v : s.x) r.add(v, false);
  }
  for (const Band& b : p.bands) {
    for (const double v : b.x) r.add(v, false);
  }
  return r;
}

Range y_range(const PanelSpec& p) {
  Range r;
  for (const Series& s : p.series) {
    WKVQ_REQUIRE(s.x.size() == s.y.size() && (s.y_err.empty() || s.y_err.size() == s.y.size()),
                 "plot: series '", s.name, "' has ", s.x.size(), " x values and ", s.y.size(),
                 " y values (", s.y_err.size(), " errors)");
    for (size_t i = 0; i < s.y.size(); ++i) {
      r.add(s.y[i], p.log_y);
      if (!s.y_err.empty()) {
        r.add(s.y[i] + s.y_err[i], p.log_y);
        if (!p.log_y) r.add(s.y[i] - s.y_err[i], false);  // log: a bar may end at the axis
      }
    }
  }
  for (const Band& b : p.bands) {
    WKVQ_REQUIRE(b.x.size() == b.lo.size() && b.x.size() == b.hi.size(), "plot: band '", b.name,
                 "' has ", b.x.size(), " x values, ", b.lo.size(), " lows, ", b.hi.size(),
                 " highs");
    for (size_t i = 0; i < b.x.size(); ++i) {
      r.add(b.lo[i], p.log_y);
      r.add(b.hi[i], p.log_y);
    }
  }
  for (const RefLine& l : p.refs) r.add(l.y, p.log_y);
  return r;
}

void draw_x_axis(SvgDocument& doc, const PanelSpec& p, const Box& a, const Axis& ax) {
  doc.open_group("x-axis", {{"log", "0"}});
  const double y0 = a.y + a.h;
  for (const Tick& t : ax.ticks()) {
    const double x = ax.to_px(t.value);
    doc.open_group("tick", {{"value", t.label}});
    doc.line({x, y0}, {x, y0 + kTickLen}, {kAxisColor, 1.0});
    doc.text({x, y0 + kTickLen + kFontSize}, t.label, {kFontSize, TextAnchor::Middle});
    doc.close_group();
  }
  doc.text({a.x + a.w / 2, y0 + kTickLen + 2.3 * kFontSize}, p.x_label,
           {kFontSize, TextAnchor::Middle}, "label");
  doc.close_group();
}

void draw_y_axis(SvgDocument& doc, const PanelSpec& p, const Box& a, const Axis& ay) {
  doc.open_group("y-axis", {{"log", ay.is_log() ? "1" : "0"}});
  double widest = 0;
  for (const Tick& t : ay.ticks()) {
    const double y = ay.to_px(t.value);
    doc.open_group("tick", {{"value", t.label}});
    doc.line({a.x - kTickLen, y}, {a.x, y}, {kAxisColor, 1.0});
    doc.text({a.x - kTickLen - 2, y + kFontSize * 0.35}, t.label, {kFontSize, TextAnchor::End});
    doc.close_group();
    widest = std::max(widest, text_width_estimate(t.label, kFontSize));
  }
  TextStyle ts{kFontSize, TextAnchor::Middle};
  ts.rotate = -90;
  const double lx = a.x - kTickLen - 2 - widest - 0.6 * kFontSize;
  doc.text({lx, a.y + a.h / 2}, p.y_label, ts, "label");
  doc.close_group();
}

void draw_grid(SvgDocument& doc, const PanelSpec& p, const Box& a, const Axis& ax, const Axis& ay) {
  doc.open_group("grid");
  for (const Tick& t : ay.ticks()) {
    const double y = ay.to_px(t.value);
    doc.line({a.x, y}, {a.x + a.w, y}, {kGridColor, 1.0});
  }
  for (const double g : p.x_guides) {
    if (g <= ax.lo() || g >= ax.hi()) continue;
    doc.line({ax.to_px(g), a.y}, {ax.to_px(g), a.y + a.h}, {"#c8c8c8", 1.0, "2 3"});
  }
  doc.close_group();
}

Paint stroke(const std::string& color, double width, const std::string& dash = "") {
  return {color, width, dash};
}

void draw_band(SvgDocument& doc, const Band& b, const Axis& ax, const Axis& ay) {
  doc.open_group("band", {{"name", b.name}});
  std::vector<Point> hi, lo;
  for (size_t i = 0; i < b.x.size(); ++i) {
    hi.push_back({ax.to_px(b.x[i]), ay.to_px(b.hi[i])});
    lo.push_back({ax.to_px(b.x[i]), ay.to_px(b.lo[i])});
  }
  if (b.opacity > 0) {
    std::vector<Point> outline = hi;
    outline.insert(outline.end(), lo.rbegin(), lo.rend());
    Paint fill;
    fill.fill = b.color;
    fill.opacity = b.opacity;
    doc.polygon(outline, fill, "fill");
  }
  doc.polyline(hi, stroke(b.color, 1.2), "hi");
  doc.polyline(lo, stroke(b.color, 1.2), "lo");
  doc.close_group();
}

void draw_error_bar(SvgDocument& doc, const Series& s, size_t i, const Axis& ax, const Axis& ay) {
  const double top = s.y[i] + s.y_err[i], bottom = s.y[i] - s.y_err[i];
  if (!ay.can_show(top)) return;
  const double x = ax.to_px(s.x[i]), y1 = ay.to_px(top);
  const double y0 = ay.can_show(bottom) ? ay.to_px(bottom) : ay.to_px(ay.lo());
  doc.line({x, y0}, {x, y1}, stroke(s.color, 1.0), "err");
  doc.line({x - kCapHalf, y1}, {x + kCapHalf, y1}, stroke(s.color, 1.0), "err");
  if (ay.can_show(bottom))
    doc.line({x - kCapHalf, y0}, {x + kCapHalf, y0}, stroke(s.color, 1.0), "err");
}

void draw_series(SvgDocument& doc, const Series& s, const Axis& ax, const Axis& ay) {
  doc.open_group("series", {{"name", s.name}});
  std::vector<Point> run;
  auto flush = [&] {
    if (!run.empty()) doc.polyline(run, stroke(s.color, 1.6, s.dash), "line");
    run.clear();
  };
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (!ax.can_show(s.x[i]) || !ay.can_show(s.y[i])) {
      flush();
      continue;
    }
    run.push_back({ax.to_px(s.x[i]), ay.to_px(s.y[i])});
  }
  flush();
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (!ax.can_show(s.x[i]) || !ay.can_show(s.y[i])) continue;
    if (!s.y_err.empty()) draw_error_bar(doc, s, i, ax, ay);
    if (s.marker) {
      Paint m{s.color, 1.0};
      m.fill = s.color;
      doc.marker({ax.to_px(s.x[i]), ay.to_px(s.y[i])}, *s.marker, kMarkerSize, m, "marker");
    }
  }
  doc.close_group();
}

}  // namespace

void draw_panel(SvgDocument& doc, const PanelSpec& p, const Box& a) {
  const Range rx = x_range(p), ry = y_range(p);
  WKVQ_REQUIRE(!ry.empty() && (p.x_range || !rx.empty()), "plot '", p.title, "': no value to show",
               p.log_y ? " (a log axis shows only values > 0)" : "");
  const Axis ax = p.x_range
                      ? Axis::fixed(p.x_range->first, p.x_range->second, a.x, a.x + a.w, p.x_ticks)
                      : Axis::linear(rx.lo, rx.hi, a.x, a.x + a.w);
  const Axis ay = p.log_y ? Axis::log10(ry.lo, ry.hi, a.y + a.h, a.y)
                          : Axis::linear(ry.lo, ry.hi, a.y + a.h, a.y);
  doc.open_group("panel", {{"title", p.title}});
  if (!p.title.empty()) {
    doc.text({a.x + a.w / 2, a.y - 0.6 * kTitleSize}, p.title,
             {kTitleSize, TextAnchor::Middle, true}, "title");
  }
  draw_grid(doc, p, a, ax, ay);
  for (const Band& b : p.bands) draw_band(doc, b, ax, ay);
  for (const Series& s : p.series) draw_series(doc, s, ax, ay);
  for (const RefLine& l : p.refs) {
    if (!ay.can_show(l.y)) continue;
    doc.open_group("reference", {{"name", l.name}});
    doc.line({a.x, ay.to_px(l.y)}, {a.x + a.w, ay.to_px(l.y)}, stroke(l.color, 1.4, l.dash),
             "line");
    doc.close_group();
  }
  doc.rect({a.x, a.y}, a.w, a.h, stroke(kAxisColor, 1.0), "frame");
  draw_x_axis(doc, p, a, ax);
  draw_y_axis(doc, p, a, ay);
  doc.close_group();
}

std::vector<LegendEntry> legend_entries(const PanelSpec& p) {
  std::vector<LegendEntry> e;
  for (const Band& b : p.bands) e.push_back({b.name, b.color, "", std::nullopt, b.opacity});
  for (const Series& s : p.series) e.push_back({s.name, s.color, s.dash, s.marker, 0});
  for (const RefLine& l : p.refs) e.push_back({l.name, l.color, l.dash, std::nullopt, 0});
  return e;
}

namespace {
constexpr double kSwatch = 28, kSwatchGap = 6, kColumnGap = 18, kRowHeight = 18;

double legend_column_width(const std::vector<LegendEntry>& entries) {
  double w = 0;
  for (const LegendEntry& e : entries) w = std::max(w, text_width_estimate(e.name, kFontSize));
  return kSwatch + kSwatchGap + w;
}
}  // namespace

Box legend_size(const std::vector<LegendEntry>& entries, int columns) {
  WKVQ_ASSERT(columns > 0);
  const auto rows = static_cast<double>((entries.size() + columns - 1) / columns);
  const double cw = legend_column_width(entries);
  return {0, 0, columns * cw + (columns - 1) * kColumnGap, rows * kRowHeight};
}

void draw_legend(SvgDocument& doc, const std::vector<LegendEntry>& entries, Point at, int columns) {
  WKVQ_ASSERT(columns > 0);
  const double cw = legend_column_width(entries) + kColumnGap;
  const auto rows = (entries.size() + columns - 1) / columns;
  doc.open_group("legend");
  for (size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const double x = at.x + static_cast<double>(i / rows) * cw;
    const double y = at.y + static_cast<double>(i % rows) * kRowHeight + kRowHeight / 2;
    doc.open_group("entry", {{"name", e.name}});
    if (e.fill_opacity > 0) {
      Paint f{e.color, 1.2};
      f.fill = e.color;
      f.opacity = e.fill_opacity;
      doc.rect({x, y - 5}, kSwatch, 10, f);
    } else {
      doc.line({x, y}, {x + kSwatch, y}, stroke(e.color, 1.6, e.dash));
    }
    if (e.marker) {
      Paint m{e.color, 1.0};
      m.fill = e.color;
      doc.marker({x + kSwatch / 2, y}, *e.marker, kMarkerSize, m);
    }
    doc.text({x + kSwatch + kSwatchGap, y + kFontSize * 0.35}, e.name, {kFontSize});
    doc.close_group();
  }
  doc.close_group();
}

}  // namespace wkvq
