// wkvq: W4KV4 post-training quantization of Llama models (WKVQuant) and a fast CPU runtime.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
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
  try {
    app.parse(argc, argv);
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
