// The JSON bodies of OpenAI's completion and chat completion responses, whole and as stream
// chunks (server-sent events: "data: {json}\n\n", ended by "data: [DONE]\n\n").
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "serve/openai_request.h"
#include "serve/request_channel.h"

namespace wkvq::serve {

// What every response of one request shares.
struct ResponseHead {
  RequestKind kind = RequestKind::Completion;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

nlohmann::json usage_json(const Usage& u);
// The whole response (stream false).
nlohmann::json full_response(const ResponseHead& h, const std::string& text,
                             const std::string& finish_reason, const Usage& u);
// One stream chunk: `text` (chat: the delta's content; `role`: the first chunk's delta role),
// `finish_reason` and `usage` on the last one only.
nlohmann::json stream_chunk(const ResponseHead& h, const std::string& text,
                            const std::optional<std::string>& finish_reason,
                            const std::optional<Usage>& usage, bool role = false);

// "data: <json>\n\n" and "data: [DONE]\n\n".
std::string sse_event(const nlohmann::json& j);
std::string sse_done();

}  // namespace wkvq::serve
