#include "serve/openai_response.h"

namespace wkvq::serve {

using nlohmann::json;

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

namespace {

json head_json(const ResponseHead& h, bool chunk) {
  const bool chat = h.kind == RequestKind::Chat;
  return {
      {"id", h.id},
      {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
      {"created", h.created},
      {"model", h.model}};
}

}  // namespace

json full_response(const ResponseHead& h, const std::string& text, const std::string& finish_reason,
                   const Usage& u) {
  json r = head_json(h, false);
  json choice = {{"index", 0}, {"finish_reason", finish_reason}};
  if (h.kind == RequestKind::Chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  r["choices"] = json::array({choice});
  r["usage"] = usage_json(u);
  return r;
}

json stream_chunk(const ResponseHead& h, const std::string& text,
                  const std::optional<std::string>& finish_reason,
                  const std::optional<Usage>& usage, bool role) {
  json r = head_json(h, true);
  json choice = {{"index", 0},
                 {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}};
  if (h.kind == RequestKind::Chat) {
    json delta = json::object();
    if (role) delta["role"] = "assistant";
    if (role || !text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  r["choices"] = json::array({choice});
  if (usage) r["usage"] = usage_json(*usage);
  return r;
}

std::string sse_event(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace wkvq::serve
