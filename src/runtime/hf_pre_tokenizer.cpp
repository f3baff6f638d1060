#include "runtime/hf_pre_tokenizer.h"

#include <utility>

#include "core/error.h"
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
    if (b == "Isolated")
      s.behavior = Behavior::kIsolated;
    else if (b == "Removed")
      s.behavior = Behavior::kRemoved;
    else if (b == "MergedWithPrevious")
      s.behavior = Behavior::kMergedWithPrevious;
    else if (b == "MergedWithNext")
      s.behavior = Behavior::kMergedWithNext;
    else if (b == "Contiguous")
      s.behavior = Behavior::kContiguous;
    else
      fail(node.where(), ".behavior: \"", b,
           "\" is not a split behavior (Isolated, Removed, MergedWithPrevious, MergedWithNext, "
           "Contiguous)");
    s.invert = node.boolean_or("invert", false);
    steps_.push_back(std::move(s));
  } else if (type == "ByteLevel") {
    Step s;
    s.prefix_space = node.boolean_or("add_prefix_space", false);
    if (node.boolean_or("use_regex", true))
      s.regex = std::make_shared<UnicodeRegex>(kGpt2Pattern, node.where() + " (GPT-2 pattern)");
    steps_.push_back(std::move(s));
    byte_level_ = true;
  } else {
    fail(node.where(), ".type: pre-tokenizer \"", type,
         "\" is not supported (supported: Split, ByteLevel, Sequence)");
  }
}

void HfPreTokenizer::apply(const Step& s, std::string_view piece, std::vector<std::string>& out) {
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
  // The piece as alternating stretches: (span, is_match), inverted when asked.
  std::vector<std::pair<Span, bool>> parts;
  size_t at = 0;
  for (const Span& h : hits) {
    if (h.first > at) parts.push_back({{at, h.first}, s.invert});
    parts.push_back({h, !s.invert});
    at = h.second;
  }
  if (at < piece.size()) parts.push_back({{at, piece.size()}, s.invert});
  const size_t first_out = out.size();
  bool last_was_match = false, glue_next = false;
  for (const auto& [span, match] : parts) {
    const std::string_view text = piece.substr(span.first, span.second - span.first);
    switch (s.behavior) {
      case Behavior::kRemoved:
        if (!match) out.emplace_back(text);
        break;
      case Behavior::kIsolated:
        out.emplace_back(text);
        break;
      case Behavior::kMergedWithPrevious:
        if (match && out.size() > first_out)
          out.back() += text;
        else
          out.emplace_back(text);
        break;
      case Behavior::kMergedWithNext:
        if (glue_next)
          out.back() += text;
        else
          out.emplace_back(text);
        glue_next = match;
        break;
      case Behavior::kContiguous:
        if (match && last_was_match)
          out.back() += text;
        else
          out.emplace_back(text);
        break;
    }
    last_was_match = match;
  }
}

void HfPreTokenizer::split(std::string_view text, std::vector<std::string>& out) const {
  if (steps_.empty()) {
    if (!text.empty()) out.emplace_back(text);
    return;
  }
  std::vector<std::string> cur{std::string(text)}, next;
  for (size_t i = 0; i < steps_.size(); ++i) {
    std::vector<std::string>& dst = i + 1 == steps_.size() ? out : next;
    for (const std::string& piece : cur) apply(steps_[i], piece, dst);
    if (i + 1 < steps_.size()) {
      cur.swap(next);
      next.clear();
    }
  }
}

}  // namespace wkvq
