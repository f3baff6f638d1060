// wkvq-calibrate: the CRR calibration worker (design.md §2.3). `wkvq quantize --method wkvquant`
// and `wkvq ppl --ablation --calibrate` run it as a separate process, because libtorch and
// Debian's libsentencepiece cannot share one (see src/CMakeLists.txt). It reads a run directory
// prepared by wkvq:
//   options.txt        the CRR options (CrrOptions::record())
//   calib_tokens.bin   the tokenized calibration text (calibrate/token_file.h)
// and writes one block file per finished block into the same directory (calibrate/block_file.h),
// printing progress per block and epoch on stderr. When the options freeze the weights
// (CrrOptions::frozen_weights), they are the GPTQ weights of --frozen-gptq FILE (a result file of
// --gptq, read with the GPTQ options below) applied to --model, or else --model's own (a quantized
// model directory or GPTQ checkpoint).
//
// With --gptq it runs GPTQ instead (calibrate/gptq.h) on calib_tokens.bin with the options given
// on its command line and writes gptq_weights.safetensors (calibrate/gptq_result.h) into the run
// directory. --gptq-probe DIR is a test hook: GPTQ of one linear given as raw f32 files (below).
#include <ATen/Parallel.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "calibrate/crr.h"
#include "calibrate/gptq.h"
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
  bool gptq = false;    // run GPTQ instead of CRR
  std::string gptq_probe;
  std::string frozen_gptq;  // GPTQ result file: the frozen weights of a frozen_weights run
  wkvq::GptqOptions gptq_options;
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
  WKVQ_REQUIRE(w.frozen_gptq.empty() || o.frozen_weights,
               "--frozen-gptq: the calibration options do not freeze the weights");
  std::optional<wkvq::Model> gptq;
  const wkvq::Model* frozen = o.frozen_weights ? &fp : nullptr;
  if (!w.frozen_gptq.empty()) {
    gptq = wkvq::apply_gptq(fp, wkvq::read_gptq_result(w.frozen_gptq, fp, w.gptq_options),
                            w.gptq_options);
    frozen = &*gptq;
  }
  const bool tty = isatty(fileno(stderr)) != 0;
  wkvq::calibrate_crr(
      fp, calib, o,
      [&w, tty](const wkvq::CrrProgress& p) {
        if (!w.quiet) print_progress(p, tty);
      },
      frozen);
}

void run_gptq(const WorkerOptions& w) {
  namespace fs = std::filesystem;
  if (w.threads > 0) at::set_num_threads(w.threads);
  wkvq::LoadOptions load;
  load.half_in_place = true;
  const wkvq::Model fp = wkvq::load_model(w.model, load);
  const std::vector<int> calib = wkvq::read_token_file(
      (fs::path(w.run_dir) / "calib_tokens.bin").string(), fp.config.vocab_size);
  const std::string summary = w.gptq_options.summary(fp.config);
  if (!w.quiet) std::fprintf(stderr, "gptq %s: %s\n", w.model.c_str(), summary.c_str());
  const wkvq::GptqResult r =
      wkvq::gptq_model(fp, calib, w.gptq_options, [&w](int done, int total, double s) {
        if (!w.quiet) {
          std::fprintf(stderr, "gptq block %d/%d done  elapsed %s\n", done, total,
                       clock_text(s).c_str());
        }
      });
  wkvq::write_gptq_result((fs::path(w.run_dir) / "gptq_weights.safetensors").string(), r, summary);
}

// f32 values from a raw little-endian file of exactly n floats.
torch::Tensor read_f32(const std::string& path, int64_t rows, int64_t cols) {
  const std::vector<uint8_t> bytes = wkvq::read_file_bytes(path);
  WKVQ_REQUIRE(static_cast<int64_t>(bytes.size()) == rows * cols * 4, path, ": expected ",
               rows * cols * 4, " bytes (", rows, " x ", cols, " f32), found ", bytes.size());
  torch::Tensor t = torch::empty({rows, cols}, torch::kFloat32);
  std::memcpy(t.data_ptr<float>(), bytes.data(), bytes.size());
  return t;
}

void write_raw(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  WKVQ_REQUIRE(f.good(), path, ": cannot write");
}

// Test hook: DIR/shape.txt "rows cols n", DIR/w.f32 (rows, cols), DIR/x.f32 (n, cols) ->
// DIR/codes.u8 (rows, cols, unpacked), DIR/scales.f16 and DIR/zeros.u8 (rows, n_groups).
void run_gptq_probe(const WorkerOptions& w) {
  const std::string d = w.gptq_probe + "/";
  std::ifstream shape(d + "shape.txt");
  int64_t rows = 0, cols = 0, n = 0;
  WKVQ_REQUIRE(static_cast<bool>(shape >> rows >> cols >> n) && rows > 0 && cols > 0 && n > 0, d,
               "shape.txt: expected 'rows cols n'");
  const torch::Tensor h = wkvq::gptq_hessian(read_f32(d + "x.f32", n, cols));
  const wkvq::QuantizedMatrix m =
      wkvq::gptq_quantize(read_f32(d + "w.f32", rows, cols), h, w.gptq_options, "probe");
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    wkvq::unpack_row_codes_ref(m.row_codes(r), cols, m.bits, codes.data() + r * cols);
  }
  write_raw(d + "codes.u8", codes.data(), codes.size());
  write_raw(d + "scales.f16", m.scales.data(), m.scales.size() * 2);
  write_raw(d + "zeros.u8", m.zeros.data(), m.zeros.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "wkvq-calibrate: the CRR calibration worker of `wkvq quantize --method wkvquant` "
      "(run by wkvq; see `wkvq quantize --help`)"};
  WorkerOptions w;
  app.add_option("--model", w.model,
                 "Floating-point model (llama2.c .bin or HF directory); required");
  app.add_option("--run-dir", w.run_dir,
                 "Run directory holding options.txt and calib_tokens.bin; block files go there; "
                 "required");
  app.add_option("--threads", w.threads, "Threads (0: all cores)")->check(CLI::Range(0, 1024));
  app.add_flag("--resume", w.resume, "Continue after the block files already in --run-dir");
  app.add_option("--stop-after-block", w.stop_after_block,
                 "Stop once this block (0-based) is finished (a partial run, for resuming)")
      ->check(CLI::Range(-1, 1 << 20));
  app.add_flag("--quiet", w.quiet, "Print nothing on stderr but errors");
  app.add_option("--parent-pid", w.parent_pid,
                 "Exit when this process (wkvq) exits (PR_SET_PDEATHSIG)");
  wkvq::GptqOptions& g = w.gptq_options;
  app.add_flag("--gptq", w.gptq, "Run GPTQ (options below) instead of the CRR calibration");
  app.add_option("--gptq-probe", w.gptq_probe, "Test hook: GPTQ of one linear in DIR");
  app.add_option("--frozen-gptq", w.frozen_gptq,
                 "CRR with frozen weights: the GPTQ result file (of --gptq with the options "
                 "below) whose weights are frozen on --model");
  app.add_option("--bits", g.bits, "GPTQ: weight bits")->check(CLI::IsMember({2, 3, 4, 8}));
  app.add_option("--group", g.group, "GPTQ: group size (0: one group per row)");
  app.add_option("--damp", g.damp, "GPTQ: damping, fraction of the mean Hessian diagonal");
  app.add_flag("--act-order", g.act_order, "GPTQ: columns in descending Hessian diagonal order");
  app.add_option("--block", g.block, "GPTQ: columns per lazy batch update");
  app.add_option("--samples", g.samples, "GPTQ: calibration windows");
  app.add_option("--window", g.window, "GPTQ: tokens per window (0: min(256, context))");
  try {
    app.parse(argc, argv);
    die_with_parent(w.parent_pid);
    if (!w.gptq_probe.empty()) {
      run_gptq_probe(w);
      return 0;
    }
    WKVQ_REQUIRE(!w.model.empty() && !w.run_dir.empty(), "--model and --run-dir are required");
    if (w.gptq) {
      run_gptq(w);
    } else {
      run(w);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nwkvq-calibrate: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
