// wkvq chat-template: renders a conversation (a JSON array of {"role", "content"} messages)
// through a model's chat template and prints the text the model would be given, exactly (no
// newline added). For checking the Jinja interpreter against references and for seeing what a
// chat prompt looks like.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"

namespace wkvq::cli {

namespace {

struct ChatTemplateOptions {
  std::string model, tokenizer_config, chat_template, messages_json, vars_json;
  bool add_generation_prompt = false;
};

nlohmann::ordered_json read_json_file(const std::string& path, const char* option) {
  const std::string text = read_text_file(path, option);
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(option, " ", path, ": not valid JSON (", e.what(), ")");
  }
}

void run_chat_template(const ChatTemplateOptions& o) {
  const ChatTemplate tmpl = !o.model.empty() ? ChatTemplate::for_model(o.model, o.chat_template)
                            : !o.chat_template.empty()
                                ? ChatTemplate::from_file(o.chat_template, o.tokenizer_config)
                                : ChatTemplate::from_tokenizer_config(o.tokenizer_config);
  const nlohmann::ordered_json messages = read_json_file(o.messages_json, "--messages-json");
  const nlohmann::ordered_json vars =
      o.vars_json.empty() ? nlohmann::ordered_json() : read_json_file(o.vars_json, "--vars-json");
  const std::string text = tmpl.render(messages, o.add_generation_prompt, vars);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void register_chat_template(CLI::App& app) {
  auto o = std::make_shared<ChatTemplateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat-template",
      "Render a conversation through a chat template (Jinja) and print the prompt text exactly "
      "(no newline added)");
  auto* model = cmd->add_option("--model", o->model,
                                "Model directory (or a file in it): the chat_template of its "
                                "tokenizer_config.json, else its chat_template.jinja")
                    ->type_name("PATH");
  auto* config = cmd->add_option("--tokenizer-config", o->tokenizer_config,
                                 "A tokenizer_config.json: its chat_template and special tokens "
                                 "(bos_token, eos_token, unk_token, pad_token)")
                     ->type_name("FILE");
  model->excludes(config);
  config->excludes(model);
  cmd->add_option("--chat-template", o->chat_template,
                  "A Jinja template file to use instead of the model's (special tokens still "
                  "from --tokenizer-config or the model's tokenizer_config.json)")
      ->type_name("FILE");
  cmd->add_option("--messages-json", o->messages_json,
                  "The conversation: a JSON array of {\"role\": ..., \"content\": ...} objects")
      ->type_name("FILE")
      ->required();
  cmd->add_flag("--add-generation-prompt", o->add_generation_prompt,
                "Set add_generation_prompt: end with the start of the assistant's turn");
  cmd->add_option("--vars-json", o->vars_json,
                  "A JSON object of further template variables (e.g. {\"enable_thinking\": "
                  "false}, tools)")
      ->type_name("FILE");
  cmd->callback([o] {
    WKVQ_REQUIRE(!o->model.empty() || !o->tokenizer_config.empty() || !o->chat_template.empty(),
                 "chat-template: give --model PATH, --tokenizer-config FILE or --chat-template "
                 "FILE");
    run_chat_template(*o);
  });
}

}  // namespace wkvq::cli
