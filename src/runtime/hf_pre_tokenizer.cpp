#include "runtime/hf_pre_tokenizer.h"

#include <utility>

#include "core/error.h"
#include "runtime/replace_all.h"
#include "runtime/unicode_regex.h"

namespace wkvq {

namespace {

// GPT-2's pre-tokenization pattern, used by ByteLevel when "use_regex" is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

using Span = std::pair<size_t, size_t>;

}  // namespace

HfPreTokenizer::HfPreTokenizer(const JsonNode& pre_tokenizer) {
  if (!pre_tokenizer.is_null()) add(pre_tokenizer);
}
HfPreTokenizer::~HfPreTokenizer() = default;
HfPreTokenizer::HfPreTokenizer(HfPreTokenizer&&) noexcept = default;
HfPreTokenizer& HfPreTokenizer::operator=(HfPreTokenizer&&) noexcept = default;

void HfPreTokenizer::add(const JsonNode& node) {
  const std::string type = node["type"].string();
  WKVQ_REQUIRE(!byte_level_, node.where(), ": pre-tokenizer \"", type,
               "\" after ByteLevel is not supported (ByteLevel must come last)");
  if (type == "Sequence") {
    const JsonNode list = node["pretokenizers"];
    for (size_t i = 0; i < list.array().size(); ++i) add(list[i]);
  } else if (type == "Split") {
    add_split(node);
  } else if (type == "Metaspace") {
    add_metaspace(node);
  } else if (type == "ByteLevel") {
    Step s;
    s.kind = Kind::kByteLevel;
    s.prefix_space = node.boolean_or("add_prefix_space", false);
    if (node.boolean_or("use_regex", true))
      s.regex = std::make_shared<UnicodeRegex>(kGpt2Pattern, node.where() + " (GPT-2 pattern)");
    steps_.push_back(std::move(s));
    byte_level_ = true;
  } else {
    fail(node.where(), ".type: pre-tokenizer \"", type,
         "\" is not supported (supported: Split, ByteLevel, Metaspace, Sequence)");
  }
}

void HfPreTokenizer::add_split(const JsonNode& node) {
  Step s;
  const JsonNode pattern = node["pattern"];
  if (pattern.has("Regex")) {
    const JsonNode r = pattern["Regex"];
    s.regex = std::make_shared<UnicodeRegex>(r.string(), r.where());
  } else if (pattern.has("String")) {
    s.literal = pattern["String"].string();
    WKVQ_REQUIRE(!s.literal.empty(), pattern.where(), ": an empty String pattern");
  } else {
    fail(pattern.where(), ": expected {\"Regex\": ...} or {\"String\": ...}, found ",
         pattern.json().dump());
  }
  const std::string b = node["behavior"].string();
  WKVQ_REQUIRE(b == "Isolated" || b == "Removed", node.where(), ".behavior: \"", b,
               "\" is not supported (supported: Isolated, Removed)");
  s.removed = b == "Removed";
  s.invert = node.boolean_or("invert", false);
  steps_.push_back(std::move(s));
}

void HfPreTokenizer::add_metaspace(const JsonNode& node) {
  Step s;
  s.kind = Kind::kMetaspace;
  s.literal = node.string_or("replacement", "\xE2\x96\x81");
  WKVQ_REQUIRE(!s.literal.empty(), node.where(), ".replacement: empty");
  WKVQ_REQUIRE(!node.boolean_or("split", false), node.where(),
               ".split: true is not supported (only false)");
  if (node.has("prepend_scheme")) {
    const std::string p = node["prepend_scheme"].string();
    if (p == "always")
      s.prepend = Prepend::kAlways;
    else if (p == "first")
      s.prepend = Prepend::kFirst;
    else if (p == "never")
      s.prepend = Prepend::kNever;
    else
      fail(node.where(), ".prepend_scheme: \"", p, "\" is not always, first or never");
  } else {
    s.prepend = node.boolean_or("add_prefix_space", true) ? Prepend::kAlways : Prepend::kNever;
  }
  steps_.push_back(std::move(s));
}

void HfPreTokenizer::apply(const Step& s, std::string_view piece, bool at_start,
                           std::vector<std::string>& out) {
  if (s.kind == Kind::kMetaspace) {
    std::string t = replace_all(piece, " ", s.literal);
    const bool wanted = s.prepend == Prepend::kAlways || (s.prepend == Prepend::kFirst && at_start);
    if (wanted && t.compare(0, s.literal.size(), s.literal) != 0) t.insert(0, s.literal);
    if (!t.empty()) out.push_back(std::move(t));
    return;
  }
  std::string spaced;
  if (s.prefix_space && (piece.empty() || piece.front() != ' ')) {
    spaced.reserve(piece.size() + 1);
    spaced.push_back(' ');
    spaced.append(piece);
    piece = spaced;
  }
  if (s.regex == nullptr && s.literal.empty()) {  // ByteLevel without its regex
    if (!piece.empty()) out.emplace_back(piece);
    return;
  }
  std::vector<Span> hits;
  if (s.regex) {
    s.regex->find_all(piece, hits);
  } else {
    for (size_t at = 0, h; (h = piece.find(s.literal, at)) != std::string_view::npos;
         at = h + s.literal.size())
      hits.emplace_back(h, h + s.literal.size());
  }
  // The piece as alternating stretches, each kept unless it is a (non-inverted) match that
  // Removed drops.
  const auto keep = [&](size_t b, size_t e, bool match) {
    if (e > b && !(s.removed && match != s.invert)) out.emplace_back(piece.substr(b, e - b));
  };
  size_t at = 0;
  for (const Span& h : hits) {
    keep(at, h.first, false);
    keep(h.first, h.second, true);
    at = h.second;
  }
  keep(at, piece.size(), false);
}

void HfPreTokenizer::split(std::string_view text, bool at_start,
                           std::vector<std::string>& out) const {
  if (steps_.empty()) {
    if (!text.empty()) out.emplace_back(text);
    return;
  }
  std::vector<std::string> cur{std::string(text)}, next;
  for (size_t i = 0; i < steps_.size(); ++i) {
    std::vector<std::string>& dst = i + 1 == steps_.size() ? out : next;
    for (size_t k = 0; k < cur.size(); ++k) apply(steps_[i], cur[k], at_start && k == 0, dst);
    if (i + 1 < steps_.size()) {
      cur.swap(next);
      next.clear();
    }
  }
}

}  // namespace wkvq
