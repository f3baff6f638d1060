#include "cli/kernel_options.h"

#include <cstdlib>

#include "core/error.h"
#include "kernels/kernel_table.h"

namespace wkvq::cli {

namespace {

void add_int8_choice(CLI::App* cmd, const char* name, std::string* value, const std::string& help) {
  cmd->add_option(name, *value, help)->check(CLI::IsMember({"f32", "int8", "auto"}));
}

// Whether the resolved choice agrees with `asked` (auto: whatever the table chose).
bool agrees(const std::string& asked, bool int8) {
  return asked.empty() || asked == "auto" || (asked == "int8") == int8;
}

}  // namespace

void add_kernel_options(CLI::App* cmd, KernelCliOptions* o) {
  add_int8_choice(cmd, "--decode-gemv", &o->decode_gemv,
                  "Activations of the int4 GEMV of decode: f32 (exact against the scalar "
                  "references), int8 (faster; its KLD cost is in README \"Decode GEMV with int8 "
                  "activations\"; needs AVX2, or AVX-512 with AVX512_VNNI) or auto (f32). "
                  "Overrides WKVQ_DECODE_GEMV; default: that variable, else auto");
  add_int8_choice(cmd, "--prefill-gemm", &o->prefill_gemm,
                  "Activations of the int4 GEMM of a prompt: f32, int8 or auto (int8 for a "
                  "session's prompt where the CPU runs it, f32 for evaluation). Overrides "
                  "WKVQ_PREFILL_GEMM; default: that variable, else auto");
  add_int8_choice(cmd, "--kv-scores", &o->kv_scores,
                  "Attention scores of 4-bit keys: f32 (the query against the decoded keys), "
                  "int8 (the query rounded to int8 per key group against the 4-bit codes, "
                  "faster at long contexts; its KLD cost is in README \"Attention scores with "
                  "int8 queries\") or auto (f32). Overrides WKVQ_KV_SCORES; default: that "
                  "variable, else auto");
}

void apply_kernel_options(const KernelCliOptions& o) {
  if (o.decode_gemv.empty() && o.prefill_gemm.empty() && o.kv_scores.empty()) {
    return;  // the environment decides, later
  }
  if (!o.decode_gemv.empty()) setenv("WKVQ_DECODE_GEMV", o.decode_gemv.c_str(), 1);
  if (!o.prefill_gemm.empty()) setenv("WKVQ_PREFILL_GEMM", o.prefill_gemm.c_str(), 1);
  if (!o.kv_scores.empty()) setenv("WKVQ_KV_SCORES", o.kv_scores.c_str(), 1);
  const KernelTable* t = nullptr;
  try {
    t = &kernel_table();
  } catch (const Error& e) {
    fail("the kernel options (--decode-gemv ", o.decode_gemv.empty() ? "unset" : o.decode_gemv,
         ", --prefill-gemm ", o.prefill_gemm.empty() ? "unset" : o.prefill_gemm, ", --kv-scores ",
         o.kv_scores.empty() ? "unset" : o.kv_scores, "): ", e.what());
  }
  WKVQ_ASSERT(agrees(o.decode_gemv, t->int4_decode.form == DecodeGemv::Int8));
  WKVQ_ASSERT(agrees(o.prefill_gemm, t->int4_gemm.form == PrefillGemm::Int8));
  WKVQ_ASSERT(agrees(o.kv_scores, t->kv_scores.form == KvScores::Int8));
}

}  // namespace wkvq::cli
