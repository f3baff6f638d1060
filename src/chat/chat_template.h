// A model's chat template: the Jinja `chat_template` of its tokenizer_config.json (or a template
// file), with the special tokens the template may use (bos_token, eos_token, unk_token,
// pad_token), rendered for a conversation as Hugging Face's apply_chat_template does.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "chat/jinja_ast.h"

namespace wkvq {

class ChatTemplate {
 public:
  // The template source and where it came from (for messages); parses it (throws on bad syntax).
  ChatTemplate(std::string source, std::string origin);

  // From a tokenizer_config.json: its "chat_template" (a string, or a list of {name, template}
  // whose "default" is taken) and special tokens. Throws, saying what to do, when it has none.
  static ChatTemplate from_tokenizer_config(const std::string& config_path);
  // From a template file; special tokens from `config_path` when not empty.
  static ChatTemplate from_file(const std::string& template_path, const std::string& config_path);
  // For a model path (a directory or a file in one): `template_file` when given, else the
  // chat_template of tokenizer_config.json, else chat_template.jinja beside it.
  static ChatTemplate for_model(const std::string& model_path, const std::string& template_file);

  // Renders `messages` (a JSON array of {"role": string, "content": ...} objects, checked);
  // `extra` (a JSON object, may be null) adds variables such as enable_thinking or tools.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra = nullptr) const;

  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }
  const std::string& origin() const { return origin_; }

 private:
  void read_special_tokens(const nlohmann::ordered_json& config);

  std::string origin_;
  jinja::Body body_;
  std::string bos_, eos_, unk_, pad_;
};

}  // namespace wkvq
