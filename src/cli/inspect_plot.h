// wkvq inspect --plot DIR: the KV lab's figures as SVG files in DIR (created when missing): the
// per-layer K/V channel ranges (raw, smoothed, smoothed + rotated) with the data they draw as
// JSON, and the figure of a saved `ppl --kv-sweep --json` output.
#pragma once

#include <string>
#include <vector>

#include "kvlab/kv_range_stages.h"
#include "plot/kv_sweep_data.h"

namespace wkvq::cli {

// DIR, created when missing; throws when it cannot be (a file of that name, no permission).
std::string prepare_plot_dir(const std::string& dir);

// Writes DIR/kv_ranges_<name>.svg and DIR/kv_ranges_<name>.json (the plotted ranges, the
// smoothing, the stage names) for `layers` (empty: all) of a model named `name`, with
// calibration text `calib`; prints the paths.
void write_kv_range_figure(const std::string& dir, const std::string& name,
                           const std::string& calib, const KvRangeStages& st,
                           std::vector<int> layers, int64_t head_dim);

// Writes DIR/kv_sweep_<stem of sweep_path>.svg from the parsed sweep; prints the path.
void write_kv_sweep_figure(const std::string& dir, const std::string& sweep_path,
                           const KvSweepData& d);

// A file-name-safe name of a path: its file name without a .bin, .json, .safetensors or .gguf
// extension (a model directory: its name), other characters than [A-Za-z0-9._-] as '_'.
std::string plot_name(const std::string& path);

}  // namespace wkvq::cli
