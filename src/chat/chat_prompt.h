// A chat turn as model input: the conversation rendered through the chat template and encoded
// with special tokens parsed, and the ids that end the assistant's answer.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "runtime/tokenizer.h"

namespace wkvq {

struct ChatPrompt {
  std::string text;           // the rendered template
  std::vector<int> ids;       // its tokens
  std::vector<int> stop_ids;  // generation ends at any of these
};

// Renders `messages` with add_generation_prompt and encodes the text as Hugging Face's
// apply_chat_template does: the template writes the special tokens, none are added. A tokenizer
// that cannot parse special tokens written in text (`parses_special` false: SentencePiece,
// llama2.c) gets a leading bos_token of the text as its BOS id instead.
// Stop ids: the tokenizer's EOS, the template's eos_token, the eos_token_id(s) of
// generation_config.json in `model_dir` (when there), and the end-of-turn markers of common chat
// formats (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>) that the vocabulary
// holds as single special tokens.
ChatPrompt make_chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, bool parses_special,
                            const nlohmann::ordered_json& messages, const std::string& model_dir);

// "1, 2, 3": ids as messages print them.
std::string join_ids(const std::vector<int>& ids);

}  // namespace wkvq
