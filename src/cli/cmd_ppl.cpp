// wkvq ppl: perplexity (and KL divergence) of a model on a text file in one evaluation mode
// (design.md §3), or the whole ablation ladder (--ablation).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "eval/ablation.h"
#include "eval/perplexity.h"
#include "model/weight_quantizer.h"

namespace wkvq::cli {

namespace {

struct PplCliOptions {
  std::string model, tokenizer, text, mode, kld_model;
  int64_t ctx = 0;
  int64_t max_windows = 0;
  bool json = false, kld = false, ablation = false;
  int threads = 0;
  QuantCliOptions quant;
};

nlohmann::json result_json(const PplResult& r) {
  nlohmann::json j = {{"ppl", r.ppl},
                      {"nll", r.nll},
                      {"nll_stderr", r.nll_stderr},
                      {"ppl_stderr", r.ppl * r.nll_stderr},
                      {"tokens", r.tokens},
                      {"windows", r.windows},
                      {"ctx", r.ctx},
                      {"mode", r.mode},
                      {"stream_tokens", r.stream_tokens},
                      {"kv_bits_per_element", r.kv_bits_per_element},
                      {"kv_bytes_per_token", r.kv_bytes_per_token},
                      {"seconds", r.seconds}};
  if (r.has_kld) {
    j["kld"] = r.kld;
    j["kld_stderr"] = r.kld_stderr;
  }
  return j;
}

PplProgress progress_printer() {
  const auto started = std::chrono::steady_clock::now();
  return [started](int64_t done, int64_t total, double nll) {
    const double el =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "\rwindow %lld/%lld  ppl %.4f  elapsed %.1f s  eta %.1f s   ",
                 static_cast<long long>(done), static_cast<long long>(total), std::exp(nll), el,
                 el / static_cast<double>(done) * static_cast<double>(total - done));
    if (done == total) std::fputc('\n', stderr);
  };
}

// The ladder of issue #4: FP; W RTN; W+KV RTN without POQ; + POQ; + statistics smoothing.
void run_ablation_cmd(const PplCliOptions& o, const Model& fp, const Tokenizer& tok,
                      const std::vector<int>& stream, const PplOptions& base) {
  QuantCliOptions q = o.quant;
  const int wbits = q.wbits > 0 ? q.wbits : 4;
  const int kvbits = q.kvbits > 0 ? q.kvbits : 4;
  WKVQ_REQUIRE(kvbits <= 8, "--ablation quantizes the KV cache: --kvbits must be 2, 3, 4 or 8");
  WKVQ_REQUIRE(fp.quant.wbits == 0, "--ablation needs the floating-point model, not ",
               fp.source);
  WeightQuantOptions wo;
  wo.bits = wbits;
  wo.group = q.wgroup;
  wo.keep_float = KeepFloat(q.keep_float, fp.config.n_layers);
  const Model wq = quantize_weights_rtn(fp, wo);
  const KvSmoothing smooth =
      stats_smoothing(fp, tok, q.calib, q.calib_windows, q.calib_ctx);
  KvCacheSettings kv;
  kv.bits = kvbits;
  kv.group = q.kvgroup > 0 ? q.kvgroup : 0;
  KvCacheSettings nopoq = kv;
  nopoq.poq = false;
  const std::string w = "W" + std::to_string(wbits);
  const std::string wkv = w + "KV" + std::to_string(kvbits);
  const std::vector<AblationRung> rungs = {
      {"FP", &fp, KvCacheSettings{}, nullptr},
      {w + " RTN, FP KV", &wq, KvCacheSettings{}, nullptr},
      {wkv + " RTN, no POQ", &wq, nopoq, nullptr},
      {wkv + " RTN + POQ", &wq, kv, nullptr},
      {wkv + " RTN + POQ + stats smoothing", &wq, kv, &smooth}};
  const auto rows = run_ablation(fp, rungs, stream, base, [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
  });
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const AblationRow& r : rows) {
      arr.push_back({{"rung", r.rung}, {"decode", result_json(r.decode)},
                     {"prefill", result_json(r.prefill)}});
    }
    nlohmann::json j = {{"model", fp.source}, {"text", o.text}, {"calib", q.calib},
                        {"wbits", wbits},     {"wgroup", q.wgroup}, {"kvbits", kvbits},
                        {"kvgroup", kv.group == 0 ? fp.config.head_dim : kv.group},
                        {"rungs", arr}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("ablation: %s on %s, ctx %lld, %lld windows, %lld tokens; weights g%lld, KV g%d\n",
                fp.source.c_str(), o.text.c_str(), static_cast<long long>(rows[0].decode.ctx),
                static_cast<long long>(rows[0].decode.windows),
                static_cast<long long>(rows[0].decode.tokens), static_cast<long long>(q.wgroup),
                kv.group == 0 ? fp.config.head_dim : kv.group);
    std::printf("%s", format_ablation_table(rows).c_str());
  }
  print_memory(wq, 0);
}

void run_ppl(const PplCliOptions& o) {
  apply_threads(o.threads);
  const std::string model_path = resolve_model_path(o.model);
  Model loaded = load_model_verbose(model_path);
  const auto tok = open_tokenizer(o.tokenizer, model_path, loaded.config.vocab_size);
  const std::string text = read_text_file(o.text);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> stream = tok->encode(text, /*bos=*/true, /*eos=*/false);
  std::fprintf(stderr, "text: %s, %zu bytes, %zu tokens (tokenized in %.2f s)\n", o.text.c_str(),
               text.size(), stream.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  PplOptions opt;
  opt.ctx = o.ctx;
  opt.max_windows = o.max_windows;
  if (o.ablation) {
    run_ablation_cmd(o, loaded, *tok, stream, opt);
    return;
  }

  const PreparedModel p = prepare_model(std::move(loaded), o.quant, tok.get());
  std::unique_ptr<Model> kld_model;
  if (o.kld) {
    if (!o.kld_model.empty()) {
      kld_model = std::make_unique<Model>(load_model_verbose(o.kld_model));
    } else {
      WKVQ_REQUIRE(p.fp.quant.wbits == 0, "--kld: ", p.fp.source,
                   " is already quantized; give its floating-point original with --kld-model");
    }
    opt.kld_reference = kld_model ? kld_model.get() : &p.fp;
  }
  opt.kv = p.kv;
  opt.smoothing = p.smoothing_or_null();
  opt.mode = o.mode.empty() ? (p.kv.quantized() ? EvalMode::Decode : EvalMode::Prefill)
                            : parse_eval_mode(o.mode);
  std::fprintf(stderr, "evaluating %s in %s mode\n", p.describe().c_str(),
               eval_mode_name(opt.mode));
  const PplResult r = perplexity(p.model, stream, opt, progress_printer());

  if (o.json) {
    nlohmann::json j = result_json(r);
    j["model"] = model_path;
    j["text"] = o.text;
    j["quantization"] = p.describe();
    j["weight_bytes"] = p.model.weight_bytes();
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\nmode %s  ctx %lld  windows %lld  tokens %lld\n", p.describe().c_str(),
                r.mode.c_str(), static_cast<long long>(r.ctx), static_cast<long long>(r.windows),
                static_cast<long long>(r.tokens));
    std::printf("ppl %.4f +/- %.4f  (nll %.5f +/- %.5f nats/token)  %.1f s\n", r.ppl,
                r.ppl * r.nll_stderr, r.nll, r.nll_stderr, r.seconds);
    if (r.has_kld) std::printf("kld %.6f +/- %.6f nats/token\n", r.kld, r.kld_stderr);
  }
  print_memory(p.model, r.kv_bytes_per_token);
}

}  // namespace

void register_ppl(CLI::App& app) {
  auto o = std::make_shared<PplCliOptions>();
  CLI::App* cmd = app.add_subcommand("ppl", "Perplexity and KL divergence of a model on a text");
  cmd->add_option("--model", o->model,
                  "llama2.c .bin file, Hugging Face directory or quantized model directory "
                  "(default: stories260K from $WKVQ_SHARED_DIR or ../shared)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: beside the model)");
  cmd->add_option("--text", o->text, "Text file, tokenized as one stream with BOS first")
      ->required();
  cmd->add_option("--ctx", o->ctx, "Window length T (default: min(2048, model context))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--max-windows", o->max_windows, "Score at most N windows (default: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--mode", o->mode,
                  "prefill (one pass, float KV), decode (teacher-forced POQ over the quantized "
                  "cache) or decode-nopoq; default: decode when the KV cache is quantized, else "
                  "prefill")
      ->check(CLI::IsMember({"prefill", "decode", "decode-nopoq"}));
  cmd->add_flag("--kld", o->kld,
                "Also the mean KL divergence from the floating-point model's next-token "
                "distribution");
  cmd->add_option("--kld-model", o->kld_model,
                  "Floating-point reference for --kld when --model is already quantized");
  cmd->add_flag("--ablation", o->ablation,
                "Run the ablation ladder (FP; W RTN; WKV RTN without POQ; + POQ; + statistics "
                "smoothing) in decode and prefill modes; needs --calib");
  cmd->add_flag("--json", o->json, "Print one JSON object on stdout instead of the table");
  o->quant.add_to(cmd);
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] { run_ppl(*o); });
}

}  // namespace wkvq::cli
