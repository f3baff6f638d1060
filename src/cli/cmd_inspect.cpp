// wkvq inspect: what a model holds and how hard it is to quantize: its config and bytes, the
// RTN error of every linear, (with --calib) the per-channel ranges of K and V per layer with
// their outlier channels, and (with --plot DIR) the KV lab's figures (cli/inspect_plot.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/inspect_plot.h"
#include "core/error.h"
#include "core/parallel.h"
#include "formats/weight_quant.h"
#include "io/npy.h"
#include "kvlab/kv_range_stages.h"
#include "model/hf_names.h"
#include "model/weight_quantizer.h"
#include "runtime/kv_stats.h"

namespace wkvq::cli {

namespace {

struct InspectOptions {
  std::string model, tokenizer, calib, dump_weights;
  std::string plot, sweep;  // --plot DIR, --sweep FILE.json
  std::vector<int> plot_layers;
  int wbits = 4;
  int64_t wgroup = 128;
  int64_t calib_windows = 16, calib_ctx = 0, calib_sinks = CalibWindows::kDefaultSinkPositions;
  int threads = 0;
};

// Relative RMS error ||W - W^|| / ||W|| of RTN quantization of one float linear.
double rtn_relative_error(const Linear& lin, int bits, int64_t group) {
  const QuantizedMatrix q = quantize_weights_ref(lin.w, lin.out, lin.in, bits, group);
  std::vector<float> row(static_cast<size_t>(lin.in));
  double err = 0, norm = 0;
  for (int64_t r = 0; r < lin.out; ++r) {
    dequantize_row_ref(q, r, row.data());
    for (int64_t c = 0; c < lin.in; ++c) {
      const double w = lin.w[r * lin.in + c];
      err += (w - row[static_cast<size_t>(c)]) * (w - row[static_cast<size_t>(c)]);
      norm += w * w;
    }
  }
  return norm > 0 ? std::sqrt(err / norm) : 0.0;
}

void print_weight_errors(const Model& m, int bits, int64_t group) {
  std::printf("\nRTN W%d g%lld relative RMS error per linear (||W - W^|| / ||W||):\n", bits,
              static_cast<long long>(group));
  std::printf("| layer |");
  for (const char* n : kLinearNames) std::printf(" %-7s |", n);
  std::printf("\n");
  for (int l = 0; l < m.config.n_layers; ++l) {
    std::vector<double> errs(7);
    parallel_for(7, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        errs[static_cast<size_t>(i)] = rtn_relative_error(
            linear_by_index(m.layers[static_cast<size_t>(l)], static_cast<int>(i)), bits, group);
      }
    });
    std::printf("| %5d |", l);
    for (double e : errs) std::printf(" %7.4f |", e);
    std::printf("\n");
  }
}

// Per layer: median channel half-range, the 5 widest channels, and the mean |centre| / half-range
// (how much a per-channel shift would help).
void print_channel_table(const char* what, const KvChannelStats& st, const std::vector<float>& mn,
                         const std::vector<float>& mx) {
  std::printf("\n%s channel ranges over %lld tokens (c = kv_head * head_dim + d):\n", what,
              static_cast<long long>(st.tokens));
  std::printf(
      "| layer | median half-range | widest 5 channels (half-range) | top1/median | "
      "mean |centre|/half-range |\n");
  for (int l = 0; l < st.n_layers; ++l) {
    const size_t o = static_cast<size_t>(l) * static_cast<size_t>(st.kv_dim);
    std::vector<double> r(static_cast<size_t>(st.kv_dim));
    double centre_ratio = 0;
    for (int c = 0; c < st.kv_dim; ++c) {
      r[c] = (static_cast<double>(mx[o + c]) - mn[o + c]) / 2;
      const double centre = (static_cast<double>(mx[o + c]) + mn[o + c]) / 2;
      centre_ratio += r[c] > 0 ? std::abs(centre) / r[c] : 0.0;
    }
    std::vector<int> idx(static_cast<size_t>(st.kv_dim));
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int a, int b) { return r[a] > r[b]; });
    std::vector<double> sorted = r;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    std::string top;
    for (size_t i = 0; i < std::min<size_t>(5, idx.size()); ++i) {
      char b[48];
      std::snprintf(b, sizeof b, "%sc%d=%.2f", i ? ", " : "", idx[i], r[idx[i]]);
      top += b;
    }
    std::printf("| %5d | %17.3f | %-30s | %11.2f | %24.2f |\n", l, median, top.c_str(),
                median > 0 ? r[idx[0]] / median : 0.0, centre_ratio / st.kv_dim);
  }
}

// Every block linear's W (out, in) as wkvq computes with it (dequantized when quantized), into
// DIR/<HF module name>.npy, float32: for comparing with independent readers of the model files.
void dump_weights(const Model& m, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  WKVQ_REQUIRE(!ec, dir, ": cannot create the directory: ", ec.message());
  for (int l = 0; l < m.config.n_layers; ++l) {
    for (int i = 0; i < 7; ++i) {
      const Linear& lin = linear_by_index(m.layers[static_cast<size_t>(l)], i);
      const std::string name = linear_prefix(l, i);  // ends with '.'
      write_npy_f32((std::filesystem::path(dir) / (name + "npy")).string(), lin.dense_f32().data(),
                    {lin.out, lin.in});
    }
  }
  std::printf("wrote %d x 7 weight matrices to %s\n", m.config.n_layers, dir.c_str());
}

void print_channel_tables(const KvChannelStats& st) {
  print_channel_table("K (after RoPE)", st, st.kmin, st.kmax);
  print_channel_table("V", st, st.vmin, st.vmax);
}

void check_plot_options(const InspectOptions& o) {
  WKVQ_REQUIRE(o.sweep.empty() || !o.plot.empty(), "--sweep ", o.sweep,
               ": the sweep figure is drawn into --plot DIR; give --plot DIR");
  WKVQ_REQUIRE(o.plot_layers.empty() || !o.plot.empty(), "--plot-layers needs --plot DIR");
  WKVQ_REQUIRE(o.plot.empty() || !o.calib.empty() || !o.sweep.empty(), "--plot ", o.plot,
               ": nothing to draw; give --calib FILE (K/V channel ranges) and/or --sweep "
               "FILE.json (a saved `wkvq ppl --kv-sweep --json` output)");
}

void run_inspect(const InspectOptions& o) {
  check_plot_options(o);
  apply_threads(o.threads);
  // The cheap inputs first: a bad sweep file or plot directory fails before the model loads.
  const std::optional<KvSweepData> sweep =
      o.sweep.empty() ? std::nullopt : std::optional(read_kv_sweep_file(o.sweep));
  if (!o.plot.empty()) prepare_plot_dir(o.plot);
  if (sweep) write_kv_sweep_figure(o.plot, o.sweep, *sweep);
  if (sweep && o.model.empty() && o.calib.empty()) return;  // the sweep figure alone
  const std::string path = resolve_model_path(o.model);
  const Model m = load_model_verbose(path);
  std::printf("model %s\n%s\nweights %s", path.c_str(), m.config.summary().c_str(),
              human_bytes(static_cast<double>(m.weight_bytes())).c_str());
  if (m.quant.wbits > 0) {
    std::printf(" (quantized: %s, W%d g%lld, KV%d)\n", m.quant.method.c_str(), m.quant.wbits,
                static_cast<long long>(m.quant.wgroup), m.quant.kv.bits);
  } else {
    std::printf(" (float)\n");
    print_weight_errors(m, o.wbits, o.wgroup);
  }
  if (!o.dump_weights.empty()) dump_weights(m, o.dump_weights);
  for (const int l : o.plot_layers) {
    WKVQ_REQUIRE(l < m.config.n_layers, "--plot-layers: layer ", l,
                 " out of range; the model has "
                 "layers 0..",
                 m.config.n_layers - 1);
  }
  if (o.calib.empty()) return;
  const auto tok = open_tokenizer(o.tokenizer, path, m.config.vocab_size);
  const CalibWindows w{o.calib_ctx, o.calib_windows, o.calib_sinks};
  const std::vector<int> stream = tok->encode(read_text_file(o.calib, "--calib"), true, false);
  if (o.plot.empty()) {
    print_channel_tables(collect_kv_stats(m, stream, w));
    return;
  }
  const KvRangeStages st = measure_kv_range_stages(m, stream, w);
  print_channel_tables(st.stats);
  if (!st.note.empty()) std::printf("%s\n", st.note.c_str());
  write_kv_range_figure(o.plot, plot_name(path), o.calib, st, o.plot_layers, m.config.head_dim);
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect",
                                     "Model config and bytes, RTN error per linear, KV channel "
                                     "ranges (--calib), figures (--plot)");
  cmd->add_option("--model", o->model, "Model file or directory (default: stories260K)");
  cmd->add_option(
      "--tokenizer", o->tokenizer,
      "Tokenizer for --calib: tokenizer.json, tokenizer.model or tokenizer.bin (default: "
      "beside the model)");
  cmd->add_option("--calib", o->calib, "Text for the K/V channel statistics");
  cmd->add_option("--dump-weights", o->dump_weights,
                  "Write every block linear's weight as used (dequantized when quantized) to "
                  "DIR/<module>.npy, float32 (out, in)");
  cmd->add_option("--calib-windows", o->calib_windows, "Windows of the text to use")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--calib-ctx", o->calib_ctx,
                  "Length of a calibration window (0: min(2048, model context))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--calib-sinks", o->calib_sinks,
                  "Positions at the start of every calibration window left out of the K/V "
                  "statistics (the attention sink's outliers)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--plot", o->plot,
                  "Write SVG figures into DIR (created): with --calib, the K/V channel ranges "
                  "per layer raw, after the statistics smoothing and after smoothing + "
                  "Hadamard rotation (kv_ranges_<model>.svg, the data in .json); with --sweep, "
                  "the sweep figure (kv_sweep_<file>.svg)");
  cmd->add_option("--sweep", o->sweep,
                  "A saved `wkvq ppl --kv-sweep --json` output: drawn as KLD (log) against bits "
                  "per element, one line per method, into --plot DIR (alone, without --model or "
                  "--calib, no model is loaded)");
  cmd->add_option("--plot-layers", o->plot_layers,
                  "Layers of the channel-range figure, comma-separated (default: all)")
      ->delimiter(',')
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--wbits", o->wbits, "Bits of the RTN error table")
      ->capture_default_str()
      ->check(CLI::IsMember({2, 3, 4, 8}));
  cmd->add_option("--wgroup", o->wgroup, "Group of the RTN error table (0: per row)")
      ->capture_default_str();
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] { run_inspect(*o); });
}

}  // namespace wkvq::cli
