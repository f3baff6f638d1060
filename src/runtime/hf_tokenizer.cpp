#include "runtime/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "io/json_file.h"
#include "runtime/utf8.h"

namespace wkvq {

namespace {

// What a tokenizer.json or tokenizer_config.json that is not JSON should have been.
constexpr const char* kTokenizerFile = "a Hugging Face tokenizer file";

namespace fs = std::filesystem;

// root[key], or a null node when the key is absent.
JsonNode child_or_null(const JsonNode& root, const char* key) {
  static const nlohmann::json kNull;  // immutable
  return root.json().contains(key) ? root[key] : JsonNode(kNull, root.file(), key);
}

// The special tokens a TemplateProcessing post-processor puts before / after a single text:
// their contents (empty when none). Sequence post-processors are searched; ByteLevel ones only
// adjust offsets.
void template_ends(const JsonNode& pp, std::string& first, std::string& last) {
  if (pp.is_null()) return;
  const std::string type = pp["type"].string();
  if (type == "Sequence") {
    const JsonNode list = pp["processors"];
    for (size_t i = 0; i < list.array().size(); ++i) template_ends(list[i], first, last);
  } else if (type == "TemplateProcessing") {
    const JsonNode single = pp["single"];
    const size_t n = single.array().size();
    WKVQ_REQUIRE(n > 0, single.where(), ": an empty template");
    const auto special = [](const JsonNode& item) {
      return item.has("SpecialToken") ? item["SpecialToken"]["id"].string() : std::string();
    };
    first = special(single[size_t{0}]);
    last = n > 1 ? special(single[n - 1]) : std::string();
  } else if (type != "ByteLevel") {
    fail(pp.where(), ".type: post-processor \"", type,
         "\" is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  }
}

// A token in tokenizer_config.json: a string, {"content": string, ...} or null ("" then).
std::string config_token(const JsonNode& config, const char* key) {
  if (!config.has(key)) return {};
  const JsonNode t = config[key];
  return t.json().is_object() ? t["content"].string() : t.string();
}

}  // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::string& path,
                                               const TokenizerOptions& options) {
  const nlohmann::json root = read_json_file(path, kTokenizerFile);
  const JsonNode node(root, path);
  node.object();
  auto tok = std::unique_ptr<HfTokenizer>(new HfTokenizer(node, options));
  tok->path_ = path;
  tok->read_special_tokens(node, (fs::path(path).parent_path() / "tokenizer_config.json").string());
  return tok;
}

HfTokenizer::HfTokenizer(const JsonNode& root, const TokenizerOptions& options)
    : added_(child_or_null(root, "added_tokens")),
      normalizer_(child_or_null(root, "normalizer")),
      pre_tokenizer_(child_or_null(root, "pre_tokenizer")),
      model_(root["model"], pre_tokenizer_.byte_level()),
      decoder_(child_or_null(root, "decoder")),
      parse_special_(options.parse_special) {
  vocab_size_ = model_.size();
  for (const HfAddedTokens::Token& t : added_.tokens())
    vocab_size_ = std::max(vocab_size_, t.id + 1);
}

void HfTokenizer::read_special_tokens(const JsonNode& root, const std::string& config_path) {
  std::string tpl_first, tpl_last;
  template_ends(child_or_null(root, "post_processor"), tpl_first, tpl_last);
  nlohmann::json config_json = nlohmann::json::object();
  std::error_code ec;
  if (fs::is_regular_file(config_path, ec))
    config_json = read_json_file(config_path, kTokenizerFile);
  const JsonNode config(config_json, config_path);
  config.object();
  const auto token_id = [&](const std::string& content, const std::string& where) {
    int id = added_.id_of(content);
    if (id < 0) id = model_.id(content);
    WKVQ_REQUIRE(id >= 0, where, ": token \"", content,
                 "\" is neither an added token nor in the vocabulary of ", path_);
    return id;
  };
  const std::string bos = config_token(config, "bos_token"),
                    eos = config_token(config, "eos_token");
  if (!bos.empty())
    bos_id_ = token_id(bos, config.where() + ": bos_token");
  else if (!tpl_first.empty())
    bos_id_ = token_id(tpl_first, path_ + ": post_processor");
  if (!eos.empty())
    eos_id_ = token_id(eos, config.where() + ": eos_token");
  else if (!tpl_last.empty())
    eos_id_ = token_id(tpl_last, path_ + ": post_processor");
  add_bos_ = config.has("add_bos_token") ? config["add_bos_token"].boolean() : !tpl_first.empty();
  add_eos_ = config.has("add_eos_token") ? config["add_eos_token"].boolean() : !tpl_last.empty();
  WKVQ_REQUIRE(!add_bos_ || bos_id_ >= 0, config_path,
               ": add_bos_token is true but no bos_token is defined");
  WKVQ_REQUIRE(!add_eos_ || eos_id_ >= 0, config_path,
               ": add_eos_token is true but no eos_token is defined");
}

std::vector<int> HfTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::replace_invalid(text);
    text = repaired;
  }
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 2);
  if (bos && add_bos_) ids.push_back(bos_id_);
  HfBpeModel::WordCache cache;
  std::vector<std::string> words;
  for (const HfAddedTokens::Segment& seg : added_.split(text, parse_special_)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    words.clear();
    const bool at_start = seg.text.data() == text.data();
    if (normalizer_.is_identity()) {
      pre_tokenizer_.split(seg.text, at_start, words);
    } else {
      pre_tokenizer_.split(normalizer_.apply(seg.text), at_start, words);
    }
    for (const std::string& w : words) model_.encode_word(w, cache, ids);
  }
  if (eos && add_eos_) ids.push_back(eos_id_);
  return ids;
}

std::string HfTokenizer::decode_piece(int prev, int token) const {
  WKVQ_REQUIRE(token >= 0 && token < vocab_size_, "token id ", token,
               " is outside the tokenizer's vocabulary [0, ", vocab_size_, ") of ", path_,
               "; is the tokenizer the model's own?");
  if (token == bos_id_ || token == eos_id_) return {};
  if (const HfAddedTokens::Token* t = added_.find(token)) return t->content;
  if (token >= model_.size()) return {};
  return decoder_.decode(model_.token(token), prev < 0 || prev == bos_id_);
}

}  // namespace wkvq
