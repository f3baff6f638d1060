#include "plot/kv_sweep_figure.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "plot/line_panel.h"

namespace wkvq {

namespace {

constexpr double kPlotW = 560, kPlotH = 400, kHeaderH = 40, kLegendGap = 24;
const PanelMargins kMargins;
// Colour-blind-safe colours, cycled with five markers (40 distinct styles), dashed after the
// first round of colours.
const char* const kColors[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                               "#e69f00", "#56b4e9", "#000000", "#8c564b"};
constexpr MarkerShape kMarkers[] = {MarkerShape::Circle, MarkerShape::Square, MarkerShape::Triangle,
                                    MarkerShape::Diamond, MarkerShape::TriangleDown};

PanelSpec sweep_panel(const KvSweepData& d) {
  PanelSpec p;
  p.x_pad = 0.04;
  p.x_label = "bits per K/V element (codes + metadata + fp16 windows)";
  p.y_label = "KLD from the float model (nats/token)";
  p.log_y = true;
  for (size_t i = 0; i < d.methods.size(); ++i) {
    const KvSweepMethod& m = d.methods[i];
    Series s;
    s.name = m.name;
    s.color = kColors[i % 8];
    s.dash = i / 8 % 2 == 1 ? "5 3" : "";
    s.marker = kMarkers[i % 5];
    for (const KvSweepPoint& pt : m.points) {
      s.x.push_back(pt.bits);
      s.y.push_back(pt.kld);
      s.y_err.push_back(pt.kld_stderr);
    }
    p.series.push_back(std::move(s));
  }
  if (d.w_only_kld > 0) {
    char b[96];
    std::snprintf(b, sizeof b, "weights only, float KV (%.4g)", d.w_only_kld);
    p.refs.push_back({b, d.w_only_kld, "#555555", "6 4"});
  }
  return p;
}

std::string subtitle(const KvSweepData& d) {
  namespace fs = std::filesystem;
  std::string s = fs::path(d.model).filename().string() + " | " + d.weights + " | " +
                  fs::path(d.text).filename().string();
  char b[160];
  std::snprintf(b, sizeof b, " | decode, ctx %lld, %lld windows (%lld tokens)",
                static_cast<long long>(d.ctx), static_cast<long long>(d.windows),
                static_cast<long long>(d.tokens));
  return s + b;
}

}  // namespace

std::string kv_sweep_svg(const KvSweepData& d, const std::string& title) {
  const PanelSpec p = sweep_panel(d);
  const auto entries = legend_entries(p);
  const Box lb = legend_size(entries, 1);
  const double plot_right = kMargins.left + kPlotW;
  std::string foot;
  if (d.w_only_kld <= 0) foot = "weights-only KLD is 0 (float weights): no reference line";
  for (const std::string& u : d.unfit) foot += (foot.empty() ? "" : "; ") + u + " fits no budget";
  const std::string sub = subtitle(d);
  double width = plot_right + kLegendGap + lb.w + 16;
  width = std::max({width, text_width_estimate(sub, kFontSize) + 24,
                    text_width_estimate(foot, kFontSize - 1) + 24});
  const double height =
      kHeaderH + kMargins.top + std::max(kPlotH, lb.h) + kMargins.bottom + (foot.empty() ? 8 : 26);
  SvgDocument doc(width, height);
  doc.text({width / 2, 22}, title, {15, TextAnchor::Middle, true}, "figure-title");
  doc.text({width / 2, 42}, sub, {kFontSize, TextAnchor::Middle}, "subtitle");
  const Box area{kMargins.left, kHeaderH + kMargins.top, kPlotW, kPlotH};
  draw_panel(doc, p, area);
  draw_legend(doc, entries, {plot_right + kLegendGap, area.y}, 1);
  if (!foot.empty()) {
    doc.text({12, height - 10}, foot, {kFontSize - 1}, "note");
  }
  return doc.str();
}

}  // namespace wkvq
