// wkvq: W4KV4 post-training quantization of Llama models (WKVQuant) and a fast CPU runtime.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli/commands.h"
#include "cli/console.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "wkvq: quantize Llama models to 4-bit weights and a 4-bit KV cache (WKVQuant), run "
      "and measure them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "wkvq 0.1.0");
  wkvq::cli::register_generate(app);
  wkvq::cli::register_ppl(app);
  wkvq::cli::register_bench(app);
  wkvq::cli::register_logits(app);
  wkvq::cli::register_tokenize(app);
  wkvq::cli::register_inspect(app);
  wkvq::cli::register_quantize(app);
  wkvq::cli::register_chat_template(app);
  wkvq::cli::register_chat(app);
  wkvq::cli::register_serve(app);
  wkvq::cli::register_kv_roundtrip(app);
  wkvq::cli::add_quiet_option(app);
  try {
    app.parse(argc, argv);
    // Results go to stdout: a write error there (a full disk, /dev/full, a closed pipe) must not
    // end in exit status 0. Checked once here, after any command.
    if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
      std::fprintf(stderr,
                   "wkvq: error: writing the results to stdout failed (%s); they are "
                   "incomplete\n",
                   std::strerror(errno));
      return 1;
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const wkvq::Error& e) {
    std::fprintf(stderr, "wkvq: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "wkvq: error: out of memory; try a smaller --ctx or model\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wkvq: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
