#include "runtime/hf_added_tokens.h"

#include <algorithm>

#include "core/error.h"

namespace wkvq {

namespace {

bool ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

HfAddedTokens::HfAddedTokens(const JsonNode& added_tokens) {
  if (added_tokens.is_null()) return;
  const nlohmann::json& list = added_tokens.array();
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonNode n = added_tokens[i];
    Token t;
    t.content = n["content"].string();
    const int64_t id = n["id"].integer();
    WKVQ_REQUIRE(id >= 0 && id < (1 << 24), n.where(), ".id: ", id, " is outside [0, 2^24)");
    WKVQ_REQUIRE(!t.content.empty(), n.where(), ".content: an added token cannot be empty");
    t.id = static_cast<int>(id);
    t.special = n.boolean_or("special", false);
    t.lstrip = n.boolean_or("lstrip", false);
    t.rstrip = n.boolean_or("rstrip", false);
    WKVQ_REQUIRE(!n.boolean_or("single_word", false), n.where(),
                 ".single_word: true is not supported (added token \"", t.content, "\")");
    by_id_.emplace(t.id, tokens_.size());
    tokens_.push_back(std::move(t));
  }
  for (size_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  for (auto& v : by_first_byte_) {
    std::stable_sort(v.begin(), v.end(), [&](size_t a, size_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

const HfAddedTokens::Token* HfAddedTokens::find(int id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

int HfAddedTokens::id_of(std::string_view content) const {
  for (const Token& t : tokens_)
    if (t.content == content) return t.id;
  return -1;
}

const HfAddedTokens::Token* HfAddedTokens::match_at(std::string_view text, size_t at,
                                                    bool parse_special) const {
  for (const size_t i : by_first_byte_[static_cast<unsigned char>(text[at])]) {
    const Token& t = tokens_[i];
    if (t.special && !parse_special) continue;
    if (text.substr(at, t.content.size()) == t.content) return &t;
  }
  return nullptr;
}

std::vector<HfAddedTokens::Segment> HfAddedTokens::split(std::string_view text,
                                                         bool parse_special) const {
  std::vector<Segment> out;
  size_t start = 0;  // of the pending text segment
  bool strip_left_of_next_text = false;
  const auto push_text = [&](size_t b, size_t e) {
    if (strip_left_of_next_text)
      while (b < e && ascii_space(text[b])) ++b;
    if (e > b) out.push_back({text.substr(b, e - b), -1});
  };
  for (size_t at = 0; at < text.size();) {
    const Token* t = tokens_.empty() ? nullptr : match_at(text, at, parse_special);
    if (t == nullptr) {
      ++at;
      continue;
    }
    size_t end_text = at;
    if (t->lstrip)
      while (end_text > start && ascii_space(text[end_text - 1])) --end_text;
    push_text(start, end_text);
    out.push_back({text.substr(at, t->content.size()), t->id});
    at += t->content.size();
    strip_left_of_next_text = t->rstrip;
    start = at;
  }
  push_text(start, text.size());
  return out;
}

}  // namespace wkvq
