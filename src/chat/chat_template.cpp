#include "chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/jinja_eval.h"
#include "chat/jinja_parser.h"
#include "core/error.h"

namespace wkvq {

namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  WKVQ_REQUIRE(in, "cannot read the ", what, " ", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::ordered_json read_json(const std::string& path) {
  std::string text = read_file(path, "tokenizer config");
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
}

// A special token in tokenizer_config.json: a string or an AddedToken object {"content": ...}.
std::string token_text(const nlohmann::ordered_json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return "";
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source, std::string origin) : origin_(std::move(origin)) {
  try {
    body_ = jinja::parse(source);
  } catch (const Error& e) {
    fail(origin_, ": ", e.what());
  }
}

void ChatTemplate::read_special_tokens(const nlohmann::ordered_json& config) {
  bos_ = token_text(config, "bos_token");
  eos_ = token_text(config, "eos_token");
  unk_ = token_text(config, "unk_token");
  pad_ = token_text(config, "pad_token");
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& config_path) {
  nlohmann::ordered_json config = read_json(config_path);
  WKVQ_REQUIRE(config.is_object(), config_path, ": expected a JSON object");
  auto it = config.find("chat_template");
  WKVQ_REQUIRE(it != config.end() && !it->is_null(), config_path,
               " has no \"chat_template\": this model has no chat template; pass one with "
               "--chat-template FILE (a Jinja file), or use plain completion without --chat");
  std::string source;
  if (it->is_string()) {
    source = it->get<std::string>();
  } else if (it->is_array()) {
    for (const auto& named : *it) {
      if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
          named["template"].is_string()) {
        source = named["template"].get<std::string>();
      }
    }
    WKVQ_REQUIRE(!source.empty(), config_path,
                 ": \"chat_template\" is a list without a {\"name\": \"default\", \"template\": "
                 "...} entry; pass the template to use with --chat-template FILE");
  } else {
    fail(config_path, ": \"chat_template\" must be a string or a list of named templates, got ",
         it->type_name());
  }
  ChatTemplate t(std::move(source), config_path + " (chat_template)");
  t.read_special_tokens(config);
  return t;
}

ChatTemplate ChatTemplate::from_file(const std::string& template_path,
                                     const std::string& config_path) {
  ChatTemplate t(read_file(template_path, "chat template"), template_path);
  if (!config_path.empty()) t.read_special_tokens(read_json(config_path));
  return t;
}

ChatTemplate ChatTemplate::for_model(const std::string& model_path,
                                     const std::string& template_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir =
      fs::is_directory(model_path, ec) ? fs::path(model_path) : fs::path(model_path).parent_path();
  std::string config = (dir / "tokenizer_config.json").string();
  bool has_config = fs::is_regular_file(config, ec);
  if (!template_file.empty()) return from_file(template_file, has_config ? config : "");
  std::string jinja_file = (dir / "chat_template.jinja").string();
  if (has_config) {
    nlohmann::ordered_json c = read_json(config);
    if (c.is_object() && c.contains("chat_template") && !c["chat_template"].is_null()) {
      return from_tokenizer_config(config);
    }
  }
  WKVQ_REQUIRE(fs::is_regular_file(jinja_file, ec), "no chat template for ", model_path,
               ": neither ", config, " with a \"chat_template\" nor ", jinja_file,
               " exists; pass one with --chat-template FILE (a Jinja file)");
  return from_file(jinja_file, has_config ? config : "");
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra) const {
  WKVQ_REQUIRE(messages.is_array(),
               "chat messages: expected a JSON array of {\"role\", "
               "\"content\"} objects, got ",
               messages.type_name());
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    WKVQ_REQUIRE(m.is_object() && m.contains("role") && m["role"].is_string(), "chat message ", i,
                 ": expected an object with a string \"role\", got ", m.dump().substr(0, 200));
  }
  jinja::ValueDict vars{{"messages", jinja::Value::from_json(messages)},
                        {"add_generation_prompt", jinja::Value(add_generation_prompt)}};
  const std::pair<const char*, const std::string*> tokens[] = {
      {"bos_token", &bos_}, {"eos_token", &eos_}, {"unk_token", &unk_}, {"pad_token", &pad_}};
  for (const auto& [name, value] : tokens) {
    if (!value->empty()) vars.emplace_back(name, jinja::Value(*value));
  }
  if (!extra.is_null()) {
    WKVQ_REQUIRE(extra.is_object(), "chat template variables: expected a JSON object, got ",
                 extra.type_name());
    for (const auto& [k, v] : extra.items()) vars.emplace_back(k, jinja::Value::from_json(v));
  }
  try {
    return jinja::render(body_, vars);
  } catch (const Error& e) {
    fail(origin_, ": ", e.what());
  }
}

}  // namespace wkvq
