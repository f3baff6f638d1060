// wkvq logits: the logits of every position of a token sequence, saved as .npy; for comparing
// the runtime with independent reference implementations.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "cli/kernel_options.h"
#include "cli/quant_options.h"
#include "core/error.h"
#include "io/npy.h"
#include "runtime/session.h"

namespace wkvq::cli {

namespace {

struct LogitsOptions {
  std::string model, tokenizer, tokens, prompt, out;
  bool decode = false;
  int threads = 0;
  KernelCliOptions kernels;
  QuantCliOptions quant;
};

std::vector<int> parse_token_list(const std::string& s) {
  std::vector<int> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int id = 0;
    try {
      id = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    WKVQ_REQUIRE(used == item.size() && !item.empty(), "--tokens: expected comma-separated ",
                 "integers, found '", item, "'");
    ids.push_back(id);
  }
  return ids;
}

void run_logits(const LogitsOptions& o) {
  apply_threads(o.threads);
  apply_kernel_options(o.kernels);
  const std::string model_path = resolve_model_path(o.model);
  Model loaded = load_model_verbose(model_path, o.quant.wbits > 0);
  const int vocab = loaded.config.vocab_size;
  std::unique_ptr<Tokenizer> tok;
  if (o.tokens.empty() || !o.quant.calib.empty()) {
    tok = open_tokenizer(o.tokenizer, model_path, vocab);
  }
  const std::vector<int> ids =
      o.tokens.empty() ? tok->encode(o.prompt, true, false) : parse_token_list(o.tokens);
  const PreparedModel p = prepare_model(std::move(loaded), o.quant, tok.get(), /*keep_fp=*/false);
  const Model& model = p.model;
  WKVQ_REQUIRE(!ids.empty(), "no tokens: give --tokens or --prompt");
  const auto n = static_cast<int64_t>(ids.size());
  Session session(model, n, p.kv, p.smoothing_or_null());
  std::vector<float> logits(static_cast<size_t>(n * vocab));
  if (o.decode) {  // token by token through the cache
    for (int64_t t = 0; t < n; ++t) {
      const float* l = session.decode(ids[static_cast<size_t>(t)]);
      std::copy(l, l + vocab, logits.begin() + t * vocab);
    }
  } else {  // one batched pass
    session.forward_all(ids.data(), n, logits.data());
  }
  write_npy_f32(o.out, logits.data(), {n, vocab});
  info("wrote %s: (%lld, %d) float32 logits (%s)\n", o.out.c_str(), static_cast<long long>(n),
       vocab, o.decode ? "decode" : "prefill");
  print_memory(model, session);
}

}  // namespace

void register_logits(CLI::App& app) {
  auto o = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "logits", "Write the logits of every position of a token sequence to a .npy file");
  cmd->add_option("--model", o->model, "llama2.c .bin file or Hugging Face model directory");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer for --prompt: tokenizer.json, tokenizer.model or tokenizer.bin "
                  "(default: beside the model)");
  auto* toks = cmd->add_option("--tokens", o->tokens, "Token ids, comma-separated: 1,403,22");
  cmd->add_option("--prompt", o->prompt, "Text to tokenize (BOS first) instead of --tokens")
      ->excludes(toks);
  cmd->add_option("--out", o->out, "Output .npy file: float32 (n_tokens, vocab)")->required();
  cmd->add_flag("--decode", o->decode,
                "Run token by token through the KV cache instead of one batched pass");
  o->quant.add_to(cmd);
  add_threads_option(cmd, &o->threads);
  add_kernel_options(cmd, &o->kernels);
  cmd->callback([o] { run_logits(*o); });
}

}  // namespace wkvq::cli
