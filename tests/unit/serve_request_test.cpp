// Parsing and checking of OpenAI request bodies (serve/openai_request.h) and the API key
// comparison: every bad field is a 400 ApiError naming it.
#include <gtest/gtest.h>

#include <string>

#include "serve/api_error.h"
#include "serve/openai_request.h"
#include "serve/server_context.h"

namespace wkvq::serve {
namespace {

// The ApiError of parsing `body`, or a failure when it parses.
ApiError error_of(const std::string& body, RequestKind kind = RequestKind::Completion) {
  try {
    parse_openai_request(body, kind);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

TEST(OpenAiRequest, CompletionFieldsAreRead) {
  const OpenAiRequest r = parse_openai_request(
      R"({"model": "m", "prompt": "Once", "max_tokens": 5, "temperature": 0, "top_p": 0.5,
          "seed": 42, "stop": ["a", "bc"], "stream": true, "n": 1, "frequency_penalty": 0})",
      RequestKind::Completion);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_EQ(*r.max_tokens, 5);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(*r.seed, 42u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
}

TEST(OpenAiRequest, DefaultsAndPromptForms) {
  const OpenAiRequest r = parse_openai_request(R"({"prompt": ["x"]})", RequestKind::Completion);
  EXPECT_EQ(r.prompt, "x");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.temperature, 1.0f);
  EXPECT_FALSE(r.stream);
  const OpenAiRequest ids =
      parse_openai_request(R"({"prompt": [1, 5, 7]})", RequestKind::Completion);
  EXPECT_EQ(*ids.ids, (std::vector<int>{1, 5, 7}));
  const OpenAiRequest stop =
      parse_openai_request(R"({"prompt": "a", "stop": "\n"})", RequestKind::Completion);
  EXPECT_EQ(stop.stop, (std::vector<std::string>{"\n"}));
}

TEST(OpenAiRequest, ChatMessagesWithStringsAndTextParts) {
  const OpenAiRequest r = parse_openai_request(
      R"({"messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": [{"type": "text", "text": "Hi "},
                                                    {"type": "text", "text": "there"}]}],
          "max_completion_tokens": 3})",
      RequestKind::Chat);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1]["content"], "Hi there");
  EXPECT_EQ(*r.max_tokens, 3);
}

TEST(OpenAiRequest, BadBodiesNameTheField) {
  EXPECT_EQ(error_of("{not json").status, 400);
  EXPECT_EQ(error_of("[1, 2]").status, 400);
  EXPECT_EQ(error_of(R"({"max_tokens": 3})").param, "prompt");
  EXPECT_EQ(error_of(R"({"prompt": 5})").param, "prompt");
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": 0})").param, "max_tokens");
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": -3})").param, "max_tokens");
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": "5"})").param, "max_tokens");
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": 2.5})").param, "max_tokens");
  EXPECT_EQ(error_of(R"({"prompt": "a", "temperature": "hot"})").param, "temperature");
  EXPECT_EQ(error_of(R"({"prompt": "a", "temperature": 3})").param, "temperature");
  EXPECT_EQ(error_of(R"({"prompt": "a", "top_p": 0})").param, "top_p");
  EXPECT_EQ(error_of(R"({"prompt": "a", "seed": 1.5})").param, "seed");
  EXPECT_EQ(error_of(R"({"prompt": "a", "n": 2})").param, "n");
  EXPECT_EQ(error_of(R"({"prompt": "a", "stop": [1]})").param, "stop");
  EXPECT_EQ(error_of(R"({"prompt": "a", "stop": ""})").param, "stop");
  EXPECT_EQ(error_of(R"({"prompt": "a", "stop": ["a","b","c","d","e"]})").param, "stop");
  EXPECT_EQ(error_of(R"({"prompt": "a", "stream": "yes"})").param, "stream");
  EXPECT_EQ(error_of(R"({"prompt": "a", "model": 3})").param, "model");
  EXPECT_EQ(error_of(R"({"prompt": [1, -2]})").param, "prompt");
  EXPECT_EQ(error_of(R"({"messages": []})", RequestKind::Chat).param, "messages");
  EXPECT_EQ(error_of(R"({"messages": [{"content": "x"}]})", RequestKind::Chat).param,
            "messages[0]");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": 5}]})", RequestKind::Chat).param,
            "messages[0].content");
}

TEST(OpenAiRequest, ErrorBodyHasOpenAisShape) {
  const nlohmann::json j = error_of(R"({"prompt": "a", "n": 3})").to_json();
  ASSERT_TRUE(j.contains("error"));
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST(BearerKey, MatchesOnlyTheExactHeader) {
  EXPECT_TRUE(bearer_matches("Bearer s3cret", "s3cret"));
  EXPECT_FALSE(bearer_matches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(bearer_matches("Bearer s3cret!", "s3cret"));
  EXPECT_FALSE(bearer_matches("Bearer S3cret", "s3cret"));
  EXPECT_FALSE(bearer_matches("", "s3cret"));
  EXPECT_FALSE(bearer_matches("s3cret", "s3cret"));
}

}  // namespace
}  // namespace wkvq::serve
