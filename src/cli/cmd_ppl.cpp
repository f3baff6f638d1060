// wkvq ppl: perplexity (and KL divergence) of a model on a text file in one evaluation mode
// (design.md §3), or the whole ablation ladder (--ablation).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/kernel_options.h"
#include "cli/ppl_ablation.h"
#include "cli/ppl_kvlab.h"
#include "cli/ppl_options.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "eval/perplexity.h"

namespace wkvq::cli {

namespace {

void run_ppl(const PplCliOptions& o) {
  apply_threads(o.threads);
  apply_kernel_options(o.kernels);
  const std::string model_path = resolve_model_path(o.model);
  // --kld and --ablation run the floating-point model too: it is loaded in f32 for them.
  Model loaded = load_model_verbose(
      model_path, o.quant.wbits > 0 && !o.kld && !o.ablation && !o.kvlab.active());
  const auto tok = open_tokenizer(o.tokenizer, model_path, loaded.config.vocab_size);
  const std::string text = read_text_file(o.text);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> stream = tok->encode(text, /*bos=*/true, /*eos=*/false);
  info("text: %s, %zu bytes, %zu tokens (tokenized in %.2f s)\n", o.text.c_str(), text.size(),
       stream.size(), seconds_since(t0));
  PplOptions opt;
  opt.ctx = o.ctx;
  opt.max_windows = o.max_windows;
  WKVQ_REQUIRE(o.ablation || (!o.calibrate && o.calibrated.empty()),
               "--calibrate and --calibrated add rungs to --ablation: pass --ablation too");
  WKVQ_REQUIRE(!o.calib.resume && o.calib.stop_after_block < 0,
               "--resume and --stop-after-block belong to wkvq quantize; --ablation --calibrate "
               "resumes by itself when --run-dir holds an earlier run's rungs");
  if (o.ablation) {
    WKVQ_REQUIRE(!o.kvlab.active(), "--ablation and --kv-method/--kv-sweep: give one of them");
    run_ablation_cmd(o, model_path, loaded, *tok, stream, opt);
    return;
  }
  if (o.kvlab.active()) {
    const KvLabRun run{&o.quant, o.text, o.mode, o.json, o.kld, &stream, opt};
    run_kv_lab(o.kvlab, run, std::move(loaded), *tok);
    return;
  }

  const bool fp_reference = o.kld && o.kld_model.empty();  // --kld against the model itself
  const PreparedModel p = prepare_model(std::move(loaded), o.quant, tok.get(), fp_reference);
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
  info("evaluating %s in %s mode\n", p.describe().c_str(), eval_mode_name(opt.mode));
  const PplResult r = perplexity(p.model, stream, opt, ppl_progress_printer());

  if (o.json) {
    nlohmann::json j = ppl_result_json(r);
    j["model"] = model_path;
    j["text"] = o.text;
    j["quantization"] = p.describe();
    j["weight_bytes"] = p.model.weight_bytes();
    j["kernels"] = kernels_json();
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
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer file: tokenizer.json, tokenizer.model or tokenizer.bin (default: "
                  "beside the model, tokenizer.json preferred)");
  cmd->add_option("--text", o->text,
                  "Text file, tokenized as one stream with BOS first (when the tokenizer adds one)")
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
                "smoothing) in decode and prefill modes; needs --calib. With --kv-vbits, "
                "--kv-window or --kv-meta (on top of the ladder's --kvbits/--kvgroup), or "
                "--kv-auto, also the rungs of that KV format: RTN + POQ + statistics smoothing, "
                "and with --calibrate WKVQuant trained under it");
  cmd->add_flag("--calibrate", o->calibrate,
                "With --ablation: add the learned rungs, each calibrated here (+LWC; +learned "
                "smoothing; +MAE loss; +CRR with --k), with the calibration options below, and "
                "the GPTQ rungs (GPTQ weights with float KV; with the quantized KV cache, "
                "POQ and statistics smoothing; and with the KV smoothing learned by the CRR "
                "rung's options on the frozen GPTQ weights; --samples, --window, --gptq-damp, "
                "--act-order)");
  cmd->add_option("--calibrated", o->calibrated,
                  "With --ablation: quantized model directories (e.g. from wkvq quantize "
                  "--method wkvquant) added as rungs; repeatable");
  cmd->add_flag("--json", o->json, "Print one JSON object on stdout instead of the table");
  o->kvlab.add_to(cmd);
  o->quant.add_to(cmd);
  CLI::App* crr =
      cmd->add_option_group("calibration", "Calibration options of --ablation --calibrate");
  o->calib.add_to(crr);
  add_threads_option(cmd, &o->threads);
  add_kernel_options(cmd, &o->kernels);
  cmd->callback([o] { run_ppl(*o); });
}

}  // namespace wkvq::cli
