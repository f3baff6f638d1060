#include "calibrate/block_file.h"

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"

namespace wkvq {
namespace {

static_assert(std::endian::native == std::endian::little, "block files are written little endian");
constexpr char kMagic[8] = {'W', 'K', 'V', 'Q', 'C', 'A', 'L', '\0'};
constexpr uint64_t kMaxCount = uint64_t{1} << 40;  // far beyond any real linear

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

class Writer {
 public:
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void floats(const std::vector<float>& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(float));
  }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  Reader(const uint8_t* d, size_t n, const std::string& name) : d_(d), n_(n), name_(name) {}
  template <class T>
  T get(const char* field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, d_ + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::vector<float> floats(uint64_t count, const char* field) {
    WKVQ_REQUIRE(count <= kMaxCount, name_, ": ", field, ": implausible count ", count);
    need(count * sizeof(float), field);
    std::vector<float> v(count);
    if (count > 0) std::memcpy(v.data(), d_ + at_, count * sizeof(float));
    at_ += count * sizeof(float);
    return v;
  }
  std::string text(uint32_t len, const char* field) {
    need(len, field);
    std::string s(reinterpret_cast<const char*>(d_ + at_), len);
    at_ += len;
    return s;
  }
  size_t at() const { return at_; }

 private:
  void need(uint64_t bytes, const char* field) const {
    WKVQ_REQUIRE(bytes <= n_ - at_, name_, ": truncated at byte ", at_, " while reading ", field,
                 " (", bytes, " bytes needed, ", n_ - at_, " left)");
  }
  const uint8_t* d_;
  size_t n_;
  size_t at_ = 0;
  const std::string& name_;
};

void check_unit_interval(const std::vector<float>& v, const std::string& name, int lin) {
  for (size_t i = 0; i < v.size(); ++i) {
    WKVQ_REQUIRE(v[i] >= 0.0f && v[i] <= 1.0f, name, ": clip factor ", i, " of linear ", lin,
                 " is ", v[i], ", outside [0, 1]");
  }
}

}  // namespace

std::string block_file_path(const std::string& dir, int block) {
  char name[32];
  std::snprintf(name, sizeof(name), "block_%04d.wkvqcal", block);
  return (std::filesystem::path(dir) / name).string();
}

std::vector<uint8_t> serialize_block_file(const BlockFile& f) {
  Writer w;
  w.out.insert(w.out.end(), kMagic, kMagic + 8);
  w.put(kBlockFileVersion);
  w.put(static_cast<uint32_t>(f.block));
  w.put(static_cast<uint32_t>(f.record.size()));
  w.out.insert(w.out.end(), f.record.begin(), f.record.end());
  for (size_t i = 0; i < 7; ++i) {
    WKVQ_ASSERT(f.data.clip_hi[i].size() == f.data.clip_lo[i].size());
    w.put(static_cast<uint64_t>(f.data.clip_hi[i].size()));
    w.floats(f.data.clip_hi[i]);
    w.floats(f.data.clip_lo[i]);
  }
  const LayerSmoothing& s = f.data.smoothing;
  w.put(static_cast<uint64_t>(s.dk.size()));
  for (const auto* v : {&s.dk, &s.sk, &s.dv, &s.sv}) {
    WKVQ_ASSERT(v->size() == s.dk.size());
    w.floats(*v);
  }
  w.put(f.data.loss_before);
  w.put(f.data.loss_after);
  w.put(f.data.seconds);
  w.put(fnv1a(w.out.data(), w.out.size()));
  return w.out;
}

BlockFile parse_block_file(const uint8_t* data, size_t size, const std::string& name) {
  Reader r(data, size, name);
  WKVQ_REQUIRE(size >= 8 && std::memcmp(data, kMagic, 8) == 0, name,
               ": not a wkvq calibration block file (bad magic)");
  r.text(8, "magic");
  const auto version = r.get<uint32_t>("version");
  WKVQ_REQUIRE(version == kBlockFileVersion, name, ": format version ", version,
               ", this build reads version ", kBlockFileVersion);
  BlockFile f;
  const auto block = r.get<uint32_t>("block index");
  WKVQ_REQUIRE(block < (1u << 20), name, ": implausible block index ", block);
  f.block = static_cast<int>(block);
  f.record = r.text(r.get<uint32_t>("record length"), "record");
  for (size_t i = 0; i < 7; ++i) {
    const auto count = r.get<uint64_t>("clip factor count");
    f.data.clip_hi[i] = r.floats(count, "clip_hi");
    f.data.clip_lo[i] = r.floats(count, "clip_lo");
    check_unit_interval(f.data.clip_hi[i], name, static_cast<int>(i));
    check_unit_interval(f.data.clip_lo[i], name, static_cast<int>(i));
  }
  const auto kv_dim = r.get<uint64_t>("kv_dim");
  LayerSmoothing& s = f.data.smoothing;
  s.dk = r.floats(kv_dim, "dK");
  s.sk = r.floats(kv_dim, "sK");
  s.dv = r.floats(kv_dim, "dV");
  s.sv = r.floats(kv_dim, "sV");
  for (size_t c = 0; c < kv_dim; ++c) {
    WKVQ_REQUIRE(std::isfinite(s.dk[c]) && std::isfinite(s.dv[c]) && std::isfinite(s.sk[c]) &&
                     std::isfinite(s.sv[c]) && s.sk[c] > 0 && s.sv[c] > 0,
                 name, ": KV smoothing of channel ", c, " is not finite or has a scale <= 0");
  }
  f.data.loss_before = r.get<double>("loss_before");
  f.data.loss_after = r.get<double>("loss_after");
  f.data.seconds = r.get<double>("seconds");
  const uint64_t expected = fnv1a(data, r.at());
  WKVQ_REQUIRE(r.get<uint64_t>("checksum") == expected, name,
               ": checksum mismatch; the file is corrupt");
  WKVQ_REQUIRE(r.at() == size, name, ": ", size - r.at(), " unexpected bytes after the checksum");
  return f;
}

void write_block_file(const std::string& path, const BlockFile& f) {
  const std::vector<uint8_t> bytes = serialize_block_file(f);
  write_file_atomically(path, bytes.data(), bytes.size());
}

BlockFile read_block_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse_block_file(bytes.data(), bytes.size(), path);
}

std::vector<BlockFile> read_block_files(const std::string& dir, int n_layers) {
  std::vector<BlockFile> files;
  for (int i = 0; i < n_layers; ++i) {
    const std::string path = block_file_path(dir, i);
    WKVQ_REQUIRE(std::filesystem::exists(path), path, ": missing; the calibration run in ", dir,
                 " finished ", i, " of ", n_layers, " blocks: resume it (--resume)");
    files.push_back(read_block_file(path));
    WKVQ_REQUIRE(files.back().block == i, path, ": holds block ", files.back().block, ", expected ",
                 i);
    WKVQ_REQUIRE(files.back().record == files.front().record, path,
                 ": written by a different calibration run than ", block_file_path(dir, 0));
  }
  return files;
}

}  // namespace wkvq
