#include "plot/svg_document.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace wkvq {

double text_width_estimate(std::string_view text, double size) {
  size_t chars = 0;
  for (const char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // UTF-8
  return 0.6 * size * static_cast<double>(chars);
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string svg_number(double v) {
  WKVQ_REQUIRE(std::isfinite(v), "SVG: a coordinate is not finite (", v, ")");
  char b[48];
  std::snprintf(b, sizeof b, "%.1f", v);
  std::string s = b;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

SvgDocument::SvgDocument(double width, double height) : width_(width), height_(height) {
  WKVQ_REQUIRE(width > 0 && height > 0, "SVG: the size must be positive, got ", width, " x ",
               height);
}

namespace {
// Appends ` name="value"` (value already escaped or a number).
void attr(std::string& out, const char* name, const std::string& value) {
  out.push_back(' ');
  out.append(name).append("=\"").append(value).push_back('"');
}

std::string points_attr(const std::vector<Point>& pts) {
  std::string s;
  for (size_t i = 0; i < pts.size(); ++i) {
    if (i > 0) s.push_back(' ');
    s.append(svg_number(pts[i].x)).push_back(',');
    s.append(svg_number(pts[i].y));
  }
  return s;
}
}  // namespace

void SvgDocument::open_group(const std::string& cls,
                             const std::vector<std::pair<std::string, std::string>>& data) {
  body_.append("<g");
  attr(body_, "class", xml_escape(cls));
  for (const auto& [k, v] : data) attr(body_, ("data-" + k).c_str(), xml_escape(v));
  body_.append(">\n");
  ++open_groups_;
}

void SvgDocument::close_group() {
  WKVQ_ASSERT(open_groups_ > 0);
  body_.append("</g>\n");
  --open_groups_;
}

void SvgDocument::element(const char* tag, const Attrs& attrs, const Paint& p,
                          const std::string& cls) {
  body_.append("<").append(tag);
  if (!cls.empty()) attr(body_, "class", xml_escape(cls));
  for (const auto& [k, v] : attrs) attr(body_, k, v);
  attr(body_, "stroke", p.stroke);
  attr(body_, "fill", p.fill);
  if (p.stroke != "none") attr(body_, "stroke-width", svg_number(p.width));
  if (!p.dash.empty()) attr(body_, "stroke-dasharray", p.dash);
  if (p.fill != "none" && p.opacity < 1.0) attr(body_, "fill-opacity", svg_number(p.opacity));
  body_.append("/>\n");
}

void SvgDocument::line(Point a, Point b, const Paint& p, const std::string& cls) {
  element("line",
          {{"x1", svg_number(a.x)},
           {"y1", svg_number(a.y)},
           {"x2", svg_number(b.x)},
           {"y2", svg_number(b.y)}},
          p, cls);
}

void SvgDocument::polyline(const std::vector<Point>& pts, const Paint& p, const std::string& cls) {
  element("polyline", {{"points", points_attr(pts)}}, p, cls);
}

void SvgDocument::polygon(const std::vector<Point>& pts, const Paint& p, const std::string& cls) {
  element("polygon", {{"points", points_attr(pts)}}, p, cls);
}

void SvgDocument::rect(Point tl, double w, double h, const Paint& p, const std::string& cls) {
  element("rect",
          {{"x", svg_number(tl.x)},
           {"y", svg_number(tl.y)},
           {"width", svg_number(w)},
           {"height", svg_number(h)}},
          p, cls);
}

void SvgDocument::marker(Point at, MarkerShape shape, double size, const Paint& p,
                         const std::string& cls) {
  const double r = size / 2;
  switch (shape) {
    case MarkerShape::Circle:
      element("circle", {{"cx", svg_number(at.x)}, {"cy", svg_number(at.y)}, {"r", svg_number(r)}},
              p, cls);
      return;
    case MarkerShape::Square:
      rect({at.x - r * 0.85, at.y - r * 0.85}, 1.7 * r, 1.7 * r, p, cls);
      return;
    case MarkerShape::Triangle:
      polygon({{at.x, at.y - r * 1.1}, {at.x + r, at.y + r * 0.8}, {at.x - r, at.y + r * 0.8}}, p,
              cls);
      return;
    case MarkerShape::TriangleDown:
      polygon({{at.x, at.y + r * 1.1}, {at.x + r, at.y - r * 0.8}, {at.x - r, at.y - r * 0.8}}, p,
              cls);
      return;
    case MarkerShape::Diamond:
      polygon({{at.x, at.y - r * 1.2}, {at.x + r, at.y}, {at.x, at.y + r * 1.2}, {at.x - r, at.y}},
              p, cls);
      return;
  }
}

void SvgDocument::text(Point at, std::string_view s, const TextStyle& t, const std::string& cls) {
  static constexpr const char* kAnchors[] = {"start", "middle", "end"};
  body_.append("<text");
  if (!cls.empty()) attr(body_, "class", xml_escape(cls));
  attr(body_, "x", svg_number(at.x));
  attr(body_, "y", svg_number(at.y));
  attr(body_, "font-size", svg_number(t.size));
  attr(body_, "text-anchor", kAnchors[static_cast<int>(t.anchor)]);
  attr(body_, "fill", t.color);
  if (t.bold) attr(body_, "font-weight", "bold");
  if (t.rotate != 0.0) {
    std::string r = "rotate(";
    r.append(svg_number(t.rotate)).push_back(' ');
    r.append(svg_number(at.x)).push_back(' ');
    r.append(svg_number(at.y)).push_back(')');
    attr(body_, "transform", r);
  }
  body_.append(">").append(xml_escape(s)).append("</text>\n");
}

std::string SvgDocument::str() const {
  WKVQ_ASSERT(open_groups_ == 0);
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg";
  attr(out, "xmlns", "http://www.w3.org/2000/svg");
  attr(out, "version", "1.1");
  attr(out, "width", svg_number(width_));
  attr(out, "height", svg_number(height_));
  std::string box = "0 0 ";
  box.append(svg_number(width_)).push_back(' ');
  box.append(svg_number(height_));
  attr(out, "viewBox", box);
  attr(out, "font-family", "DejaVu Sans, Helvetica, Arial, sans-serif");
  out.append(">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
  out.append(body_).append("</svg>\n");
  return out;
}

}  // namespace wkvq
