// The kernel choices a command takes on its command line instead of from the environment
// (kernels/kernel_table.h): --decode-gemv (WKVQ_DECODE_GEMV), --prefill-gemm (WKVQ_PREFILL_GEMM)
// and --kv-scores (WKVQ_KV_SCORES), each f32 | int8 | auto. An option given overrides its
// variable for this process and the worker processes it starts.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace wkvq::cli {

struct KernelCliOptions {
  std::string decode_gemv;   // "" = the environment's choice
  std::string prefill_gemm;  // likewise
  std::string kv_scores;     // likewise
};

// Adds --decode-gemv, --prefill-gemm and --kv-scores to a subcommand.
void add_kernel_options(CLI::App* cmd, KernelCliOptions* o);
// Sets the options given (none: nothing to do) as the environment variables the kernel table
// reads, then resolves the table, so that a choice this CPU cannot run fails here, before the model
// loads, with what to do. Must run before anything touches the kernels (first in a command's
// callback); aborts as an internal error (WKVQ_ASSERT) when the table was resolved before and
// differs from what was asked.
void apply_kernel_options(const KernelCliOptions& o);

}  // namespace wkvq::cli
