// wkvq ppl: perplexity of a model on a text file (design.md §3).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "eval/perplexity.h"

namespace wkvq::cli {

namespace {

struct PplCliOptions {
  std::string model, tokenizer, text, mode = "prefill";
  int64_t ctx = 0;
  int64_t max_windows = 0;
  bool json = false;
  int threads = 0;
};

void run_ppl(const PplCliOptions& o) {
  apply_threads(o.threads);
  const std::string model_path = resolve_model_path(o.model);
  const Model model = load_model_verbose(model_path);
  const auto tok = open_tokenizer(o.tokenizer, model_path, model.config.vocab_size);
  const std::string text = read_text_file(o.text);

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> stream = tok->encode(text, /*bos=*/true, /*eos=*/false);
  const double tok_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "text: %s, %zu bytes, %zu tokens (tokenized in %.2f s)\n", o.text.c_str(),
               text.size(), stream.size(), tok_s);

  PplOptions opt;
  opt.ctx = o.ctx;
  opt.max_windows = o.max_windows;
  const auto started = std::chrono::steady_clock::now();
  const PplResult r = perplexity(model, stream, opt, [&](int64_t done, int64_t total, double nll) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "\rwindow %lld/%lld  ppl %.4f  elapsed %.1f s  eta %.1f s   ",
                 static_cast<long long>(done), static_cast<long long>(total), std::exp(nll), el,
                 el / static_cast<double>(done) * static_cast<double>(total - done));
    if (done == total) std::fputc('\n', stderr);
  });

  if (o.json) {
    nlohmann::json j = {{"ppl", r.ppl},         {"nll", r.nll},
                        {"nll_stderr", r.nll_stderr},
                        {"ppl_stderr", r.ppl * r.nll_stderr},
                        {"tokens", r.tokens},   {"windows", r.windows},
                        {"ctx", r.ctx},         {"mode", r.mode},
                        {"stream_tokens", r.stream_tokens},
                        {"seconds", r.seconds}, {"model", model_path},
                        {"text", o.text},       {"weight_bytes", model.weight_bytes()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("mode %s  ctx %lld  windows %lld  tokens %lld\n", r.mode.c_str(),
                static_cast<long long>(r.ctx), static_cast<long long>(r.windows),
                static_cast<long long>(r.tokens));
    std::printf("ppl %.4f +/- %.4f  (nll %.5f +/- %.5f nats/token)  %.1f s\n", r.ppl,
                r.ppl * r.nll_stderr, r.nll, r.nll_stderr, r.seconds);
  }
  print_memory(model, int64_t{2} * model.config.n_layers * model.config.kv_dim() * 4);
}

}  // namespace

void register_ppl(CLI::App& app) {
  auto o = std::make_shared<PplCliOptions>();
  CLI::App* cmd = app.add_subcommand("ppl", "Perplexity of a model on a text file");
  cmd->add_option("--model", o->model,
                  "llama2.c .bin file or Hugging Face model directory (default: stories260K "
                  "from $WKVQ_SHARED_DIR or ../shared)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: beside the model)");
  cmd->add_option("--text", o->text, "Text file, tokenized as one stream with BOS first")
      ->required();
  cmd->add_option("--ctx", o->ctx, "Window length T (default: min(2048, model context))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--max-windows", o->max_windows, "Score at most N windows (default: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--mode", o->mode, "Evaluation mode (prefill: one pass per window)")
      ->capture_default_str()
      ->check(CLI::IsMember({"prefill"}));
  cmd->add_flag("--json", o->json, "Print one JSON object on stdout instead of the table");
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] { run_ppl(*o); });
}

}  // namespace wkvq::cli
