// wkvq serve: an OpenAI-compatible HTTP server (serve/http_routes.h) that batches many sequences
// over one budget of KV memory (serve/scheduler.h).
//
// Signals: SIGTERM and SIGINT are blocked in every thread (the mask is set before any thread
// starts and is inherited) and received by one thread with sigwait(), which shuts the server
// down: requests in flight finish within --shutdown-timeout (then they are cancelled), new ones
// get 503, then the listener closes and the command returns (exit 0). So the command keeps no
// global state for signals.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "cli/chat_files.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/kernel_options.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_pool.h"
#include "serve/http_routes.h"
#include "serve/scheduler.h"

namespace wkvq::cli {

namespace {

struct ServeOptions {
  std::string model, tokenizer, chat_template, model_name, host = "127.0.0.1", api_key;
  int port = 8080;
  int parallel = 4;
  int queue = 16;
  double kv_budget_mib = 0;
  int64_t ctx = 0;
  int64_t prefill_chunk = 256;
  double max_body_mib = 1;
  double shutdown_timeout = 10;
  int threads = 0;
  KernelCliOptions kernels;
  QuantCliOptions quant;
};

std::string model_id_of(const std::string& path, const std::string& name) {
  if (!name.empty()) return name;
  std::filesystem::path p(path);
  if (p.filename().empty()) p = p.parent_path();
  return p.extension() == ".bin" ? p.stem().string() : p.filename().string();
}

// Bytes one position takes in a cache with these settings (all layers, K and V).
int64_t kv_bytes_per_token(const LlamaConfig& c, const KvQuantSettings& kv) {
  return KvCache(c, 1, kv).bytes_per_token();
}

// The budget's bytes (--kv-budget, default: --parallel sequences of the whole context) and what
// it holds at the chosen KV format and at fp16, printed: the ratio is the method's promise.
int64_t kv_budget_bytes(const ServeOptions& o, const LlamaConfig& c, const KvQuantSettings& kv,
                        int64_t ctx) {
  const int64_t per_token = kv_bytes_per_token(c, kv);
  // The default holds --parallel sequences of the whole context in whole blocks (a context that
  // is not a multiple of the block size still fits every sequence).
  const int bt = serve::SchedulerOptions{}.block_tokens;
  const int64_t bytes =
      o.kv_budget_mib > 0
          ? static_cast<int64_t>(o.kv_budget_mib * 1024.0 * 1024.0)
          : KvBlockPool::block_bytes(c, kv, bt) * ((ctx + bt - 1) / bt) * o.parallel;
  KvQuantSettings fp16;  // the fp16 cache the ratio is against (no group, window or value bits)
  fp16.bits = 16;
  const int64_t fp16_per_token = kv_bytes_per_token(c, fp16);
  info(
      "KV budget %s: %lld tokens at KV%d (%lld bytes per token), %lld tokens at fp16 (%lld "
      "bytes per token): %.2fx\n",
      human_bytes(static_cast<double>(bytes)).c_str(), static_cast<long long>(bytes / per_token),
      kv.bits, static_cast<long long>(per_token), static_cast<long long>(bytes / fp16_per_token),
      static_cast<long long>(fp16_per_token),
      static_cast<double>(fp16_per_token) / static_cast<double>(per_token));
  if (kv.window > 0) {  // the window's fp16 ring is each sequence's own memory, outside the pool
    const auto ring = static_cast<double>(KvCache(c, 1, kv).window_bytes());
    info(
        "KV window: + %s per sequence (%lld fp16 tokens per layer, beside the pool), %s for "
        "--parallel %d\n",
        human_bytes(ring).c_str(), static_cast<long long>(kv.window),
        human_bytes(ring * o.parallel).c_str(), o.parallel);
  }
  return bytes;
}

// Waits for SIGTERM / SIGINT (or the wake-up sent when the listener failed), then shuts down.
void watch_signals(const sigset_t& set, std::atomic<bool>& signalled, serve::Scheduler& sched,
                   serve::ServerContext& ctx, httplib::Server& svr, double grace_s) {
  int sig = 0;
  sigwait(&set, &sig);
  signalled = true;
  info("%s: shutting down (in-flight requests get %.0f s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
       grace_s);
  sched.shutdown(std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000)));
  // the handlers write their last bytes; then the listener closes
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (ctx.in_flight.load() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  svr.stop();
}

void run_serve(const ServeOptions& o) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that went away is a failed write, not a signal

  apply_threads(o.threads);
  apply_kernel_options(o.kernels);
  const std::string model_path = resolve_model_path(o.model);
  Model loaded = load_model_verbose(model_path, o.quant.wbits > 0);
  const auto tok = open_tokenizer(o.tokenizer, model_path, loaded.config.vocab_size);
  std::optional<ChatFiles> chat;
  std::string no_chat;
  try {
    chat = open_chat_files(o.tokenizer, model_path, loaded.config.vocab_size, o.chat_template);
  } catch (const Error& e) {
    no_chat = std::string(
                  "this model has no chat template, so /v1/chat/completions is not "
                  "available (use /v1/completions, or start the server with "
                  "--chat-template FILE): ") +
              e.what();
    info("%s\n", no_chat.c_str());
  }
  const PreparedModel p = prepare_model(std::move(loaded), o.quant, tok.get());
  const LlamaConfig& c = p.model.config;
  WKVQ_REQUIRE(o.ctx <= c.seq_len, "--ctx ", o.ctx, " exceeds the model's context of ", c.seq_len);
  const int64_t ctx_len = o.ctx > 0 ? o.ctx : c.seq_len;
  info("running %s; context %lld per sequence, %d in parallel\n", p.describe().c_str(),
       static_cast<long long>(ctx_len), o.parallel);

  serve::Metrics metrics;
  serve::SchedulerOptions so{
      o.parallel, o.queue, o.prefill_chunk,      kv_budget_bytes(o, c, p.kv, ctx_len),
      32,         p.kv,    p.smoothing_or_null()};
  serve::Scheduler sched(p.model, so, metrics);
  serve::ServerContext ctx;
  ctx.model = &p.model;
  ctx.model_id = model_id_of(model_path, o.model_name);
  ctx.ctx = ctx_len;
  ctx.tok = tok.get();
  if (chat) ctx.chat = {&chat->tmpl, chat->tok.get(), chat->parses_special, chat->dir, ""};
  ctx.chat.missing = no_chat;
  ctx.scheduler = &sched;
  ctx.metrics = &metrics;
  ctx.api_key = o.api_key;
  ctx.created = static_cast<int64_t>(std::time(nullptr));

  httplib::Server svr;
  const size_t workers = static_cast<size_t>(o.parallel + o.queue + 8);
  svr.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  svr.set_payload_max_length(static_cast<size_t>(o.max_body_mib * 1024.0 * 1024.0));
  svr.set_keep_alive_timeout(2);
  serve::add_routes(svr, ctx);
  const int port =
      o.port == 0 ? svr.bind_to_any_port(o.host) : (svr.bind_to_port(o.host, o.port) ? o.port : -1);
  WKVQ_REQUIRE(port > 0, "cannot listen on ", o.host, ":", o.port,
               " (in use, or not an address of this machine); choose another --host / --port");
  std::atomic<bool> signalled{false};
  std::thread watcher([&] { watch_signals(set, signalled, sched, ctx, svr, o.shutdown_timeout); });
  info("model '%s': listening on http://%s:%d\n", ctx.model_id.c_str(), o.host.c_str(), port);
  const bool listened = svr.listen_after_bind();
  if (!signalled) pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  WKVQ_REQUIRE(listened || signalled, "the server stopped listening on ", o.host, ":", port);
  info("served %lld requests\n", static_cast<long long>(metrics.requests.load()));
  print_memory(p.model, kv_bytes_per_token(c, p.kv));
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions, /v1/models, "
      "/health, /metrics) decoding many sequences together over one KV budget");
  cmd->add_option("--model", o->model,
                  "llama2.c .bin file or Hugging Face model directory (default: stories260K)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: beside the model)");
  cmd->add_option("--chat-template", o->chat_template,
                  "A Jinja chat template file for /v1/chat/completions instead of the model's")
      ->type_name("FILE");
  cmd->add_option("--model-name", o->model_name,
                  "The model's name in the API (default: the model file or directory name)");
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port to listen on (0: any free port, printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--parallel", o->parallel, "Sequences decoded together at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--queue", o->queue,
                  "Requests waiting for a slot or KV memory at most; more get 429")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--kv-budget", o->kv_budget_mib,
                  "KV cache memory of all sequences together, MiB (default: --parallel "
                  "sequences of the whole context)")
      ->check(CLI::Range(0.0, 1e7));
  cmd->add_option("--ctx", o->ctx,
                  "Positions per sequence, prompt and completion (default: the model's context)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--prefill-chunk", o->prefill_chunk,
                  "Prompt tokens prefilled per step, over all sequences, between decode steps")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--api-key", o->api_key,
                  "Require 'Authorization: Bearer KEY' on every route but /health");
  cmd->add_option("--max-body", o->max_body_mib, "Largest request body, MiB (larger: 413)")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1024.0));
  cmd->add_option("--shutdown-timeout", o->shutdown_timeout,
                  "Seconds requests in flight get to finish after SIGTERM before they are "
                  "cancelled")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  o->quant.add_to(cmd);
  add_threads_option(cmd, &o->threads);
  add_kernel_options(cmd, &o->kernels);
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace wkvq::cli
