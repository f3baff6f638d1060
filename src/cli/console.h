// What the CLI says on stderr besides errors: the informational lines (what was loaded, memory,
// timings) and progress. --quiet (every command) silences both; errors always print. Progress
// updates in place ("\r") only when stderr is a terminal; otherwise a command prints one summary
// line when the work is done, so a log file gets no carriage-return runs.
//
// The quiet setting is the one piece of process state of the CLI (like the thread count): it is
// set once, by the --quiet flag, before a command runs.
#pragma once

#include <CLI/CLI.hpp>

namespace wkvq::cli {

void set_quiet(bool quiet);
bool quiet();
// Whether progress may update a line in place: not quiet and stderr is a terminal.
bool progress_on_tty();

// printf to stderr unless quiet.
void info(const char* format, ...) __attribute__((format(printf, 1, 2)));

// Adds --quiet to every subcommand of `app` (call after registering them).
void add_quiet_option(CLI::App& app);

}  // namespace wkvq::cli
