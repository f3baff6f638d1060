#include "plot/kv_ranges_figure.h"

#include <cstdio>

#include "core/error.h"
#include "plot/line_panel.h"

namespace wkvq {

namespace {

constexpr double kPlotW = 420, kPlotH = 150, kColumnGap = 12, kHeaderH = 92;
const PanelMargins kMargins;
const char* const kStageColors[] = {"#7f7f7f", "#0072b2", "#d55e00", "#009e73"};

// Ticks at the first channel of every head (every few heads when there are many).
std::vector<Tick> channel_ticks(int64_t kv_dim, int64_t head_dim) {
  const int64_t heads = kv_dim / head_dim;
  const int64_t every = heads <= 8 ? 1 : (heads + 7) / 8;
  std::vector<Tick> t;
  for (int64_t h = 0; h < heads; h += every) {
    t.push_back({static_cast<double>(h * head_dim), std::to_string(h * head_dim)});
  }
  return t;
}

PanelSpec channel_panel(const KvRangeStages& st, int layer, bool key, int64_t head_dim) {
  const int64_t c = st.stats.kv_dim;
  PanelSpec p;
  p.title = "layer " + std::to_string(layer) + (key ? ": K (after RoPE)" : ": V");
  p.x_label = "channel (kv head × " + std::to_string(head_dim) + " + d)";
  p.y_label = key ? "K min / max" : "V min / max";
  p.x_range = {{-0.5, static_cast<double>(c) - 0.5}};
  p.x_ticks = channel_ticks(c, head_dim);
  for (int64_t g = head_dim; g < c; g += head_dim)
    p.x_guides.push_back(static_cast<double>(g) - 0.5);
  for (size_t s = 0; s < st.stages.size(); ++s) {
    const KvGroupRanges& r = st.stages[s].range;
    WKVQ_ASSERT(r.n_groups == c);
    Band b;
    b.name = st.stages[s].name;
    b.color = kStageColors[s % 4];
    b.opacity = s == 0 ? 0.3 : 0.0;  // the raw range filled, the transformed ones as lines
    const size_t o = static_cast<size_t>(layer) * static_cast<size_t>(c);
    for (int64_t i = 0; i < c; ++i) {
      b.x.push_back(static_cast<double>(i));
      b.lo.push_back((key ? r.klo : r.vlo)[o + static_cast<size_t>(i)]);
      b.hi.push_back((key ? r.khi : r.vhi)[o + static_cast<size_t>(i)]);
    }
    p.bands.push_back(std::move(b));
  }
  return p;
}

std::string subtitle(const KvRangeStages& st) {
  char b[200];
  std::snprintf(b, sizeof b,
                "min and max of every channel over %lld calibration tokens; smoothing: %s",
                static_cast<long long>(st.stats.tokens),
                st.model_smoothing ? "the model's own" : "from these statistics");
  return b;
}

}  // namespace

std::string kv_ranges_svg(const KvRangeStages& st, const std::string& title,
                          const std::vector<int>& layers, int64_t head_dim) {
  WKVQ_REQUIRE(!layers.empty(), "KV range figure: no layer to draw");
  for (const int l : layers) {
    WKVQ_REQUIRE(l >= 0 && l < st.stats.n_layers, "KV range figure: layer ", l,
                 " out of range; the model has layers 0..", st.stats.n_layers - 1);
  }
  const double col_w = kMargins.left + kPlotW + kMargins.right;
  const double row_h = kMargins.top + kPlotH + kMargins.bottom;
  const double width = 2 * col_w + kColumnGap;
  SvgDocument doc(width, kHeaderH + row_h * static_cast<double>(layers.size()));
  doc.text({width / 2, 22}, title, {15, TextAnchor::Middle, true}, "figure-title");
  doc.text({width / 2, 42}, subtitle(st), {kFontSize, TextAnchor::Middle}, "subtitle");
  if (!st.note.empty()) doc.text({width / 2, 58}, st.note, {kFontSize, TextAnchor::Middle}, "note");
  const PanelSpec first = channel_panel(st, layers[0], true, head_dim);
  const auto entries = legend_entries(first);
  const Box lb = legend_size(entries, static_cast<int>(entries.size()));
  draw_legend(doc, entries, {(width - lb.w) / 2, kHeaderH - lb.h - 8},
              static_cast<int>(entries.size()));
  for (size_t i = 0; i < layers.size(); ++i) {
    for (const bool key : {true, false}) {
      const Box area{(key ? 0 : col_w + kColumnGap) + kMargins.left,
                     kHeaderH + row_h * static_cast<double>(i) + kMargins.top, kPlotW, kPlotH};
      doc.open_group("cell", {{"layer", std::to_string(layers[i])}, {"kv", key ? "K" : "V"}});
      draw_panel(doc, channel_panel(st, layers[i], key, head_dim), area);
      doc.close_group();
    }
  }
  return doc.str();
}

}  // namespace wkvq
