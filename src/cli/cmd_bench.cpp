// wkvq bench: prefill and decode speed of a model (a real one, or seeded random weights of a
// named shape), with GB/s and the memory-bandwidth bound of decode.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/bench_parallel.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/kernel_options.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/bandwidth.h"
#include "model/loader.h"
#include "model/random_model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace wkvq::cli {

namespace {

struct BenchOptions {
  std::string model, shape = "tinyllama-1.1b", shape_file;
  int prefill = 128;
  int decode = 32;
  uint64_t seed = 1;
  int threads = 0;
  KernelCliOptions kernels;
  bool json = false;
  std::vector<int> parallel;  // --parallel: batched decode of these many sequences
  QuantCliOptions quant;
};

// Bytes a decode step reads: every linear and norm, one embedding row and the output head.
double weight_bytes_per_token(const Model& m) {
  const LlamaConfig& c = m.config;
  const auto embed_table = static_cast<double>(m.embedding_bytes());
  double b = static_cast<double>(m.weight_bytes()) - embed_table + embed_table / c.vocab_size;
  if (c.tied_output) b += embed_table;  // the head reads the shared table
  return b;
}

// Seeded random weights of the shape; with --wbits, generated already quantized (one linear at a
// time, make_random_quantized_model) so that the f32 model is never held.
Model random_model(const BenchOptions& o, const LlamaConfig& c, QuantCliOptions& q) {
  if (q.wbits == 0) return make_random_model(c, o.seed);
  const RandomQuantization rq = random_quantization(q, c);
  q.wbits = 0;  // done: prepare_model applies the KV options only
  return make_random_quantized_model(c, o.seed, rq);
}

// The speed lines of a single-sequence bench, from its JSON record.
void print_speed(const nlohmann::json& j) {
  const double decode_tps = j["decode_tok_s"], bytes_tok = j["decode_bytes_per_token"];
  const double bw = j["read_bandwidth_gb_s"].get<double>() * 1e9;
  std::printf("prefill %d tokens: %.2f tok/s\n", j["prefill_tokens"].get<int>(),
              j["prefill_tok_s"].get<double>());
  std::printf("decode  %d tokens: %.2f tok/s, %.2f GB/s (%.1f MB read per token)\n",
              j["decode_tokens"].get<int>(), decode_tps, decode_tps * bytes_tok / 1e9,
              bytes_tok / 1e6);
  std::printf("memory read bandwidth %.2f GB/s -> decode bound %.2f tok/s (%.0f%% reached)\n",
              bw / 1e9, bw / bytes_tok, 100.0 * decode_tps * bytes_tok / bw);
}

// rel8 ranges for random weights without --calib: 2 windows of 256 seeded random tokens (the
// speed of the format; its accuracy needs a real model and text).
void random_range_tokens(uint64_t seed, const LlamaConfig& c, QuantCliOptions& quant) {
  std::mt19937 rng(static_cast<uint32_t>(seed) + 1u);
  std::uniform_int_distribution<int> pick(0, c.vocab_size - 1);
  quant.calib_ctx = std::min<int64_t>(256, c.seq_len);
  quant.range_tokens.resize(static_cast<size_t>(2 * quant.calib_ctx));
  for (int& t : quant.range_tokens) t = pick(rng);
}

void run_bench(const BenchOptions& o) {
  apply_threads(o.threads);
  apply_kernel_options(o.kernels);
  QuantCliOptions quant = o.quant;
  Model loaded;
  std::string what;
  std::unique_ptr<Tokenizer> tok;
  if (!o.model.empty()) {
    loaded = load_model_verbose(o.model, o.quant.wbits > 0);
    if (!o.quant.calib.empty()) tok = open_tokenizer("", o.model, loaded.config.vocab_size);
    what = o.model;
  } else {
    const LlamaConfig c =
        o.shape_file.empty() ? shape_preset(o.shape) : load_shape_file(o.shape_file);
    info("random weights (seed %llu): %s\n", static_cast<unsigned long long>(o.seed),
         c.summary().c_str());
    loaded = random_model(o, c, quant);
    what = o.shape_file.empty() ? o.shape : o.shape_file;
    if (quant.kv.rel8 && quant.calib.empty()) random_range_tokens(o.seed, c, quant);
  }
  const PreparedModel p = prepare_model(std::move(loaded), quant, tok.get(), /*keep_fp=*/false);
  if (!o.parallel.empty()) {
    const nlohmann::json j = bench_parallel(p, o.parallel, o.prefill, o.decode, o.seed, o.json);
    if (o.json) std::printf("%s\n", j.dump().c_str());
    print_memory(p.model, j["kv_bytes_per_token"].get<int64_t>());
    return;
  }
  const Model& model = p.model;
  const LlamaConfig& c = model.config;
  WKVQ_REQUIRE(o.prefill + o.decode <= c.seq_len, "--prefill + --decode (", o.prefill + o.decode,
               ") exceeds the model context of ", c.seq_len);
  std::seed_seq seq{static_cast<uint32_t>(o.seed), static_cast<uint32_t>(o.seed >> 32)};
  std::mt19937 rng(seq);
  std::uniform_int_distribution<int> pick(0, c.vocab_size - 1);
  std::vector<int> prompt(static_cast<size_t>(o.prefill));
  for (int& t : prompt) t = pick(rng);

  Session session(model, o.prefill + o.decode, p.kv, p.smoothing_or_null());
  info("attention: %s\n", session.cache().attention_kernel().c_str());
  session.prefill({prompt[0]});  // warm-up: touches every weight page once
  session.reset();
  auto t0 = std::chrono::steady_clock::now();
  const float* logits = session.prefill(prompt);
  const double prefill_s = seconds_since(t0);
  int token = argmax(logits, c.vocab_size);
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.decode; ++i) token = argmax(session.decode(token), c.vocab_size);
  const double decode_s = seconds_since(t0);

  const double prefill_tps = o.prefill / prefill_s;
  const double decode_tps = o.decode / decode_s;
  const double kv_read = static_cast<double>(session.cache().bytes_per_token()) *
                         (o.prefill + o.decode / 2.0);  // mean cache length while decoding
  const double bytes_tok = weight_bytes_per_token(model) + kv_read;
  nlohmann::json j = {{"model", what},
                      {"threads", num_threads()},
                      {"quantization", p.describe()},
                      {"weight_bytes", model.weight_bytes()},
                      {"kv_bytes_per_token", session.cache().bytes_per_token()},
                      {"prefill_tokens", o.prefill},
                      {"prefill_tok_s", prefill_tps},
                      {"decode_tokens", o.decode},
                      {"decode_tok_s", decode_tps},
                      {"decode_bytes_per_token", bytes_tok},
                      {"decode_gb_s", decode_tps * bytes_tok / 1e9},
                      {"kernels", kernels_json()},
                      {"attention_kernel", session.cache().attention_kernel()}};
  // The memory line first: the bandwidth probe's buffer (512 MiB) is not the model's memory.
  print_memory(model, session, &j);
  const double bw = measure_read_bandwidth();
  j["read_bandwidth_gb_s"] = bw / 1e9;
  j["decode_bound_tok_s"] = bw / bytes_tok;
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s, %s, %d threads\n", what.c_str(), p.describe().c_str(), num_threads());
    print_speed(j);
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Prefill and decode speed, GB/s and the bound");
  auto* model = cmd->add_option("--model", o->model, "Benchmark a real model instead");
  cmd->add_option("--random-shape", o->shape,
                  "Seeded random weights of a named shape: tinyllama-1.1b, llama2-7b, "
                  "stories260k-shape")
      ->capture_default_str()
      ->excludes(model);
  cmd->add_option("--shape-file", o->shape_file,
                  "Random weights of the shape in a JSON file with HF config.json keys")
      ->excludes(model);
  cmd->add_option("--prefill", o->prefill, "Prompt tokens")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--decode", o->decode, "Generated tokens")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--parallel,--batch", o->parallel,
                  "Batched decode instead: N sequences (a list: 1,4,16) decoded together, each "
                  "after --prefill tokens of context (prefilled once, copied); aggregate tok/s, "
                  "ms per step and KV memory against fp16")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  add_seed_option(cmd, &o->seed, "Seed of weights and tokens");
  cmd->add_flag("--json", o->json, "Print one JSON object on stdout");
  o->quant.add_to(cmd);
  add_threads_option(cmd, &o->threads);
  add_kernel_options(cmd, &o->kernels);
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace wkvq::cli
