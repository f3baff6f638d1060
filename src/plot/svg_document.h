// SvgDocument: an SVG 1.1 image built element by element (lines, polylines, polygons, rectangles,
// markers, text, groups) into one string; coordinates in pixels, y down. Text is XML-escaped.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wkvq {

struct Point {
  double x = 0, y = 0;
};

// How a shape is stroked and filled: colours as SVG colours ("#0072b2", "none").
struct Paint {
  std::string stroke = "none";
  double width = 1.0;
  std::string dash;  // stroke-dasharray, "" = solid
  std::string fill = "none";
  double opacity = 1.0;  // fill opacity
};

enum class TextAnchor { Start, Middle, End };

struct TextStyle {
  double size = 12.0;
  TextAnchor anchor = TextAnchor::Start;
  bool bold = false;
  double rotate = 0.0;  // degrees, about the text's anchor point
  std::string color = "#000000";
};

enum class MarkerShape { Circle, Square, Triangle, Diamond, TriangleDown };

// The width of `text` at `size` in DejaVu Sans / Helvetica-like fonts, an upper estimate
// (0.6 em per character) for layout: labels placed with it do not overlap.
double text_width_estimate(std::string_view text, double size);

// `s` with & < > " ' replaced by XML entities.
std::string xml_escape(std::string_view s);

class SvgDocument {
 public:
  SvgDocument(double width, double height);
  double width() const { return width_; }
  double height() const { return height_; }

  // A group <g class="cls" data-KEY="VALUE" ...>: attrs are (key, value) pairs, values escaped.
  void open_group(const std::string& cls,
                  const std::vector<std::pair<std::string, std::string>>& data = {});
  void close_group();

  void line(Point a, Point b, const Paint& p, const std::string& cls = "");
  void polyline(const std::vector<Point>& pts, const Paint& p, const std::string& cls = "");
  void polygon(const std::vector<Point>& pts, const Paint& p, const std::string& cls = "");
  void rect(Point top_left, double w, double h, const Paint& p, const std::string& cls = "");
  // A marker of `shape` centred at `at`, `size` pixels across.
  void marker(Point at, MarkerShape shape, double size, const Paint& p,
              const std::string& cls = "");
  void text(Point at, std::string_view s, const TextStyle& t, const std::string& cls = "");

  // The whole document (every group closed: an open one is a bug, asserted).
  std::string str() const;

 private:
  using Attrs = std::vector<std::pair<const char*, std::string>>;
  void element(const char* tag, const Attrs& attrs, const Paint& p, const std::string& cls);
  double width_, height_;
  std::string body_;
  int open_groups_ = 0;
};

// `v` as SVG writes coordinates: at most 1 decimal (0.1 px), no trailing zeros, never "-0".
std::string svg_number(double v);

}  // namespace wkvq
