// What the HTTP routes of `wkvq serve` share: the model's name and context, the tokenizers, the
// chat template (when there is one), the scheduler, the metrics and the API key. Owned by the
// serve command, which outlives every handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "model/model.h"
#include "runtime/tokenizer.h"
#include "serve/metrics.h"
#include "serve/openai_request.h"
#include "serve/scheduler.h"

namespace wkvq::serve {

struct ChatSupport {
  const ChatTemplate* tmpl = nullptr;  // null: chat requests get `missing` as their error
  const Tokenizer* tok = nullptr;      // with special tokens parsed when parses_special
  bool parses_special = false;
  std::string dir;      // where generation_config.json is looked for
  std::string missing;  // why there is no template
};

struct ServerContext {
  const Model* model = nullptr;
  std::string model_id;            // the name clients pass as "model"
  int64_t ctx = 0;                 // positions per sequence, prompt included
  const Tokenizer* tok = nullptr;  // completions
  ChatSupport chat;
  Scheduler* scheduler = nullptr;
  Metrics* metrics = nullptr;
  std::string api_key;  // "": no authentication
  int64_t created = 0;  // Unix seconds at start
  std::atomic<uint64_t> next_id{1};
  std::atomic<int64_t> in_flight{0};  // generation handlers running
};

// The request as the scheduler takes it: the prompt encoded (a chat through the template), the
// lengths checked against the context and the defaults filled in. Throws ApiError (400) for a
// prompt that is empty, too long, has ids outside the vocabulary, or leaves no room for
// max_tokens, and for a chat request when the model has no chat template.
GenerationRequest make_generation(const ServerContext& ctx, const OpenAiRequest& r);

// Constant-time comparison of an Authorization header with "Bearer <key>".
bool bearer_matches(const std::string& header, const std::string& key);

}  // namespace wkvq::serve
