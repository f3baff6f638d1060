// wkvq generate: text generation with llama2.c semantics (steps count positions, prompt
// included; generation stops at BOS or EOS). With --chat the prompt is one user turn rendered
// through the model's chat template, only the answer is printed, and generation also stops at
// the template's end-of-turn tokens (chat/chat_prompt.h).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>

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

struct GenerateOptions {
  std::string model, tokenizer, prompt;
  bool chat = false;
  std::string chat_template, system;
  int steps = 256;
  int ctx = 0;  // KV cache positions allocated (0: steps)
  float temperature = 1.0f;
  float top_p = 0.9f;
  uint64_t seed = 1234;
  int threads = 0;
  KernelCliOptions kernels;
  QuantCliOptions quant;
};

// --chat: the tokenizer with special tokens parsed (a tokenizer.json), the prompt rendered from
// one user turn (and --system), and the ids that end the answer.
struct ChatSetup {
  std::unique_ptr<Tokenizer> tok;
  ChatPrompt prompt;
};

ChatSetup setup_chat(const GenerateOptions& o, const std::string& model_path, int vocab_size) {
  ChatFiles f = open_chat_files(o.tokenizer, model_path, vocab_size, o.chat_template);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  messages.push_back({{"role", "user"}, {"content", o.prompt}});
  ChatSetup s{std::move(f.tok), {}};
  s.prompt = make_chat_prompt(f.tmpl, *s.tok, f.parses_special, messages, f.dir);
  info("chat: %s, prompt %zu tokens, stops at ids [%s]\n", f.tmpl.origin().c_str(),
       s.prompt.ids.size(), join_ids(s.prompt.stop_ids).c_str());
  return s;
}

void run_generate(const GenerateOptions& o) {
  apply_threads(o.threads);
  apply_kernel_options(o.kernels);
  const std::string model_path = resolve_model_path(o.model);
  Model loaded = load_model_verbose(model_path, o.quant.wbits > 0);
  ChatSetup chat;
  if (o.chat) chat = setup_chat(o, model_path, loaded.config.vocab_size);
  const auto tok = o.chat ? std::move(chat.tok)
                          : open_tokenizer(o.tokenizer, model_path, loaded.config.vocab_size);
  const PreparedModel p = prepare_model(std::move(loaded), o.quant, tok.get(), /*keep_fp=*/false);
  const Model& model = p.model;
  const LlamaConfig& c = model.config;
  info("running %s\n", p.describe().c_str());
  int steps = o.steps <= 0 || o.steps > c.seq_len ? c.seq_len : o.steps;
  const std::vector<int> prompt =
      o.chat ? chat.prompt.ids : tok->encode(o.prompt, /*bos=*/true, /*eos=*/false);
  const std::vector<int>& stop_ids = chat.prompt.stop_ids;
  WKVQ_REQUIRE(!prompt.empty(),
               "the prompt is empty and the tokenizer adds no BOS token (as "
               "Qwen's do); give a --prompt");
  if (static_cast<int>(prompt.size()) > steps) {
    WKVQ_REQUIRE(static_cast<int>(prompt.size()) <= c.seq_len, "the prompt has ", prompt.size(),
                 " tokens, more than the model's context of ", c.seq_len);
    steps = static_cast<int>(prompt.size());
  }
  WKVQ_REQUIRE(o.ctx == 0 || (o.ctx >= steps && o.ctx <= c.seq_len), "--ctx ", o.ctx,
               ": must hold the ", steps, " positions of --steps and fit the model context of ",
               c.seq_len);
  Session session(model, o.ctx > 0 ? o.ctx : steps, p.kv, p.smoothing_or_null());
  Sampler sampler(c.vocab_size, o.temperature, o.top_p, o.seed);

  // prefill: the whole prompt in one pass; print its pieces (BOS gives no text)
  const auto t0 = std::chrono::steady_clock::now();
  const float* logits = session.prefill(prompt);
  const double prefill_s = seconds_since(t0);
  PiecePrinter printer;
  for (size_t i = 0; i < prompt.size() && !o.chat; ++i)  // a chat prints the answer only
    printer.print(tok->decode_piece(i == 0 ? -1 : prompt[i - 1], prompt[i]));

  // decode: sample, print, feed back, until `steps` positions or BOS/EOS
  const auto t1 = std::chrono::steady_clock::now();
  int token = prompt.back();
  int generated = 0;
  for (int64_t pos = session.pos(); pos <= steps; ++pos) {
    const int next = sampler.sample(logits);
    if (next == tok->bos_id() || next == tok->eos_id() || next == c.bos_id) break;
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    // An id past the tokenizer's vocabulary is a padding row of the embedding (Qwen pads it):
    // it has no text.
    if (next < tok->vocab_size()) printer.print(tok->decode_piece(token, next));
    token = next;
    ++generated;
    if (pos >= steps) break;
    logits = session.decode(token);
  }
  const double decode_s = seconds_since(t1);
  printer.finish();
  std::fputs("\n", stdout);
  std::fflush(stdout);
  info("prefill: %zu tokens, %.1f tok/s; decode: %d tokens, %.1f tok/s\n", prompt.size(),
       static_cast<double>(prompt.size()) / prefill_s, generated,
       generated > 0 ? generated / decode_s : 0.0);
  print_memory(model, session);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  cmd->add_option("--model", o->model,
                  "llama2.c .bin file or Hugging Face model directory (default: stories260K "
                  "from $WKVQ_SHARED_DIR or ../shared)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "tokenizer.json (Hugging Face), tokenizer.model (SentencePiece) or "
                  "tokenizer.bin (llama2.c); default: the one beside the model (tokenizer.json "
                  "preferred)");
  cmd->add_option("--prompt", o->prompt,
                  "Text to continue (default: empty); with --chat, the user's message");
  auto* chat = cmd->add_flag(
      "--chat", o->chat,
      "One chat turn: --prompt is the user's message, rendered through the model's chat "
      "template (tokenizer_config.json beside the tokenizer, or --chat-template) with special "
      "tokens parsed; prints only the answer, which ends at the template's end-of-turn tokens");
  cmd->add_option("--chat-template", o->chat_template,
                  "With --chat: a Jinja chat template file instead of the model's")
      ->type_name("FILE")
      ->needs(chat);
  cmd->add_option("--system", o->system, "With --chat: a system message before the user's")
      ->needs(chat);
  cmd->add_option("--steps", o->steps,
                  "Positions to run, prompt included, as llama2.c (0 or more than the context: "
                  "the model's context)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--ctx", o->ctx,
                  "KV cache positions to allocate (default: --steps), as a server would for its "
                  "context; for memory measurements")
      ->check(CLI::Range(0, 1 << 24));
  add_sampling_options(cmd, &o->temperature, &o->top_p, &o->seed);
  o->quant.add_to(cmd);
  add_threads_option(cmd, &o->threads);
  add_kernel_options(cmd, &o->kernels);
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace wkvq::cli
