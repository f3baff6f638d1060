// One panel of a figure: axes with ticks, tick labels, axis labels and a title around a plot
// area, holding series (polylines with optional markers and error bars), bands (a range filled
// between a lower and an upper line) and horizontal reference lines; and the legend of a figure.
//
// The SVG it writes is structured for readers and tests: <g class="panel" data-title=...> holds
// <g class="x-axis">/<g class="y-axis"> with one <g class="tick"><line/><text>LABEL</text></g>
// per tick, then <g class="series|band|reference" data-name=NAME> per item; a series holds one
// <polyline class="line"> per unbroken run of points (a point the axis cannot show, NaN or <= 0
// on a log axis, breaks the line; a run of one point is a polyline of one point, drawn by its
// marker) and its markers; a band a <polygon class="fill"> (unless its
// opacity is 0), <polyline class="hi"> and <polyline class="lo">. An empty title draws none.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plot/axis.h"
#include "plot/svg_document.h"

namespace wkvq {

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> y_err;  // empty, or one error bar half-length per point
  std::string color = "#000000";
  std::string dash;  // "" = solid
  std::optional<MarkerShape> marker;
};

struct Band {
  std::string name;
  std::vector<double> x, lo, hi;
  std::string color = "#000000";
  double opacity = 0.25;  // of the fill; 0: the two lines only
};

struct RefLine {
  std::string name;
  double y = 0;
  std::string color = "#000000";
  std::string dash = "6 4";
};

struct PanelSpec {
  std::string title, x_label, y_label;
  bool log_y = false;
  std::vector<Band> bands;  // drawn first, then the series, then the reference lines
  std::vector<Series> series;
  std::vector<RefLine> refs;
  // A fixed x range with these ticks (else the data's range, nice ticks), and x positions of
  // light vertical guide lines (e.g. head boundaries).
  std::optional<std::pair<double, double>> x_range;
  std::vector<Tick> x_ticks;
  std::vector<double> x_guides;
  double x_pad = 0;  // > 0: the data's x range widened by this fraction each side (Axis::linear)
};

// Room the panel's labels need around its plot area, pixels.
struct PanelMargins {
  double left = 62, right = 12, top = 24, bottom = 40;
};

struct Box {
  double x = 0, y = 0, w = 0, h = 0;
};

// Draws `p` with its plot area `area` (labels go into the margins around it). Throws when the
// panel has nothing to show or a log axis has no positive value.
void draw_panel(SvgDocument& doc, const PanelSpec& p, const Box& area);

struct LegendEntry {
  std::string name;
  std::string color;
  std::string dash;
  std::optional<MarkerShape> marker;
  double fill_opacity = 0;  // > 0: a filled swatch (a band's)
};

// The entries of a panel's bands, series and reference lines, in that order.
std::vector<LegendEntry> legend_entries(const PanelSpec& p);
// Width and height of the legend of `entries` laid out in `columns` columns.
Box legend_size(const std::vector<LegendEntry>& entries, int columns);
// Draws it with its top left corner at `at` (<g class="legend">, one <g class="entry"
// data-name=NAME> per entry).
void draw_legend(SvgDocument& doc, const std::vector<LegendEntry>& entries, Point at, int columns);

inline constexpr double kFontSize = 12.0;
inline constexpr double kTitleSize = 13.0;

}  // namespace wkvq
