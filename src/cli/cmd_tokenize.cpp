// wkvq tokenize: token ids of a text (JSON array on stdout), or its decoded text (--decode).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"

namespace wkvq::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer, model, prompt, text_file;
  bool bos = false, eos = false, decode = false;
};

// The vocabulary size a llama2.c .bin declares (|int32 at offset 20|), to find tok<N>.bin.
int llama2c_vocab_size(const std::string& model) {
  if (std::filesystem::is_directory(model)) return 0;
  std::ifstream in(model, std::ios::binary);
  int32_t header[7] = {};
  in.read(reinterpret_cast<char*>(header), sizeof header);
  WKVQ_REQUIRE(in.gcount() == sizeof header, model, ": too short for a llama2.c header");
  return std::abs(header[5]);
}

void run_tokenize(const TokenizeOptions& o) {
  WKVQ_REQUIRE(!o.tokenizer.empty() || !o.model.empty(), "give --tokenizer FILE or --model PATH");
  const std::string path =
      o.tokenizer.empty() ? find_tokenizer_beside(o.model, llama2c_vocab_size(o.model))
                          : o.tokenizer;
  const auto tok = load_tokenizer(path);
  const std::string text = o.text_file.empty() ? o.prompt : read_text_file(o.text_file);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> ids = tok->encode(text, o.bos, o.eos);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.decode) {
    std::printf("%s\n", tok->decode(ids).c_str());
  } else {
    std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  }
  std::fprintf(stderr, "tokens: %zu, bytes: %zu, seconds: %.3f\n", ids.size(), text.size(), s);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Token ids of a text as a JSON array");
  auto* t = cmd->add_option("--tokenizer", o->tokenizer,
                            "tokenizer.model (SentencePiece) or llama2.c tokenizer.bin");
  cmd->add_option("--model", o->model, "Use the tokenizer beside this model")->excludes(t);
  auto* p = cmd->add_option("--prompt", o->prompt, "Text to tokenize");
  cmd->add_option("--text-file", o->text_file, "File to tokenize as one stream")->excludes(p);
  cmd->add_flag("--bos", o->bos, "Put BOS first");
  cmd->add_flag("--eos", o->eos, "Put EOS last");
  cmd->add_flag("--decode", o->decode, "Print the decoded text of the ids instead (round trip)");
  cmd->callback([o] { run_tokenize(*o); });
}

}  // namespace wkvq::cli
