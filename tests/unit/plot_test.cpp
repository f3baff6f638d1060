// The SVG writer (plot/svg_document.h), axes (plot/axis.h), panels (plot/line_panel.h) and the
// sweep file reader (plot/kv_sweep_data.h): escaping, the data <-> pixel map and its ticks, line
// breaks at points an axis cannot show, and bad sweep files refused with what was expected.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "plot/axis.h"
#include "plot/kv_sweep_data.h"
#include "plot/line_panel.h"
#include "plot/svg_document.h"

namespace wkvq {
namespace {

// svg_number writes 0.1 px: a point read back is within half of that of where it was drawn.
constexpr double kPixelRounding = 0.05;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

std::vector<double> tick_values(const Axis& a) {
  std::vector<double> v;
  for (const Tick& t : a.ticks()) v.push_back(t.value);
  return v;
}

TEST(SvgDocument, EscapesTextAndAttributes) {
  EXPECT_EQ(xml_escape("a<b & \"c\" 'd' >"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos; &gt;");
  SvgDocument doc(100, 50);
  doc.open_group("series", {{"name", "wkvq2d<w=8> & \"rot\""}});
  doc.text({1, 2}, "KLD < 0.5 & bits > 2", {});
  doc.close_group();
  const std::string s = doc.str();
  EXPECT_NE(s.find("data-name=\"wkvq2d&lt;w=8&gt; &amp; &quot;rot&quot;\""), std::string::npos);
  EXPECT_NE(s.find(">KLD &lt; 0.5 &amp; bits &gt; 2</text>"), std::string::npos);
  EXPECT_EQ(s.find("< 0.5"), std::string::npos);
  EXPECT_EQ(count(s, "<g "), count(s, "</g>"));
  EXPECT_NE(s.find("width=\"100\" height=\"50\" viewBox=\"0 0 100 50\""), std::string::npos);
}

TEST(SvgDocument, NumbersAndSizes) {
  EXPECT_EQ(svg_number(3.0), "3");
  EXPECT_EQ(svg_number(12.345), "12.3");
  EXPECT_EQ(svg_number(-0.04), "0");  // never "-0"
  EXPECT_EQ(svg_number(-7.5), "-7.5");
  EXPECT_THROW(svg_number(NAN), Error);
  EXPECT_THROW(SvgDocument(0, 10), Error);
  EXPECT_DOUBLE_EQ(text_width_estimate("abc", 10), 18.0);
  EXPECT_DOUBLE_EQ(text_width_estimate("a×b", 10), 18.0);  // code points, not bytes
}

TEST(Axis, LinearTicksCoverTheDataAndMapBack) {
  const Axis a = Axis::linear(0.13, 0.87, 100, 500);
  EXPECT_DOUBLE_EQ(a.lo(), 0.0);
  EXPECT_DOUBLE_EQ(a.hi(), 1.0);
  ASSERT_EQ(a.ticks().size(), 6u);
  EXPECT_EQ(a.ticks()[0].label, "0.0");
  EXPECT_EQ(a.ticks()[1].label, "0.2");
  EXPECT_EQ(a.ticks()[5].label, "1.0");
  EXPECT_DOUBLE_EQ(a.to_px(0.0), 100);
  EXPECT_DOUBLE_EQ(a.to_px(1.0), 500);
  EXPECT_DOUBLE_EQ(a.to_px(0.25), 200);
  const Axis y = Axis::linear(-23.7, 18.2, 300, 20);  // a y axis: lo at the bottom
  EXPECT_DOUBLE_EQ(y.lo(), -30);
  EXPECT_DOUBLE_EQ(y.hi(), 20);
  EXPECT_EQ(tick_values(y), (std::vector<double>{-30, -20, -10, 0, 10, 20}));
  EXPECT_EQ(y.ticks()[3].label, "0");
  EXPECT_GT(y.to_px(-23.7), y.to_px(18.2));
  const double units_per_px = (y.hi() - y.lo()) / 280;
  for (const double v : {-23.7, -1.234567, 0.0, 3.3, 18.2}) {
    EXPECT_NEAR(y.from_px(y.to_px(v)), v, 1e-12);
    const double drawn = std::stod(svg_number(y.to_px(v)));
    EXPECT_NEAR(y.from_px(drawn), v, kPixelRounding * units_per_px);
  }
}

TEST(Axis, PaddedLinearKeepsEndPointsInsideTheFrame) {
  const Axis a = Axis::linear(2.5, 4.5, 0, 100, 0.04);
  EXPECT_DOUBLE_EQ(a.lo(), 2.42);
  EXPECT_DOUBLE_EQ(a.hi(), 4.58);
  EXPECT_EQ(tick_values(a), (std::vector<double>{2.5, 3.0, 3.5, 4.0, 4.5}));
  EXPECT_GT(a.to_px(2.5), 0);
  EXPECT_LT(a.to_px(4.5), 100);
  const Axis tight = Axis::linear(-5.2, 5.1, 0, 100);  // step 5 would give [-10, 10]
  EXPECT_DOUBLE_EQ(tight.lo(), -6);
  EXPECT_DOUBLE_EQ(tight.hi(), 6);
  EXPECT_EQ(tight.ticks().size(), 7u);
  const Axis one = Axis::linear(5, 5, 0, 10);  // one value: widened around it
  EXPECT_LT(one.lo(), 5);
  EXPECT_GT(one.hi(), 5);
}

TEST(Axis, LogTicksAndMapping) {
  const Axis a = Axis::log10(0.03, 0.4, 200, 0);  // two decades: 1, 2, 5 ticks
  EXPECT_DOUBLE_EQ(a.lo(), 0.01);
  EXPECT_DOUBLE_EQ(a.hi(), 1.0);
  ASSERT_EQ(a.ticks().size(), 7u);
  const std::vector<std::string> labels = {"0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"};
  for (size_t i = 0; i < labels.size(); ++i) EXPECT_EQ(a.ticks()[i].label, labels[i]);
  EXPECT_NEAR(a.to_px(0.1), 100, 1e-9);  // a decade is half the axis
  EXPECT_NEAR(a.to_px(0.01), 200, 1e-9);
  for (const double v : {0.03, 0.1234, 0.4}) EXPECT_NEAR(a.from_px(a.to_px(v)), v, 1e-12 * v);
  EXPECT_FALSE(a.can_show(0.0));
  EXPECT_FALSE(a.can_show(-1.0));
  EXPECT_TRUE(a.can_show(5.0));  // beyond the axis, but a log value

  const Axis wide = Axis::log10(2e-9, 3e4, 0, 100);  // 14 decades: every 3rd labelled
  EXPECT_EQ(wide.ticks().front().label, "1e-09");
  EXPECT_EQ(wide.ticks().size(), 5u);
  EXPECT_EQ(wide.ticks()[1].label, "1e-06");
  EXPECT_THROW(Axis::log10(0.0, 1.0, 0, 100), Error);
  EXPECT_THROW(Axis::linear(NAN, 1.0, 0, 100), Error);
  EXPECT_THROW(Axis::linear(2.0, 1.0, 0, 100), Error);
}

TEST(Axis, NiceStepsAndLabels) {
  EXPECT_DOUBLE_EQ(nice_step(0, 10, 5), 2);
  EXPECT_DOUBLE_EQ(nice_step(0, 0.7, 5), 0.2);
  EXPECT_DOUBLE_EQ(nice_step(0, 26, 5), 10);
  EXPECT_NEAR(nice_step(0, 2.4, 5), 0.5, 1e-15);
  EXPECT_EQ(linear_tick_label(0.25, 0.05), "0.25");
  EXPECT_EQ(linear_tick_label(-3, 1), "-3");
  EXPECT_EQ(linear_tick_label(-1e-17, 0.1), "0.0");  // no "-0.0"
  EXPECT_EQ(log_tick_label(1e-5), "1e-05");
  EXPECT_EQ(log_tick_label(20), "20");
}

// The points of the n-th <polyline class="line"> of `svg`.
std::vector<Point> polyline_points(const std::string& svg, size_t n) {
  const std::string tag = "<polyline class=\"line\" points=\"";
  size_t found = svg.find(tag);
  for (size_t i = 0; i < n && found != std::string::npos; ++i) found = svg.find(tag, found + 1);
  std::vector<Point> pts;
  if (found == std::string::npos) {
    ADD_FAILURE() << "the SVG has no polyline number " << n;
    return pts;
  }
  const size_t begin = found + tag.size();
  const std::string s = svg.substr(begin, svg.find('"', begin) - begin);
  for (size_t at = 0; at < s.size();) {
    const size_t comma = s.find(',', at), space = s.find(' ', comma);
    pts.push_back(
        {std::stod(s.substr(at, comma - at)), std::stod(s.substr(comma + 1, space - comma - 1))});
    at = space == std::string::npos ? s.size() : space + 1;
  }
  return pts;
}

TEST(LinePanel, SeriesBreakAtPointsTheAxisCannotShowAndMapBack) {
  PanelSpec p;
  p.title = "t";
  p.log_y = true;
  Series s;
  s.name = "m";
  s.x = {1, 2, 3, 4, 5};
  s.y = {0.5, 0.2, 0.0, 0.1, 0.05};  // 0 cannot be shown on a log axis: two lines
  s.marker = MarkerShape::Square;
  p.series.push_back(s);
  p.refs.push_back({"ref", 0.03});
  SvgDocument doc(400, 300);
  const Box area{50, 20, 300, 200};
  draw_panel(doc, p, area);
  const std::string svg = doc.str();
  EXPECT_EQ(count(svg, "<polyline class=\"line\""), 2u);  // points 1-2 and 4-5
  EXPECT_EQ(count(svg, "class=\"marker\""), 4u);
  EXPECT_EQ(count(svg, "<g class=\"reference\" data-name=\"ref\">"), 1u);
  // The axes draw_panel builds: y log over [0.01, 1] (the reference line's 0.03 included).
  const Axis ax = Axis::linear(1, 5, area.x, area.x + area.w);
  const Axis ay = Axis::log10(0.03, 0.5, area.y + area.h, area.y);
  const std::vector<Point> second = polyline_points(svg, 1);
  ASSERT_EQ(second.size(), 2u);
  const double px_per_decade = area.h / 2;
  EXPECT_NEAR(ax.from_px(second[0].x), 4.0, kPixelRounding * 4 / area.w);
  EXPECT_NEAR(std::log10(ay.from_px(second[1].y)), std::log10(0.05),
              kPixelRounding / px_per_decade);
}

TEST(LinePanel, RefusesAPanelWithNothingToShow) {
  PanelSpec p;
  p.log_y = true;
  p.series.push_back({"s", {1, 2}, {0.0, -1.0}, {}, "#000000", "", std::nullopt});
  SvgDocument doc(100, 100);
  EXPECT_THROW(draw_panel(doc, p, {10, 10, 80, 80}), Error);
  p.series[0].y = {1.0};  // sizes differ
  EXPECT_THROW(draw_panel(doc, p, {10, 10, 80, 80}), Error);
}

TEST(LinePanel, BandsAndLegend) {
  PanelSpec p;
  p.bands.push_back({"raw", {0, 1, 2}, {-1, -2, -1}, {1, 3, 2}, "#777777", 0.3});
  p.bands.push_back({"smoothed", {0, 1, 2}, {-1, -1, -1}, {1, 1, 1}, "#0072b2", 0.0});
  SvgDocument doc(400, 300);
  draw_panel(doc, p, {50, 20, 300, 200});
  const std::string svg = doc.str();
  EXPECT_EQ(count(svg, "class=\"fill\""), 1u);  // the second band: lines only
  EXPECT_EQ(count(svg, "class=\"hi\""), 2u);
  EXPECT_EQ(count(svg, "class=\"lo\""), 2u);
  const auto e = legend_entries(p);
  ASSERT_EQ(e.size(), 2u);
  const Box one = legend_size(e, 1), two = legend_size(e, 2);
  EXPECT_GT(two.w, one.w);
  EXPECT_GT(one.h, two.h);
}

nlohmann::json sweep_row(double budget, const std::string& method, const std::string& config,
                         double bits, double kld) {
  nlohmann::json r = {{"budget", budget}, {"method", method}, {"config", config}};
  if (config.empty()) {
    r["min_bits"] = 5.0;
  } else {
    r["result"] = {{"kv_bits_per_element", bits}, {"kld", kld}, {"kld_stderr", 0.01}};
  }
  return r;
}

nlohmann::json sweep_json() {
  return {{"model", "m.bin"},
          {"text", "t.txt"},
          {"weights", "W4"},
          {"w_only",
           {{"kld", 0.1}, {"kld_stderr", 0.01}, {"ctx", 64}, {"windows", 2}, {"tokens", 126}}},
          {"rows",
           {sweep_row(4.5, "wkvq", "wkvq b3 g32", 4.0, 0.9), sweep_row(4.5, "q4_1", "", 0, 0),
            sweep_row(3.5, "wkvq", "wkvq b2 g32", 3.0, 2.3),
            sweep_row(4.0, "wkvq", "wkvq b3 g32", 4.0, 0.9),  // the same configuration again
            sweep_row(4.5, "kivi", "kivi b2", 3.8, 0.6)}}};
}

TEST(KvSweepData, GroupsByMethodSortsByBitsAndDropsRepeats) {
  const KvSweepData d = kv_sweep_from_json(sweep_json(), "sweep.json");
  ASSERT_EQ(d.methods.size(), 2u);
  EXPECT_EQ(d.methods[0].name, "wkvq");
  ASSERT_EQ(d.methods[0].points.size(), 2u);
  EXPECT_DOUBLE_EQ(d.methods[0].points[0].bits, 3.0);
  EXPECT_DOUBLE_EQ(d.methods[0].points[1].kld, 0.9);
  EXPECT_EQ(d.methods[1].name, "kivi");
  EXPECT_EQ(d.unfit, std::vector<std::string>{"q4_1"});
  EXPECT_DOUBLE_EQ(d.w_only_kld, 0.1);
  EXPECT_EQ(d.windows, 2);
}

void expect_error(const nlohmann::json& j, const std::string& part) {
  try {
    kv_sweep_from_json(j, "sweep.json");
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("wkvq ppl --kv-sweep --json"), std::string::npos)
        << e.what();
  }
}

TEST(KvSweepData, RefusesWhatIsNotASweep) {
  expect_error(nlohmann::json::array(), "no \"rows\" array");
  nlohmann::json j = sweep_json();
  j.erase("w_only");
  expect_error(j, "no \"w_only\"");
  j = sweep_json();
  j["rows"][0]["result"].erase("kld");  // a sweep run without KLD
  expect_error(j, "rows[0].result: no number \"kld\"");
  j = sweep_json();
  j["rows"][2].erase("method");
  expect_error(j, "rows[2]: no \"method\"");
  j = sweep_json();
  j["rows"] = {sweep_row(4.5, "q4_1", "", 0, 0)};
  EXPECT_THROW(kv_sweep_from_json(j, "sweep.json"), Error);  // nothing to draw
}

}  // namespace
}  // namespace wkvq
