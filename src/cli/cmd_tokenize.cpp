// wkvq tokenize: the token ids of a text as one JSON array on stdout, or (--decode) the text that
// those ids decode back to; with --lines / --json-lines, every line of the input on its own (one
// output line each). For checking tokenizers against independent references and measuring
// their speed.
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
  bool bos = false, eos = false, decode = false, parse_special = false;
  bool lines = false, json_lines = false;
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

// The texts to encode: the whole input, or its lines (split at '\n', which belongs to no line;
// a final '\n' ends the last line), or with json_lines each line read as one JSON string.
std::vector<std::string> input_texts(const TokenizeOptions& o, const std::string& text) {
  if (!o.lines && !o.json_lines) return {text};
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (!o.json_lines) {
      out.push_back(line);
      continue;
    }
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      WKVQ_REQUIRE(j.is_string(), "found ", j.type_name());
      out.push_back(j.get<std::string>());
    } catch (const std::exception& e) {
      fail("--json-lines: line ", out.size() + 1, " is not one JSON string (", e.what(),
           "); expected each line to be a JSON string such as \"a\\nb\"");
    }
  }
  return out;
}

void run_tokenize(const TokenizeOptions& o) {
  const std::string path = o.tokenizer.empty()
                               ? find_tokenizer_beside(o.model, llama2c_vocab_size(o.model))
                               : o.tokenizer;
  TokenizerOptions topt;
  topt.parse_special = o.parse_special;
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(path, topt);
  // An empty file is fine: the ids are then just BOS / EOS when asked.
  const std::vector<std::string> texts = input_texts(
      o, o.text_file.empty() ? o.prompt : read_text_file(o.text_file, "--text-file", true));
  const bool per_line = o.lines || o.json_lines;
  size_t bytes = 0, tokens = 0;
  double seconds = 0;
  std::string out;
  for (const std::string& text : texts) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int> ids = tok->encode(text, o.bos, o.eos);
    seconds += seconds_since(t0);
    bytes += text.size();
    tokens += ids.size();
    if (!o.decode) {
      out += nlohmann::json(ids).dump() + "\n";
    } else if (per_line) {  // a JSON string; bytes that are not UTF-8 shown as U+FFFD
      out += nlohmann::json(tok->decode(ids))
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
             "\n";
    } else {
      out += tok->decode(ids);  // raw bytes, no newline added
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  info("texts: %zu, bytes: %zu, tokens: %zu, seconds: %.4f, MB/s: %.2f\n", texts.size(), bytes,
       tokens, seconds, seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0.0);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Print the token ids of a text as one JSON array (or, with --decode, the text "
      "they decode to); the encoding time and speed go to stderr");
  auto* tokenizer =
      cmd->add_option("--tokenizer", o->tokenizer,
                      "Tokenizer file: *.json is a Hugging Face tokenizer.json (with "
                      "tokenizer_config.json beside it, if any), *.model SentencePiece, anything "
                      "else a llama2.c tokenizer.bin")
          ->type_name("FILE");
  auto* model =
      cmd->add_option(
             "--model", o->model,
             "Use the tokenizer beside this model: tokenizer.json (preferred) or tokenizer.model "
             "in a Hugging Face directory; tokenizer.bin or tok<vocab>.bin beside a llama2.c "
             ".bin file")
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
  cmd->add_flag("--bos", o->bos,
                "Put the BOS id first (a tokenizer.json: only when its add_bos_token or "
                "post_processor adds one)");
  cmd->add_flag("--eos", o->eos, "Put the EOS id last (a tokenizer.json: likewise)");
  cmd->add_flag("--parse-special", o->parse_special,
                "tokenizer.json: special tokens written in the text (<|eot_id|>, <|im_start|>, "
                "...) become their ids; without it they are ordinary text");
  auto* lines = cmd->add_flag(
      "--lines", o->lines,
      "Encode each line of the text on its own (split at \\n, which "
      "belongs to no line); print one JSON array (with --decode: one JSON string) per "
      "line");
  auto* json_lines = cmd->add_flag(
      "--json-lines", o->json_lines,
      "Like --lines, but each input line is one JSON string (texts with newlines); with "
      "--decode each output line is a JSON string");
  lines->excludes(json_lines);
  json_lines->excludes(lines);
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
