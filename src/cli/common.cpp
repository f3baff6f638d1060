#include "cli/common.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/parallel.h"
#include "model/loader.h"

namespace wkvq::cli {

namespace fs = std::filesystem;

std::string resolve_model_path(const std::string& model) {
  if (!model.empty()) return model;
  const char* env = std::getenv("WKVQ_SHARED_DIR");
  const std::string shared = env != nullptr && *env != '\0' ? env : "../shared";
  const std::string fallback = shared + "/models/stories260K/stories260K.bin";
  WKVQ_REQUIRE(fs::exists(fallback), "no --model given and the default model ", fallback,
               " does not exist; pass --model PATH (a llama2.c .bin file or a Hugging Face "
               "model directory)");
  return fallback;
}

Model load_model_verbose(const std::string& path, bool to_quantize) {
  LoadOptions opt;
  opt.half_in_place = to_quantize;
  Model m = load_model(path, opt);
  std::fprintf(stderr, "model: %s (%s)\n", path.c_str(), m.config.summary().c_str());
  return m;
}

void check_tokenizer_fits(const Tokenizer& tok, const std::string& tokenizer_path,
                          const std::string& model, int vocab_size) {
  WKVQ_REQUIRE(tok.vocab_size() <= vocab_size, "the tokenizer ", tokenizer_path,
               " can produce ids up to ", tok.vocab_size() - 1, " but the model ", model,
               " has only ", vocab_size,
               " embedding rows (vocab_size); pass the model's own --tokenizer");
}

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& tokenizer, const std::string& model,
                                          int vocab_size) {
  const std::string path = tokenizer.empty() ? find_tokenizer_beside(model, vocab_size) : tokenizer;
  std::unique_ptr<Tokenizer> tok = load_tokenizer(path);
  check_tokenizer_fits(*tok, path, model, vocab_size);
  return tok;
}

void add_threads_option(CLI::App* cmd, int* threads) {
  cmd->add_option("--threads", *threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
}

void apply_threads(int threads) {
  if (threads > 0) set_num_threads(threads);
}

std::string read_text_file(const std::string& path, const char* option, bool allow_empty) {
  std::ifstream in(path, std::ios::binary);
  WKVQ_REQUIRE(in.good(), "cannot open text file ", path, "; check the path given to ", option);
  std::ostringstream os;
  os << in.rdbuf();
  WKVQ_REQUIRE(!in.bad(), "error while reading text file ", path);
  std::string text = os.str();
  WKVQ_REQUIRE(allow_empty || !text.empty(), "text file ", path, " (", option,
               ") is empty; give a file with text in it");
  return text;
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

void print_memory(const Model& m, int64_t kv_bytes_per_token) {
  std::fprintf(stderr, "memory: weights %s, KV cache %s per token, peak RSS %s\n",
               human_bytes(static_cast<double>(m.weight_bytes())).c_str(),
               human_bytes(static_cast<double>(kv_bytes_per_token)).c_str(),
               human_bytes(static_cast<double>(peak_rss_bytes())).c_str());
}

}  // namespace wkvq::cli
