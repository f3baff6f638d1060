#include "runtime/tokenizer.h"

#include <filesystem>
#include <string>

#include "core/error.h"
#include "runtime/bpe_tokenizer.h"
#include "runtime/sp_tokenizer.h"

namespace wkvq {

namespace fs = std::filesystem;

std::string Tokenizer::decode(const std::vector<int>& tokens) const {
  std::string out;
  int prev = -1;
  for (int t : tokens) {
    if (t != bos_id() && t != eos_id()) out += decode_piece(prev, t);
    prev = t;
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  WKVQ_REQUIRE(fs::is_regular_file(path), "tokenizer ", path, " does not exist or is not a file");
  if (fs::path(path).extension() == ".model") return std::make_unique<SpTokenizer>(path);
  return std::make_unique<BpeTokenizer>(path, 0);
}

std::string find_tokenizer_beside(const std::string& model_path, int vocab_size) {
  std::vector<fs::path> tried;
  if (fs::is_directory(model_path)) {
    tried = {fs::path(model_path) / "tokenizer.model", fs::path(model_path) / "tokenizer.bin"};
  } else {
    const fs::path dir = fs::path(model_path).parent_path();
    tried = {dir / "tokenizer.bin", dir / ("tok" + std::to_string(vocab_size) + ".bin")};
  }
  std::string list;
  for (const fs::path& p : tried) {
    if (fs::is_regular_file(p)) return p.string();
    list += (list.empty() ? "" : ", ") + p.string();
  }
  fail("no tokenizer found beside ", model_path, " (tried ", list,
       "); pass --tokenizer FILE (tokenizer.model or a llama2.c tokenizer.bin)");
}

}  // namespace wkvq
