// wkvq chat: an interactive conversation in the terminal. Each line read from stdin is a user
// message; the conversation is rendered through the chat template and only the tokens not yet
// in the KV cache are fed (the history stays in the cache between turns). Ctrl-C stops the
// current answer, Ctrl-D (end of input) exits.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "chat/chat_prompt.h"
#include "cli/chat_files.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/kernel_options.h"
#include "cli/piece_printer.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace wkvq::cli {

namespace {

struct ChatOptions {
  std::string model, tokenizer, chat_template, system;
  int max_tokens = 512;
  float temperature = 0.7f;
  float top_p = 0.9f;
  uint64_t seed = 1234;
  int threads = 0;
  KernelCliOptions kernels;
  QuantCliOptions quant;
};

// Set by SIGINT while an answer is generated; a signal handler can only reach a flag with
// static storage (the one global of the command, lock-free by static_assert).
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);
extern "C" void on_sigint(int) { g_interrupted.store(true); }

// The conversation in the KV cache: its text as the template rendered it (with the answers
// appended as generated) and its tokens.
struct Cached {
  std::string text;
  std::vector<int> ids;
};

// Feeds what the cache lacks of the rendered prompt: when the cached text is a prefix of it,
// only the rest of the text, encoded on its own (as llama.cpp does); else everything again (the
// template rendered earlier turns differently). Returns the logits of the last token.
const float* feed_prompt(Session& session, Cached& cached, const ChatPrompt& prompt,
                         const Tokenizer& tok) {
  const std::string& text = prompt.text;
  if (!cached.ids.empty() && text.size() > cached.text.size() &&
      text.compare(0, cached.text.size(), cached.text) == 0) {
    const std::vector<int> fresh = tok.encode(text.substr(cached.text.size()), false, false);
    if (!fresh.empty() &&
        static_cast<int64_t>(cached.ids.size() + fresh.size()) < session.max_tokens()) {
      info("(kept %zu tokens of history in the KV cache, %zu new)\n", cached.ids.size(),
           fresh.size());
      cached.ids.insert(cached.ids.end(), fresh.begin(), fresh.end());
      cached.text = text;
      return session.prefill(fresh);
    }
  }
  if (!cached.ids.empty()) info("(history re-encoded: %zu tokens)\n", prompt.ids.size());
  session.reset();
  cached = {text, prompt.ids};
  return session.prefill(prompt.ids);
}

// Samples the answer to the prompt whose logits are given; returns its text. Stops at a stop id,
// after max_tokens, when the context is full, or on Ctrl-C.
std::string answer(Session& session, Sampler& sampler, const Tokenizer& tok, const float* logits,
                   Cached& cached, const std::vector<int>& stop_ids, int max_tokens) {
  PiecePrinter printer;
  std::string text;
  int prev = cached.ids.back();
  g_interrupted.store(false);
  for (int n = 0; n < max_tokens && !g_interrupted.load(); ++n) {
    const int next = sampler.sample(logits);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    if (session.pos() >= session.max_tokens()) {  // no room to keep it: the answer ends here
      info("\n(context full: %lld tokens)\n", static_cast<long long>(session.max_tokens()));
      break;
    }
    if (next < tok.vocab_size()) {
      const std::string piece = tok.decode_piece(prev, next);
      text += piece;
      printer.print(piece);
    }
    prev = next;
    logits = session.decode(next);
    cached.ids.push_back(next);
  }
  printer.finish();
  cached.text += text;
  if (g_interrupted.load()) info("\n(stopped)\n");
  std::fputs("\n", stdout);
  std::fflush(stdout);
  return text;
}

void run_chat(const ChatOptions& o) {
  apply_threads(o.threads);
  apply_kernel_options(o.kernels);
  const std::string model_path = resolve_model_path(o.model);
  Model loaded = load_model_verbose(model_path, o.quant.wbits > 0);
  ChatFiles f = open_chat_files(o.tokenizer, model_path, loaded.config.vocab_size, o.chat_template);
  const PreparedModel p = prepare_model(std::move(loaded), o.quant, f.tok.get(), /*keep_fp=*/false);
  info("running %s; chat template %s\n", p.describe().c_str(), f.tmpl.origin().c_str());
  Session session(p.model, 0, p.kv, p.smoothing_or_null());
  Sampler sampler(p.model.config.vocab_size, o.temperature, o.top_p, o.seed);
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);

  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  Cached cached;
  std::string line;
  for (;;) {
    std::fputs("> ", stderr);
    std::fflush(stderr);
    if (!std::getline(std::cin, line)) break;  // Ctrl-D
    messages.push_back({{"role", "user"}, {"content", line}});
    const ChatPrompt prompt = make_chat_prompt(f.tmpl, *f.tok, f.parses_special, messages, f.dir);
    if (static_cast<int64_t>(prompt.ids.size()) >= session.max_tokens()) {
      info("the conversation (%zu tokens) no longer fits the context of %lld; start again\n",
           prompt.ids.size(), static_cast<long long>(session.max_tokens()));
      messages.erase(messages.end() - 1);
      continue;
    }
    const float* logits = feed_prompt(session, cached, prompt, *f.tok);
    const std::string text =
        answer(session, sampler, *f.tok, logits, cached, prompt.stop_ids, o.max_tokens);
    messages.push_back({{"role", "assistant"}, {"content", text}});
  }
  std::fputs("\n", stderr);
  print_memory(p.model, session);
}

}  // namespace

void register_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat",
      "Interactive chat: each stdin line is a user message, answered through the model's chat "
      "template; the history stays in the KV cache; Ctrl-C stops an answer, Ctrl-D exits");
  cmd->add_option("--model", o->model,
                  "llama2.c .bin file or Hugging Face model directory (default: stories260K)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: beside the model)");
  cmd->add_option("--chat-template", o->chat_template,
                  "A Jinja chat template file instead of the model's (tokenizer_config.json)")
      ->type_name("FILE");
  cmd->add_option("--system", o->system, "A system message that starts the conversation");
  cmd->add_option("--max-tokens", o->max_tokens, "Most tokens of one answer")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  add_sampling_options(cmd, &o->temperature, &o->top_p, &o->seed);
  o->quant.add_to(cmd);
  add_threads_option(cmd, &o->threads);
  add_kernel_options(cmd, &o->kernels);
  cmd->callback([o] { run_chat(*o); });
}

}  // namespace wkvq::cli
