// wkvq tokenize: the token ids of a text as one JSON array on stdout, or (--decode) the text that
// those ids decode back to. For checking tokenizers against independent references.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/console.h"
#include "core/error.h"
#include "runtime/tokenizer.h"

namespace wkvq::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer, model, prompt, text_file;
  bool bos = false, eos = false, decode = false;
};

// The vocab size a llama2.c model file declares: |int32| at byte offset 20 of its header (the
// sign marks a shared classifier). 0 for a directory or a file too short to hold the header;
// then only tokenizer.bin is looked for beside it.
int llama2c_vocab_size(const std::string& model) {
  std::error_code ec;
  if (std::filesystem::is_directory(model, ec)) return 0;
  std::ifstream in(model, std::ios::binary);
  in.seekg(20);
  int32_t v = 0;
  in.read(reinterpret_cast<char*>(&v), sizeof v);
  if (!in || v == INT32_MIN) return 0;
  return v < 0 ? -v : v;
}

void run_tokenize(const TokenizeOptions& o) {
  const std::string path = o.tokenizer.empty()
                               ? find_tokenizer_beside(o.model, llama2c_vocab_size(o.model))
                               : o.tokenizer;
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(path);
  // An empty file is fine: the ids are then just BOS / EOS when asked.
  const std::string text =
      o.text_file.empty() ? o.prompt : read_text_file(o.text_file, "--text-file", true);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> ids = tok->encode(text, o.bos, o.eos);
  const double seconds = seconds_since(t0);
  if (o.decode) {
    const std::string decoded = tok->decode(ids);  // raw bytes, no newline added
    std::fwrite(decoded.data(), 1, decoded.size(), stdout);
  } else {
    std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  }
  std::fflush(stdout);
  info("tokens: %zu, seconds: %.4f\n", ids.size(), seconds);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Print the token ids of a text as one JSON array (or, with --decode, the text "
      "they decode to); the encoding time goes to stderr");
  auto* tokenizer =
      cmd->add_option(
             "--tokenizer", o->tokenizer,
             "Tokenizer file: *.model is SentencePiece, anything else a llama2.c tokenizer.bin")
          ->type_name("FILE");
  auto* model =
      cmd->add_option(
             "--model", o->model,
             "Use the tokenizer beside this model: tokenizer.model in a Hugging Face directory; "
             "tokenizer.bin or tok<vocab>.bin beside a llama2.c .bin file")
          ->type_name("PATH");
  tokenizer->excludes(model);
  model->excludes(tokenizer);
  auto* prompt = cmd->add_option("--prompt", o->prompt, "The text to tokenize");
  auto* file = cmd->add_option("--text-file", o->text_file,
                               "File whose whole content (bytes as they are) is tokenized as "
                               "one stream")
                   ->type_name("FILE");
  prompt->excludes(file);
  file->excludes(prompt);
  cmd->add_flag("--bos", o->bos, "Put the BOS id first");
  cmd->add_flag("--eos", o->eos, "Put the EOS id last");
  cmd->add_flag("--decode", o->decode,
                "Print the text the ids decode to (raw bytes, no newline) instead of the ids: "
                "a round-trip check");
  cmd->callback([o, tokenizer, model, prompt, file] {
    WKVQ_REQUIRE(tokenizer->count() + model->count() == 1,
                 "tokenize: give --tokenizer FILE or --model PATH");
    WKVQ_REQUIRE(prompt->count() + file->count() == 1,
                 "tokenize: give the text with --prompt TEXT or --text-file FILE");
    run_tokenize(*o);
  });
}

}  // namespace wkvq::cli
