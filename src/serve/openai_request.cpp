#include "serve/openai_request.h"

#include <cmath>

#include "serve/api_error.h"

namespace wkvq::serve {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, "invalid_request_error", param);
}

// The field when present and not null; nullptr otherwise.
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number_in(const json& body, const char* name, double lo, double hi, double fallback) {
  const json* v = field(body, name);
  if (v == nullptr) return fallback;
  if (!v->is_number()) bad(name, std::string("'") + name + "' must be a number, got " + v->dump());
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) {
    bad(name, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got " + v->dump());
  }
  return x;
}

std::vector<std::string> parse_stop(const json& body) {
  const json* v = field(body, "stop");
  if (v == nullptr) return {};
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array() && v->size() <= 4) {
    for (const json& s : *v) {
      if (!s.is_string()) bad("stop", "'stop' entries must be strings, got " + s.dump());
      stops.push_back(s.get<std::string>());
    }
  } else {
    bad("stop", "'stop' must be a string or an array of at most 4 strings, got " + v->dump());
  }
  for (const std::string& s : stops) {
    if (s.empty()) bad("stop", "'stop' strings must not be empty");
  }
  return stops;
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts joined.
std::string message_content(const json& m, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  const json* c = field(m, "content");
  if (c == nullptr) return "";
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad(param, "'" + param + "' must be a string or an array of text parts");
  std::string text;
  for (const json& part : *c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      bad(param, "'" + param + "' parts must be {\"type\": \"text\", \"text\": string}; got " +
                     part.dump());
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

void parse_messages(const json& body, OpenAiRequest& r) {
  const json* v = field(body, "messages");
  if (v == nullptr || !v->is_array() || v->empty()) {
    bad("messages", "'messages' must be a non-empty array of {\"role\", \"content\"} objects");
  }
  r.messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      bad(param, "'" + param + "' must be an object with a string 'role', got " + m.dump());
    }
    r.messages.push_back(
        {{"role", m["role"].get<std::string>()}, {"content", message_content(m, i)}});
  }
}

void parse_prompt(const json& body, OpenAiRequest& r) {
  const json* v = field(body, "prompt");
  const std::string what =
      "'prompt' must be a string, an array of one string, or an array of "
      "token ids";
  if (v == nullptr) bad("prompt", "'prompt' is required");
  if (v->is_string()) {
    r.prompt = v->get<std::string>();
  } else if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) {
    r.prompt = (*v)[0].get<std::string>();
  } else if (v->is_array() && !v->empty()) {
    std::vector<int> ids;
    for (const json& t : *v) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        bad("prompt", what + " (n = 1: one prompt only); got " + v->dump().substr(0, 200));
      }
      ids.push_back(static_cast<int>(t.get<int64_t>()));
    }
    r.ids = std::move(ids);
  } else {
    bad("prompt", what + "; got " + v->dump().substr(0, 200));
  }
}

void parse_sampling(const json& body, OpenAiRequest& r) {
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    const json* v = field(body, name);
    if (v == nullptr) continue;
    if (!v->is_number_integer() || v->get<int64_t>() <= 0) {
      bad(name, std::string("'") + name + "' must be an integer > 0, got " + v->dump());
    }
    r.max_tokens = v->get<int64_t>();
  }
  r.temperature = static_cast<float>(number_in(body, "temperature", 0.0, 2.0, 1.0));
  r.top_p = static_cast<float>(number_in(body, "top_p", 0.0, 1.0, 1.0));
  if (r.top_p <= 0.0f) bad("top_p", "'top_p' must be in (0, 1], got 0");
  if (const json* v = field(body, "seed")) {
    if (!v->is_number_integer()) bad("seed", "'seed' must be an integer, got " + v->dump());
    r.seed =
        v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
  }
  if (const json* v = field(body, "n")) {
    if (!v->is_number_integer() || v->get<int64_t>() != 1) {
      bad("n", "only 'n' = 1 is supported, got " + v->dump());
    }
  }
  r.stop = parse_stop(body);
}

}  // namespace

OpenAiRequest parse_openai_request(std::string_view body, RequestKind kind) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad("", "the request body is not valid JSON");
  if (!j.is_object()) bad("", "the request body must be a JSON object");
  OpenAiRequest r;
  r.kind = kind;
  if (const json* v = field(j, "model")) {
    if (!v->is_string()) bad("model", "'model' must be a string, got " + v->dump());
    r.model = v->get<std::string>();
  }
  if (const json* v = field(j, "stream")) {
    if (!v->is_boolean()) bad("stream", "'stream' must be true or false, got " + v->dump());
    r.stream = v->get<bool>();
  }
  if (kind == RequestKind::Chat) {
    parse_messages(j, r);
  } else {
    parse_prompt(j, r);
  }
  parse_sampling(j, r);
  return r;
}

}  // namespace wkvq::serve
