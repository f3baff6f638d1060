// What a chat needs beside the model (generate --chat, chat): the tokenizer with special tokens
// parsed, the chat template and the directory of their config files.
#pragma once

#include <memory>
#include <string>

#include "chat/chat_template.h"
#include "runtime/tokenizer.h"

namespace wkvq::cli {

struct ChatFiles {
  std::unique_ptr<Tokenizer> tok;
  ChatTemplate tmpl;
  bool parses_special;  // a tokenizer.json (see make_chat_prompt)
  std::string dir;      // where tokenizer_config.json / generation_config.json are looked for
};

// --tokenizer (or the one beside the model, checked against its vocab_size) and --chat-template
// (or the model's template: ChatTemplate::for_model); throws with what to do when there is none.
ChatFiles open_chat_files(const std::string& tokenizer, const std::string& model_path,
                          int vocab_size, const std::string& chat_template);

}  // namespace wkvq::cli
