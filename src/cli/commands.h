// Subcommands of the `wkvq` CLI. Each cmd_<name>.cpp registers one subcommand on the app; its
// callback does the work. Library errors (wkvq::Error) are caught once, in main.cpp.
#pragma once

#include <CLI/CLI.hpp>

namespace wkvq::cli {

void register_generate(CLI::App& app);
void register_ppl(CLI::App& app);
void register_bench(CLI::App& app);
void register_logits(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_inspect(CLI::App& app);
void register_quantize(CLI::App& app);
void register_chat_template(CLI::App& app);
void register_chat(CLI::App& app);
void register_serve(CLI::App& app);
void register_kv_roundtrip(CLI::App& app);

}  // namespace wkvq::cli
