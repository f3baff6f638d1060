#include <random>

#include "chat/chat_prompt.h"
#include "core/error.h"
#include "serve/api_error.h"
#include "serve/server_context.h"

namespace wkvq::serve {

namespace {

[[noreturn]] void too_long(const std::string& param, const std::string& message) {
  throw ApiError(400, message, "invalid_request_error", param, "context_length_exceeded");
}

}  // namespace

GenerationRequest make_generation(const ServerContext& ctx, const OpenAiRequest& r) {
  GenerationRequest g;
  const int vocab = ctx.model->config.vocab_size;
  if (r.kind == RequestKind::Chat) {
    if (ctx.chat.tmpl == nullptr) {
      throw ApiError(400, ctx.chat.missing, "invalid_request_error", "messages",
                     "chat_template_missing");
    }
    try {
      const ChatPrompt p = make_chat_prompt(*ctx.chat.tmpl, *ctx.chat.tok, ctx.chat.parses_special,
                                            r.messages, ctx.chat.dir);
      g.prompt = p.ids;
      g.stop_ids = p.stop_ids;
    } catch (const Error& e) {
      throw ApiError(400,
                     std::string("the chat template could not render the messages: ") + e.what(),
                     "invalid_request_error", "messages");
    }
    g.tok = ctx.chat.tok;
  } else if (r.ids) {
    for (const int id : *r.ids) {
      if (id >= vocab) {
        throw ApiError(400,
                       "token id " + std::to_string(id) +
                           " in 'prompt' is outside the "
                           "vocabulary [0, " +
                           std::to_string(vocab) + ")",
                       "invalid_request_error", "prompt");
      }
    }
    g.prompt = *r.ids;
    g.tok = ctx.tok;
  } else {
    g.prompt = ctx.tok->encode(r.prompt, /*bos=*/true, /*eos=*/false);
    g.tok = ctx.tok;
  }
  const auto n = static_cast<int64_t>(g.prompt.size());
  if (n == 0) {
    throw ApiError(400, "the prompt is empty and the tokenizer adds no BOS token; give a prompt",
                   "invalid_request_error", "prompt");
  }
  const std::string where = r.kind == RequestKind::Chat ? "messages" : "prompt";
  if (n >= ctx.ctx) {
    too_long(where, "the prompt has " + std::to_string(n) + " tokens; this server's context is " +
                        std::to_string(ctx.ctx) + " tokens, prompt and completion together");
  }
  const int64_t cap = std::min(ctx.ctx, ctx.scheduler->pool().tokens_capacity());
  g.max_tokens =
      r.max_tokens.value_or(r.kind == RequestKind::Completion ? 16 : std::max<int64_t>(1, cap - n));
  if (n + g.max_tokens > ctx.ctx) {
    too_long("max_tokens", "the prompt (" + std::to_string(n) + " tokens) and max_tokens (" +
                               std::to_string(g.max_tokens) + ") exceed this server's context of " +
                               std::to_string(ctx.ctx) + " tokens; ask for fewer tokens");
  }
  g.temperature = r.temperature;
  g.top_p = r.top_p;
  g.seed = r.seed ? *r.seed : std::random_device{}();
  g.stop = r.stop;
  return g;
}

bool bearer_matches(const std::string& header, const std::string& key) {
  const std::string want = "Bearer " + key;
  // Every byte of the longer string is looked at whatever matches, so the time does not tell
  // how much of the key was right.
  const size_t n = std::max(header.size(), want.size());
  unsigned diff = header.size() == want.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const auto a = static_cast<unsigned char>(i < header.size() ? header[i] : 0);
    const auto b = static_cast<unsigned char>(i < want.size() ? want[i] : 0);
    diff |= static_cast<unsigned>(a ^ b);
  }
  return diff == 0;
}

}  // namespace wkvq::serve
