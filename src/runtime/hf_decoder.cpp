#include "runtime/hf_decoder.h"

#include "core/error.h"
#include "runtime/byte_token.h"
#include "runtime/replace_all.h"

namespace wkvq {

HfDecoder::HfDecoder(const JsonNode& decoder) {
  if (!decoder.is_null()) add(decoder);
}

void HfDecoder::add(const JsonNode& node) {
  const std::string type = node["type"].string();
  if (type == "Sequence") {
    const JsonNode list = node["decoders"];
    for (size_t i = 0; i < list.array().size(); ++i) add(list[i]);
  } else if (type == "ByteLevel") {
    steps_.push_back({Kind::kByteLevel, {}, {}, 0});
  } else if (type == "ByteFallback") {
    steps_.push_back({Kind::kByteFallback, {}, {}, 0});
  } else if (type == "Fuse") {
    // pieces are concatenated by the caller
  } else if (type == "Replace") {
    const JsonNode pattern = node["pattern"];
    WKVQ_REQUIRE(pattern.has("String"), pattern.where(),
                 ": only {\"String\": ...} patterns are supported in a Replace decoder, found ",
                 pattern.json().dump());
    const std::string s = pattern["String"].string();
    WKVQ_REQUIRE(!s.empty(), pattern.where(), ": an empty String pattern");
    steps_.push_back({Kind::kReplace, s, node["content"].string(), 0});
  } else if (type == "Metaspace") {  // the replacement back to spaces; the prepended one off
    const std::string r = node.string_or("replacement", "\xE2\x96\x81");
    WKVQ_REQUIRE(!r.empty(), node.where(), ".replacement: empty");
    steps_.push_back({Kind::kReplace, r, " ", 0});
    const bool prepends = node.has("prepend_scheme") ? node["prepend_scheme"].string() != "never"
                                                     : node.boolean_or("add_prefix_space", true);
    if (prepends) steps_.push_back({Kind::kStrip, " ", {}, 1});
  } else if (type == "Strip") {
    const int64_t start = node["start"].integer(), stop = node["stop"].integer();
    WKVQ_REQUIRE(stop == 0, node.where(), ".stop: ", stop,
                 " is not supported (only 0: text is decoded piece by piece)");
    WKVQ_REQUIRE(start >= 0 && start < 1024, node.where(), ".start: ", start,
                 " is not a small count");
    const std::string content = node["content"].string();
    WKVQ_REQUIRE(!content.empty(), node.where(), ".content: empty");
    steps_.push_back({Kind::kStrip, content, {}, static_cast<int>(start)});
  } else {
    fail(node.where(), ".type: decoder \"", type,
         "\" is not supported (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
         "Strip, Sequence)");
  }
}

std::string HfDecoder::decode(std::string_view token, bool first) const {
  std::string s(token);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kByteLevel:
        if (auto bytes = alphabet_.decode(s)) s = std::move(*bytes);
        break;
      case Kind::kReplace:
        s = replace_all(s, step.a, step.b);
        break;
      case Kind::kByteFallback:
        if (const int b = byte_token_value(s, HexCase::kUpper); b >= 0)
          s = std::string(1, static_cast<char>(b));
        break;
      case Kind::kStrip:
        if (first) {
          size_t at = 0;
          for (int k = 0; k < step.count && s.compare(at, step.a.size(), step.a) == 0; ++k)
            at += step.a.size();
          s.erase(0, at);
        }
        break;
    }
  }
  return s;
}

}  // namespace wkvq
