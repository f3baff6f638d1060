// Files of the quantized model directory other than its tensors and config, and the row
// permutation of the RoPE layout change (quantized_model_io.h, quantized_dir_files.h).
#include "model/quantized_dir_files.h"

#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/atomic_file.h"
#include "model/quantized_model_io.h"
#include "model/quantized_model_names.h"

namespace wkvq {

namespace fs = std::filesystem;

namespace {

// Copies src over dst, writable by its owner (the source may be read-only).
void copy_into(const fs::path& src, const fs::path& dst) {
  std::error_code ec;
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
  WKVQ_REQUIRE(!ec, dst.string(), ": cannot copy ", src.string(), ": ", ec.message());
  fs::permissions(dst, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add, ec);
}

}  // namespace

std::vector<int64_t> rotate_half_row_order(int n_heads, int head_dim) {
  WKVQ_REQUIRE(n_heads >= 0 && head_dim > 0 && head_dim % 2 == 0,
               "rotate_half_row_order: bad head shape ", n_heads, " x ", head_dim);
  std::vector<int64_t> order(static_cast<size_t>(n_heads) * static_cast<size_t>(head_dim));
  const int64_t hd = head_dim, half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t j = 0; j < half; ++j) {
      order[static_cast<size_t>(h * hd + j)] = h * hd + 2 * j;
      order[static_cast<size_t>(h * hd + half + j)] = h * hd + 2 * j + 1;
    }
  }
  return order;
}

QuantizedMatrix permute_rows(const QuantizedMatrix& m, const std::vector<int64_t>& order) {
  WKVQ_REQUIRE(static_cast<int64_t>(order.size()) == m.rows, "permute_rows: ", order.size(),
               " row indices for a matrix of ", m.rows, " rows");
  WKVQ_REQUIRE(m.tile_codes.empty(), "permute_rows: a matrix in the tile layout (permute before ",
               "inference_matrix)");
  QuantizedMatrix out = m;
  const auto rb = static_cast<size_t>(m.row_bytes), ng = static_cast<size_t>(m.n_groups);
  for (size_t r = 0; r < order.size(); ++r) {
    WKVQ_REQUIRE(order[r] >= 0 && order[r] < m.rows, "permute_rows: row index ", order[r],
                 " out of range");
    const auto src = static_cast<size_t>(order[r]);
    std::memcpy(out.codes.data() + r * rb, m.codes.data() + src * rb, rb);
    std::memcpy(out.scales.data() + r * ng, m.scales.data() + src * ng, ng * sizeof(uint16_t));
    std::memcpy(out.zeros.data() + r * ng, m.zeros.data() + src * ng, ng);
  }
  return out;
}

void check_output_dir(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  if (!fs::exists(d, ec)) return;
  WKVQ_REQUIRE(fs::is_directory(d, ec), dir, ": exists and is not a directory");
  const bool has_config = fs::exists(d / "config.json", ec);
  WKVQ_REQUIRE(!has_config || is_quantized_model_dir(dir), dir,
               ": holds a config.json that is not a wkvq quantized model's; choose another "
               "output directory");
  for (const auto& e : fs::directory_iterator(d, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      name.resize(name.size() - 4);
    }
    bool ours = false;
    for (const char* f : kQuantizedDirFiles) ours = ours || name == f;
    WKVQ_REQUIRE(ours, dir, ": holds ", e.path().filename().string(),
                 ", which a quantized model directory does not; choose an empty or new output "
                 "directory");
  }
  WKVQ_REQUIRE(!ec, dir, ": cannot list the directory: ", ec.message());
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

std::vector<std::string> copy_tokenizer(const std::string& tokenizer_path, const std::string& dir) {
  std::error_code ec;
  WKVQ_REQUIRE(fs::is_regular_file(tokenizer_path, ec), tokenizer_path,
               ": tokenizer file not found; pass an existing tokenizer.json, tokenizer.model or "
               "tokenizer.bin");
  const fs::path src(tokenizer_path);
  const bool hf = src.extension() == ".json", sp = src.extension() == ".model";
  std::vector<std::string> names = {quantized_tokenizer_name(tokenizer_path)};
  copy_into(src, fs::path(dir) / names[0]);
  for (const char* extra : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path e = src.parent_path() / extra;
    if ((sp || hf) && fs::is_regular_file(e, ec)) {
      copy_into(e, fs::path(dir) / extra);
      names.emplace_back(extra);
    }
  }
  return names;
}

}  // namespace wkvq
