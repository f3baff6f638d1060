// The body of POST /v1/completions and /v1/chat/completions, parsed and checked: every field
// wkvq uses is validated for type and range (an ApiError naming the field otherwise); fields it
// does not use are ignored, as OpenAI clients send many.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wkvq::serve {

enum class RequestKind { Completion, Chat };

struct OpenAiRequest {
  RequestKind kind = RequestKind::Completion;
  std::string model;                    // "" when absent
  std::string prompt;                   // completions: the text
  std::optional<std::vector<int>> ids;  // completions: the prompt given as token ids
  nlohmann::ordered_json messages;      // chat: [{"role", "content"}, ...], content a string
  std::optional<int64_t> max_tokens;    // > 0 (max_tokens or max_completion_tokens)
  float temperature = 1.0f;             // [0, 2]; 0 = greedy
  float top_p = 1.0f;                   // (0, 1]
  std::optional<uint64_t> seed;         // an integer (a negative one is taken mod 2^64)
  std::vector<std::string> stop;        // up to 4 non-empty strings
  bool stream = false;
};

// Throws ApiError (status 400) for malformed JSON, a body that is not an object, a field of the
// wrong type or out of range, n != 1, a missing prompt / messages, or an empty stop string.
OpenAiRequest parse_openai_request(std::string_view body, RequestKind kind);

}  // namespace wkvq::serve
