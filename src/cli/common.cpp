#include "cli/common.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/console.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/kernel_table.h"
#include "kernels/qmatmul.h"
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
  info("model: %s (%s)\n", path.c_str(), m.config.summary().c_str());
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
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int most = kMaxThreadsPerCore * hw;
  cmd->add_option("--threads", *threads,
                  "Worker threads (default: all cores; at most " +
                      std::to_string(kMaxThreadsPerCore) + " x the hardware threads)")
      ->check(CLI::Validator(
          [hw, most](const std::string& v) -> std::string {
            int n = 0;
            if (!CLI::detail::lexical_cast(v, n) || n < 1) {
              return "--threads " + v + ": expected a whole number >= 1";
            }
            if (n > most) {
              return "--threads " + v + ": this machine has " + std::to_string(hw) +
                     " hardware threads; at most " + std::to_string(most) + " (" +
                     std::to_string(kMaxThreadsPerCore) +
                     " x) are allowed, more only slow the run down";
            }
            return std::string();
          },
          "1.." + std::to_string(most)));
}

void add_sampling_options(CLI::App* cmd, float* temperature, float* top_p, uint64_t* seed) {
  cmd->add_option("--temperature", *temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-p", *top_p, "Nucleus sampling mass in (0, 1]; 1 = off")
      ->capture_default_str();
  add_seed_option(cmd, seed, "Seed of the sampler");
}

void add_seed_option(CLI::App* cmd, uint64_t* seed, const std::string& help) {
  cmd->add_option("--seed", *seed, help + " (0 .. 2^64-1)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& v) -> std::string {
            const bool digits = !v.empty() && v.size() <= 20 &&
                                v.find_first_not_of("0123456789") == std::string::npos;
            const bool fits = digits && (v.size() < 20 || v <= "18446744073709551615");
            return fits ? std::string()
                        : "--seed " + v +
                              ": expected a whole number in 0 .. 2^64-1 "
                              "(18446744073709551615)";
          },
          "0..2^64-1"));
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

nlohmann::json kernels_json() {
  const KernelTable& t = kernel_table();
  nlohmann::json ops = nlohmann::json::object();
  for (const auto& [op, kernel] : kernel_table_entries(t)) ops[op] = kernel;
  return {{"isa", isa_name(t.isa)},
          {"isa_pinned", t.isa_pinned},
          {"int4_gemv", gemv_form_name(t.int4_gemv.form)},
          {"int4_gemv_pinned", t.int4_gemv.pinned},
          {"prefill_gemm", t.int4_gemm.form == PrefillGemm::Int8 ? "int8" : "f32"},
          {"prefill_gemm_pinned", t.int4_gemm.pinned},
          {"evaluation_gemm", t.int8_gemm_for(GemmUse::Exact) ? "int8" : "f32"},
          {"decode_gemv", t.int4_decode.form == DecodeGemv::Int8 ? "int8" : "f32"},
          {"decode_gemv_pinned", t.int4_decode.pinned},
          {"kv_scores", t.kv_scores.form == KvScores::Int8 ? "int8" : "f32"},
          {"kv_scores_pinned", t.kv_scores.pinned},
          {"int8_gemm_amx", t.amx},
          {"ops", ops}};
}

void print_memory(const Model& m, int64_t kv_bytes_per_token) {
  info("kernels: %s\n", kernel_summary().c_str());
  info("memory: weights %s, KV cache %s per token, peak RSS %s\n",
       human_bytes(static_cast<double>(m.weight_bytes())).c_str(),
       human_bytes(static_cast<double>(kv_bytes_per_token)).c_str(),
       human_bytes(static_cast<double>(peak_rss_bytes())).c_str());
}

void print_memory(const Model& m, const Session& s, nlohmann::json* j) {
  const int64_t kv = s.cache().bytes_per_token() * s.max_tokens() + s.cache().window_bytes();
  const int64_t scratch = s.scratch_bytes();
  const int64_t copies = m.layout_copy_bytes();
  const int64_t accounted = m.weight_bytes() + copies + kv + scratch;
  const int64_t rss = peak_rss_bytes();
  if (j != nullptr) {
    (*j)["accounted_bytes"] = accounted;
    (*j)["layout_copy_bytes"] = copies;
    (*j)["kv_cache_bytes"] = kv;
    (*j)["scratch_bytes"] = scratch;
    (*j)["peak_rss_bytes"] = rss;
  }
  info("kernels: %s\n", kernel_summary().c_str());
  info(
      "memory: weights %s%s + KV cache %s (%lld positions) + scratch %s = %s accounted; peak RSS "
      "%s (%.2fx)\n",
      human_bytes(static_cast<double>(m.weight_bytes())).c_str(),
      copies > 0 ? (" + tile layout " + human_bytes(static_cast<double>(copies))).c_str() : "",
      human_bytes(static_cast<double>(kv)).c_str(), static_cast<long long>(s.max_tokens()),
      human_bytes(static_cast<double>(scratch)).c_str(),
      human_bytes(static_cast<double>(accounted)).c_str(),
      human_bytes(static_cast<double>(rss)).c_str(),
      static_cast<double>(rss) / static_cast<double>(accounted));
}

}  // namespace wkvq::cli
