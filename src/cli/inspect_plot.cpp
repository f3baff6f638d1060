#include "cli/inspect_plot.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "io/atomic_file.h"
#include "plot/kv_ranges_figure.h"
#include "plot/kv_sweep_figure.h"

namespace wkvq::cli {

namespace fs = std::filesystem;

std::string prepare_plot_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    WKVQ_REQUIRE(fs::is_directory(dir, ec), "--plot ", dir,
                 ": exists and is not a directory; give a directory for the figures");
    return dir;
  }
  fs::create_directories(dir, ec);
  WKVQ_REQUIRE(!ec, "--plot ", dir, ": cannot create the directory: ", ec.message(),
               "; give a directory that can be created");
  return dir;
}

std::string plot_name(const std::string& path) {
  fs::path p(path);
  while (!p.empty() && !p.has_filename()) p = p.parent_path();  // "dir/"
  const std::string ext = p.extension().string();
  const bool strip = ext == ".bin" || ext == ".json" || ext == ".safetensors" || ext == ".gguf";
  std::string s = strip ? p.stem().string() : p.filename().string();
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return s.empty() ? "model" : s;
}

namespace {

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
  std::printf("wrote %s\n", path.c_str());
}

// (n_layers, kv_dim) row-major values as a list of the given layers' rows.
nlohmann::json rows(const std::vector<float>& v, int64_t dim, const std::vector<int>& layers) {
  nlohmann::json a = nlohmann::json::array();
  for (const int l : layers) {
    const auto o = static_cast<size_t>(l) * static_cast<size_t>(dim);
    a.push_back(std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(o),
                                   v.begin() + static_cast<std::ptrdiff_t>(o + dim)));
  }
  return a;
}

nlohmann::json ranges_json(const std::string& name, const std::string& calib,
                           const KvRangeStages& st, const std::vector<int>& layers,
                           int64_t head_dim) {
  const int64_t c = st.stats.kv_dim;
  const KvSmoothing& s = st.smoothing;
  nlohmann::json stages = nlohmann::json::array();
  for (const KvRangeStage& g : st.stages) {
    stages.push_back({{"name", g.name},
                      {"k_min", rows(g.range.klo, c, layers)},
                      {"k_max", rows(g.range.khi, c, layers)},
                      {"v_min", rows(g.range.vlo, c, layers)},
                      {"v_max", rows(g.range.vhi, c, layers)}});
  }
  return {{"model", name},
          {"calib", calib},
          {"tokens", st.stats.tokens},
          {"kv_dim", c},
          {"head_dim", head_dim},
          {"layers", layers},
          {"smoothing",
           {{"source", st.model_smoothing ? "model" : "statistics"},
            {"k_shift", rows(s.dk, c, layers)},
            {"k_scale", rows(s.sk, c, layers)},
            {"v_shift", rows(s.dv, c, layers)},
            {"v_scale", rows(s.sv, c, layers)}}},
          {"stages", stages},
          {"note", st.note}};
}

}  // namespace

void write_kv_range_figure(const std::string& dir, const std::string& name,
                           const std::string& calib, const KvRangeStages& st,
                           std::vector<int> layers, int64_t head_dim) {
  if (layers.empty()) {
    layers.resize(static_cast<size_t>(st.stats.n_layers));
    std::iota(layers.begin(), layers.end(), 0);
  }
  const std::string title =
      "K/V channel ranges of " + name + " on " + fs::path(calib).filename().string();
  const std::string svg = kv_ranges_svg(st, title, layers, head_dim);  // checks the layers
  const std::string base = (fs::path(dir) / ("kv_ranges_" + name)).string();
  write_text(base + ".svg", svg);
  write_text(base + ".json", ranges_json(name, calib, st, layers, head_dim).dump() + "\n");
}

void write_kv_sweep_figure(const std::string& dir, const std::string& sweep_path,
                           const KvSweepData& d) {
  const std::string title = "KV sweep of " + plot_name(d.model) + ": KLD against bits per element";
  write_text((fs::path(dir) / ("kv_sweep_" + plot_name(sweep_path) + ".svg")).string(),
             kv_sweep_svg(d, title));
}

}  // namespace wkvq::cli
