#include "runtime/hf_normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include "core/error.h"
#include "runtime/replace_all.h"
#include "runtime/unicode_regex.h"

namespace wkvq {

namespace {

const icu::Normalizer2* icu_instance(const std::string& type, const std::string& where) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  if (type == "NFC") n = icu::Normalizer2::getNFCInstance(status);
  if (type == "NFD") n = icu::Normalizer2::getNFDInstance(status);
  if (type == "NFKC") n = icu::Normalizer2::getNFKCInstance(status);
  if (type == "NFKD") n = icu::Normalizer2::getNFKDInstance(status);
  WKVQ_REQUIRE(n != nullptr && U_SUCCESS(status), where, ": ICU has no ", type, " normalizer (",
               u_errorName(status), ")");
  return n;
}

std::string icu_normalize(const icu::Normalizer2& n, std::string text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  if (n.isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return text;
  status = U_ZERO_ERROR;
  std::string out;
  icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
  n.normalizeUTF8(0, piece, sink, nullptr, status);
  WKVQ_REQUIRE(U_SUCCESS(status), "ICU normalization failed: ", u_errorName(status));
  return out;
}

}  // namespace

HfNormalizer::HfNormalizer(const JsonNode& normalizer) {
  if (!normalizer.is_null()) add(normalizer);
}
HfNormalizer::~HfNormalizer() = default;
HfNormalizer::HfNormalizer(HfNormalizer&&) noexcept = default;
HfNormalizer& HfNormalizer::operator=(HfNormalizer&&) noexcept = default;

void HfNormalizer::add(const JsonNode& node) {
  const std::string type = node["type"].string();
  if (type == "Sequence") {
    const JsonNode list = node["normalizers"];
    for (size_t i = 0; i < list.array().size(); ++i) add(list[i]);
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    steps_.push_back({Kind::kUnicode, {}, {}, nullptr, icu_instance(type, node.where())});
  } else if (type == "Prepend") {
    steps_.push_back({Kind::kPrepend, node["prepend"].string(), {}, nullptr, nullptr});
  } else if (type == "Replace") {
    const JsonNode pattern = node["pattern"];
    const std::string content = node["content"].string();
    if (pattern.has("String")) {
      const std::string s = pattern["String"].string();
      WKVQ_REQUIRE(!s.empty(), pattern.where(), ": an empty String pattern replaces nothing");
      steps_.push_back({Kind::kReplaceString, s, content, nullptr, nullptr});
    } else if (pattern.has("Regex")) {
      const JsonNode r = pattern["Regex"];
      steps_.push_back({Kind::kReplaceRegex,
                        {},
                        content,
                        std::make_shared<UnicodeRegex>(r.string(), r.where()),
                        nullptr});
    } else {
      fail(pattern.where(), ": expected {\"String\": ...} or {\"Regex\": ...}, found ",
           pattern.json().dump());
    }
  } else {
    fail(node.where(), ".type: normalizer \"", type,
         "\" is not supported (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence)");
  }
}

std::string HfNormalizer::run(const Step& s, std::string text) {
  switch (s.kind) {
    case Kind::kUnicode:
      return icu_normalize(*static_cast<const icu::Normalizer2*>(s.icu_normalizer),
                           std::move(text));
    case Kind::kPrepend:
      return text.empty() ? text : s.text + text;
    case Kind::kReplaceString:
      return replace_all(text, s.text, s.content);
    case Kind::kReplaceRegex: {
      std::vector<std::pair<size_t, size_t>> hits;
      s.regex->find_all(text, hits);
      std::string out;
      size_t at = 0;
      for (const auto& [b, e] : hits) {
        out.append(text, at, b - at);
        out.append(s.content);
        at = e;
      }
      out.append(text, at);
      return out;
    }
  }
  return text;
}

std::string HfNormalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) s = run(step, std::move(s));
  return s;
}

}  // namespace wkvq
