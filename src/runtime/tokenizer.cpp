#include "runtime/tokenizer.h"

#include <filesystem>
#include <string>

#include "core/error.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/hf_tokenizer.h"
#include "runtime/sp_tokenizer.h"

namespace wkvq {

namespace fs = std::filesystem;

std::string Tokenizer::decode(const std::vector<int>& tokens) const {
  std::string out;
  int prev = -1;
  for (const int t : tokens) {
    if (t != bos_id() && t != eos_id()) out += decode_piece(prev, t);
    prev = t;
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path,
                                          const TokenizerOptions& options) {
  std::error_code ec;
  WKVQ_REQUIRE(fs::is_regular_file(path, ec), "tokenizer ", path,
               " does not exist or is not a file; pass --tokenizer with a tokenizer.json, a "
               "tokenizer.model or a llama2.c tokenizer.bin");
  const fs::path ext = fs::path(path).extension();
  if (ext == ".json") return HfTokenizer::load(path, options);
  if (ext == ".model") return std::make_unique<SpTokenizer>(path);
  return BpeTokenizer::load(path, 0);
}

std::string find_tokenizer_beside(const std::string& model_path, int vocab_size) {
  std::error_code ec;
  std::vector<fs::path> tried;
  if (fs::is_directory(model_path, ec)) {
    tried = {fs::path(model_path) / "tokenizer.json", fs::path(model_path) / "tokenizer.model",
             fs::path(model_path) / "tokenizer.bin"};
  } else {
    fs::path dir = fs::path(model_path).parent_path();
    if (dir.empty()) dir = ".";
    tried = {dir / "tokenizer.bin"};
    if (vocab_size > 0) tried.push_back(dir / ("tok" + std::to_string(vocab_size) + ".bin"));
  }
  std::string list;
  for (const fs::path& p : tried) {
    if (fs::is_regular_file(p, ec)) return p.string();
    list += (list.empty() ? "" : ", ") + p.string();
  }
  const bool missing = !fs::exists(model_path, ec);
  fail("no tokenizer found beside the model ", model_path, missing ? " (which does not exist)" : "",
       " (tried ", list,
       "); pass --tokenizer FILE (a tokenizer.json, a tokenizer.model or a llama2.c "
       "tokenizer.bin)");
}

}  // namespace wkvq
