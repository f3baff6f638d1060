#include "cli/console.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace wkvq::cli {

namespace {
std::atomic<bool>& quiet_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
}  // namespace

void set_quiet(bool q) { quiet_flag().store(q); }

bool quiet() { return quiet_flag().load(); }

bool progress_on_tty() { return !quiet() && isatty(fileno(stderr)) != 0; }

void info(const char* format, ...) {
  if (quiet()) return;
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
}

void add_quiet_option(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    sub->add_flag_callback(
        "--quiet,-q", [] { set_quiet(true); },
        "Print nothing on stderr but errors (no progress, timings or memory figures)");
  }
}

}  // namespace wkvq::cli
