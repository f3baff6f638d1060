// wkvq-calibrate: the CRR calibration worker (design.md §2.3). `wkvq quantize --method wkvquant`
// and `wkvq ppl --ablation --calibrate` run it as a separate process, because libtorch and
// Debian's libsentencepiece cannot share one (see src/CMakeLists.txt). It reads a run directory
// prepared by wkvq:
//   options.txt        the CRR options (CrrOptions::record())
//   calib_tokens.bin   the tokenized calibration text (calibrate/token_file.h)
// and writes one block file per finished block into the same directory (calibrate/block_file.h),
// printing progress per block and epoch on stderr.
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "calibrate/crr.h"
#include "calibrate/token_file.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "model/loader.h"

namespace {

struct WorkerOptions {
  std::string model, run_dir;
  int threads = 0;
  bool resume = false;
  bool quiet = false;
  int stop_after_block = -1;
  long parent_pid = 0;  // wkvq's pid: die with it
};

// The worker must not outlive wkvq (it would keep writing into a run directory a --resume may
// share): the kernel sends SIGKILL when the parent exits, and a parent that exited before the
// request took effect is caught by comparing getppid() afterwards.
void die_with_parent(long parent_pid) {
  if (parent_pid <= 0) return;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != static_cast<pid_t>(parent_pid)) {
    std::fprintf(stderr, "wkvq-calibrate: error: the parent process %ld is gone; stopping\n",
                 parent_pid);
    std::_Exit(1);
  }
}

std::string clock_text(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.0f s", s);
  } else {
    std::snprintf(buf, sizeof buf, "%d min %02d s", static_cast<int>(s) / 60,
                  static_cast<int>(s) % 60);
  }
  return buf;
}

// On a terminal, epochs update one line in place; in a log, one line per finished block.
void print_progress(const wkvq::CrrProgress& p, bool tty) {
  if (!tty && !p.block_done) return;
  if (p.block_done) {
    std::fprintf(stderr, "%sblock %d/%d %s: loss %.6g  elapsed %s  eta %s\n", tty ? "\r" : "",
                 p.block + 1, p.n_blocks, p.resumed ? "resumed from its file" : "done", p.loss,
                 clock_text(p.elapsed_s).c_str(), clock_text(p.eta_s).c_str());
  } else {
    std::fprintf(stderr, "%sblock %d/%d epoch %d/%d: loss %.6g  elapsed %s  eta %s%s",
                 tty ? "\r" : "", p.block + 1, p.n_blocks, p.epoch, p.epochs, p.loss,
                 clock_text(p.elapsed_s).c_str(), clock_text(p.eta_s).c_str(), tty ? "   " : "\n");
  }
  std::fflush(stderr);
}

void run(const WorkerOptions& w) {
  namespace fs = std::filesystem;
  const std::string options_path = (fs::path(w.run_dir) / "options.txt").string();
  const std::vector<uint8_t> text = wkvq::read_file_bytes(options_path);
  wkvq::CrrOptions o = wkvq::CrrOptions::parse_record(std::string(text.begin(), text.end()));
  o.threads = w.threads;
  o.results_dir = w.run_dir;
  o.resume = w.resume;
  o.stop_after_block = w.stop_after_block;
  wkvq::LoadOptions load;
  load.half_in_place = true;  // f32 copies of the blocks in use only (TorchBlock)
  const wkvq::Model fp = wkvq::load_model(w.model, load);
  const std::vector<int> calib = wkvq::read_token_file(
      (fs::path(w.run_dir) / "calib_tokens.bin").string(), fp.config.vocab_size);
  if (!w.quiet) {
    std::fprintf(stderr, "calibrating %s: %s\n", w.model.c_str(), o.summary().c_str());
  }
  const bool tty = isatty(fileno(stderr)) != 0;
  wkvq::calibrate_crr(fp, calib, o, [&w, tty](const wkvq::CrrProgress& p) {
    if (!w.quiet) print_progress(p, tty);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "wkvq-calibrate: the CRR calibration worker of `wkvq quantize --method wkvquant` "
      "(run by wkvq; see `wkvq quantize --help`)"};
  WorkerOptions w;
  app.add_option("--model", w.model, "Floating-point model (llama2.c .bin or HF directory)")
      ->required();
  app.add_option("--run-dir", w.run_dir,
                 "Run directory holding options.txt and calib_tokens.bin; block files go there")
      ->required();
  app.add_option("--threads", w.threads, "Threads (0: all cores)")->check(CLI::Range(0, 1024));
  app.add_flag("--resume", w.resume, "Continue after the block files already in --run-dir");
  app.add_option("--stop-after-block", w.stop_after_block,
                 "Stop once this block (0-based) is finished (a partial run, for resuming)")
      ->check(CLI::Range(-1, 1 << 20));
  app.add_flag("--quiet", w.quiet, "Print nothing on stderr but errors");
  app.add_option("--parent-pid", w.parent_pid,
                 "Exit when this process (wkvq) exits (PR_SET_PDEATHSIG)");
  try {
    app.parse(argc, argv);
    die_with_parent(w.parent_pid);
    run(w);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nwkvq-calibrate: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
