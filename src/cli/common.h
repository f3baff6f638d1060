// Pieces shared by the subcommands: default paths, model and tokenizer loading with progress,
// thread settings and the memory report every command prints.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/clock.h"
#include "model/model.h"
#include "runtime/session.h"
#include "runtime/tokenizer.h"

namespace wkvq::cli {

// --model when given, else the default model (stories260K in the shared directory:
// $WKVQ_SHARED_DIR or ../shared); throws with what to pass when there is none.
std::string resolve_model_path(const std::string& model);

// Loads a model, printing what was loaded on stderr. `to_quantize`: its linears are going to be
// quantized, so an F16/BF16 checkpoint is not expanded to f32 (LoadOptions::half_in_place).
Model load_model_verbose(const std::string& path, bool to_quantize = false);

// --tokenizer when given, else the one beside the model; checked with check_tokenizer_fits.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& tokenizer, const std::string& model,
                                          int vocab_size);
// Throws, naming both files, when the tokenizer can produce ids at or beyond the model's
// vocab_size embedding rows (fewer tokens than rows is fine: Qwen pads its embedding).
void check_tokenizer_fits(const Tokenizer& tok, const std::string& tokenizer_path,
                          const std::string& model, int vocab_size);

// Adds --threads N (default: all cores) to a subcommand; apply_threads() sets it. N is at most
// kMaxThreadsPerCore times the hardware threads (more only slows the run down and can exhaust
// the process limit); larger values are refused with that limit.
void add_threads_option(CLI::App* cmd, int* threads);
inline constexpr int kMaxThreadsPerCore = 4;
// Adds --seed S: an integer in [0, 2^64 - 1]; a negative, fractional or larger value is refused
// (never wrapped).
void add_seed_option(CLI::App* cmd, uint64_t* seed, const std::string& help);
// Adds the sampler's options of generate and chat: --temperature (0 = greedy), --top-p and --seed.
void add_sampling_options(CLI::App* cmd, float* temperature, float* top_p, uint64_t* seed);
void apply_threads(int threads);

// Whole file as a string; throws when unreadable, or empty unless allow_empty. `option` names
// the option that gave the path, for the message.
std::string read_text_file(const std::string& path, const char* option = "--text",
                           bool allow_empty = false);

// Peak resident set size of this process, bytes.
int64_t peak_rss_bytes();
std::string human_bytes(double bytes);
// "memory: weights X, KV cache Y per token, peak RSS Z" and the kernels (kernel_summary of
// kernels/qmatmul.h) on stderr.
void print_memory(const Model& m, int64_t kv_bytes_per_token);
// The same for a run through `s`, with what the run should need beside it: "memory: weights W +
// KV cache K (T positions) + scratch S = A accounted; peak RSS R (R/A)". `j` (when not null)
// gets "accounted_bytes", "kv_cache_bytes", "scratch_bytes" and "peak_rss_bytes".
void print_memory(const Model& m, const Session& s, nlohmann::json* j = nullptr);
// {"isa", "isa_pinned", "int4_gemv", "int4_gemv_pinned", "prefill_gemm" (a prompt's),
// "prefill_gemm_pinned", "evaluation_gemm" (ppl's and serve's), "decode_gemv",
// "decode_gemv_pinned", "int8_gemm_amx" (the int8 GEMM on AMX tiles, WKVQ_AMX), "ops"} for --json
// output.
nlohmann::json kernels_json();

}  // namespace wkvq::cli
