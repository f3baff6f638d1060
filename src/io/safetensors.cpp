#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/fp16.h"
#include "io/json_file.h"

namespace wkvq {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "F32", 4},   {DType::F16, "F16", 2},         {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8},   {DType::I8, "I8", 1},           {DType::U8, "U8", 1},
    {DType::I16, "I16", 2},   {DType::U16, "U16", 2},         {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},   {DType::I64, "I64", 8},         {DType::U64, "U64", 8},
    {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeEntry* find_dtype(const std::string& name) {
  for (const DTypeEntry& e : kDTypes) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

const DTypeEntry& entry(DType d) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == d) return e;
  }
  WKVQ_ASSERT(false);
  return kDTypes[0];
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string json_type(const json& j) { return j.type_name(); }

// A non-negative JSON integer, or an error naming the file, tensor and field.
uint64_t json_uint(const json& j, const std::string& where, const char* field) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer()) {
    fail(where, ": ", field, " must be non-negative, found ", j.get<int64_t>());
  }
  fail(where, ": ", field, " must be an integer, found ", json_type(j), " ", j.dump());
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e,
                       const uint8_t* data, uint64_t data_size) {
  const std::string where = path + ": tensor '" + name + "'";
  WKVQ_REQUIRE(e.is_object(), where, ": entry must be a JSON object, found ", json_type(e));
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    WKVQ_REQUIRE(e.contains(key), where, ": missing \"", key, "\"");
  }
  const json& jd = e.at("dtype");
  WKVQ_REQUIRE(jd.is_string(), where, ": \"dtype\" must be a string, found ", json_type(jd));
  const std::string dname = jd.get<std::string>();
  const DTypeEntry* de = find_dtype(dname);
  WKVQ_REQUIRE(de != nullptr, where, ": unknown dtype \"", dname,
               "\" (known: F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, BOOL, "
               "F8_E4M3, F8_E5M2)");

  TensorInfo t;
  t.name = name;
  t.file = path;
  t.dtype = de->dtype;
  const json& js = e.at("shape");
  WKVQ_REQUIRE(js.is_array(), where, ": \"shape\" must be an array, found ", json_type(js));
  WKVQ_REQUIRE(js.size() <= 16, where, ": shape has ", js.size(), " dimensions (at most 16)");
  uint64_t numel = 1;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (const json& d : js) {
    const uint64_t v = json_uint(d, where, "shape entry");
    WKVQ_REQUIRE(v <= kMax, where, ": shape entry ", v, " is too large");
    uint64_t prod = 0;
    WKVQ_REQUIRE(!__builtin_mul_overflow(numel, v, &prod) && prod <= kMax, where, ": shape ",
                 js.dump(), " has an element count that overflows 64 bits");
    numel = prod;
    t.shape.push_back(static_cast<int64_t>(v));
  }
  t.numel = static_cast<int64_t>(numel);
  uint64_t nbytes = 0;
  WKVQ_REQUIRE(!__builtin_mul_overflow(numel, de->size, &nbytes), where, ": shape ", js.dump(),
               " times the ", dname, " element size overflows 64 bits");

  const json& jo = e.at("data_offsets");
  WKVQ_REQUIRE(jo.is_array() && jo.size() == 2, where,
               ": \"data_offsets\" must be an array [begin, end], found ", jo.dump());
  const uint64_t begin = json_uint(jo[0], where, "data_offsets begin");
  const uint64_t end = json_uint(jo[1], where, "data_offsets end");
  WKVQ_REQUIRE(begin <= end, where, ": data_offsets begin ", begin, " is after end ", end);
  WKVQ_REQUIRE(end <= data_size, where, ": data_offsets [", begin, ", ", end,
               "] run past the data section (", data_size, " bytes; the file is truncated?)");
  WKVQ_REQUIRE(end - begin == nbytes, where, ": data_offsets [", begin, ", ", end, "] span ",
               end - begin, " bytes, expected ", nbytes, " for ", dname, " shape ",
               shape_to_string(t.shape));
  t.nbytes = static_cast<size_t>(nbytes);
  t.data = nbytes == 0 ? nullptr : data + begin;
  return t;
}

void check_no_overlap(const std::string& path, const std::map<std::string, TensorInfo>& tensors,
                      const uint8_t* data) {
  struct Span {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;
  for (const auto& [name, t] : tensors) {
    if (t.nbytes == 0) continue;  // an empty tensor occupies no bytes
    const auto b = static_cast<uint64_t>(t.data - data);
    spans.push_back({b, b + t.nbytes, &name});
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i) {
    const Span& a = spans[i - 1];
    const Span& b = spans[i];
    WKVQ_REQUIRE(a.end <= b.begin, path, ": tensors '", *a.name, "' [", a.begin, ", ", a.end,
                 ") and '", *b.name, "' [", b.begin, ", ", b.end, ") overlap");
  }
}

}  // namespace

const char* dtype_name(DType d) { return entry(d).name; }
size_t dtype_size(DType d) { return entry(d).size; }
bool dtype_supported(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

std::string TensorInfo::shape_string() const { return shape_to_string(shape); }

void TensorInfo::require_supported_dtype() const {
  WKVQ_REQUIRE(dtype_supported(dtype), file, ": tensor '", name, "': unsupported dtype ",
               dtype_name(dtype), " (wkvq reads weights stored as F32, F16 or BF16)");
}

const float* TensorInfo::f32_in_place() const {
  if (dtype != DType::F32 || numel == 0) return nullptr;
  if (reinterpret_cast<uintptr_t>(data) % alignof(float) != 0) return nullptr;
  return reinterpret_cast<const float*>(data);
}

void TensorInfo::to_f32(int64_t begin, int64_t count, float* dst) const {
  require_supported_dtype();
  WKVQ_ASSERT(begin >= 0 && count >= 0 && begin + count <= numel);
  if (count == 0) return;
  const auto n = static_cast<size_t>(count);
  const size_t esize = dtype_size(dtype);
  const uint8_t* src = data + static_cast<size_t>(begin) * esize;
  if (dtype == DType::F32) {
    std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  auto convert = [&](const uint16_t* in, float* out, size_t c) {
    if (dtype == DType::F16) {
      fp16_to_f32(in, out, c);
    } else {
      bf16_to_f32(in, out, c);
    }
  };
  if (reinterpret_cast<uintptr_t>(src) % alignof(uint16_t) == 0) {
    convert(reinterpret_cast<const uint16_t*>(src), dst, n);
    return;
  }
  // Misaligned 16-bit data (an odd header length): stage through an aligned buffer.
  constexpr size_t kChunk = 4096;
  uint16_t staging[kChunk];
  for (size_t i = 0; i < n; i += kChunk) {
    const size_t c = std::min(kChunk, n - i);
    std::memcpy(staging, src + 2 * i, 2 * c);
    convert(staging, dst + i, c);
  }
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<const MappedFile> map) {
  SafetensorsFile f;
  f.path_ = map->path();
  f.map_ = std::move(map);
  const std::string& path = f.path_;
  const uint8_t* bytes = f.map_->data();
  const uint64_t size = f.map_->size();
  WKVQ_REQUIRE(size >= 8, path, ": file is ", size,
               " bytes, too short for the 8-byte safetensors header length");
  const uint64_t n = read_u64_le(bytes);
  WKVQ_REQUIRE(n <= size - 8, path, ": safetensors header length ", n,
               " runs past the end of the file (", size,
               " bytes); the file is truncated or not safetensors");
  const auto* text = reinterpret_cast<const char*>(bytes + 8);
  json header;
  try {
    header = json::parse(text, text + n);
  } catch (const json::exception& e) {
    fail(path, ": safetensors header is not valid JSON: ", e.what());
  }
  WKVQ_REQUIRE(header.is_object(), path, ": safetensors header must be a JSON object, found ",
               header.type_name());
  const uint8_t* data = bytes + 8 + n;
  const uint64_t data_size = size - 8 - n;
  try {
    for (const auto& [name, e] : header.items()) {
      if (name == "__metadata__") {
        WKVQ_REQUIRE(e.is_object() || e.is_null(), path,
                     ": \"__metadata__\" must be an object of strings, found ", e.type_name());
        if (e.is_null()) continue;
        for (const auto& [k, v] : e.items()) {
          if (v.is_string()) f.metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      f.tensors_.emplace(name, parse_entry(path, name, e, data, data_size));
    }
  } catch (const json::exception& e) {  // backstop: every access above is type-checked
    fail(path, ": malformed safetensors header: ", e.what());
  }
  check_no_overlap(path, f.tensors_, data);
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {

// A shard name from the index: a relative path that stays inside the model directory.
void check_shard_name(const std::string& index_path, const std::string& shard) {
  const fs::path p(shard);
  bool ok = !shard.empty() && p.is_relative();
  for (const auto& part : p) ok = ok && part != "..";
  WKVQ_REQUIRE(ok, index_path, ": shard file name \"", shard,
               "\" must be a relative path inside the model directory");
}

}  // namespace

SafetensorsSet SafetensorsSet::open_dir(const std::string& dir) {
  SafetensorsSet s;
  s.dir_ = dir;
  const fs::path d(dir);
  const fs::path index_path = d / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    const std::string ip = index_path.string();
    const json index = read_json_file(ip);
    WKVQ_REQUIRE(index.is_object() && index.contains("weight_map"), ip,
                 ": expected a JSON object with a \"weight_map\" key");
    const json& wm = index.at("weight_map");
    WKVQ_REQUIRE(wm.is_object(), ip, ": \"weight_map\" must be an object, found ", wm.type_name());
    std::map<std::string, size_t> shard_index;
    for (const auto& [name, v] : wm.items()) {
      WKVQ_REQUIRE(v.is_string(), ip, ": weight_map entry for '", name,
                   "' must be a file name string, found ", v.type_name());
      const std::string shard = v.get<std::string>();
      auto it = shard_index.find(shard);
      if (it == shard_index.end()) {
        check_shard_name(ip, shard);
        const fs::path sp = d / shard;
        WKVQ_REQUIRE(fs::exists(sp, ec), ip, ": weight_map names shard ", shard, " (for '", name,
                     "'), but ", sp.string(), " does not exist");
        s.files_.push_back(SafetensorsFile::open(sp.string()));
        it = shard_index.emplace(shard, s.files_.size() - 1).first;
      }
      WKVQ_REQUIRE(s.files_[it->second].find(name) != nullptr, ip, ": weight_map maps '", name,
                   "' to shard ", shard, ", which does not contain it");
      s.index_[name] = it->second;
    }
    return s;
  }

  std::vector<std::string> shards;
  if (fs::is_directory(d, ec)) {
    for (const auto& de : fs::directory_iterator(d, ec)) {
      if (de.path().extension() == ".safetensors" && de.is_regular_file(ec)) {
        shards.push_back(de.path().string());
      }
    }
  }
  WKVQ_REQUIRE(!shards.empty(), dir,
               ": no model.safetensors.index.json and no *.safetensors file in this directory");
  std::sort(shards.begin(), shards.end());
  for (const std::string& sp : shards) {
    s.files_.push_back(SafetensorsFile::open(sp));
    const size_t fi = s.files_.size() - 1;
    for (const auto& [name, t] : s.files_[fi].tensors()) {
      auto [it, inserted] = s.index_.emplace(name, fi);
      WKVQ_REQUIRE(inserted, dir, ": tensor '", name, "' is in both ", s.files_[it->second].path(),
                   " and ", sp, " and there is no model.safetensors.index.json to choose");
    }
  }
  return s;
}

const TensorInfo* SafetensorsSet::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : files_[it->second].find(name);
}

const TensorInfo& SafetensorsSet::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) {
    std::ostringstream files;
    for (size_t i = 0; i < files_.size(); ++i) {
      files << (i ? ", " : "") << fs::path(files_[i].path()).filename().string();
    }
    fail(dir_, ": tensor '", name, "' not found (looked in ", files.str(), ")");
  }
  return *t;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

std::vector<std::shared_ptr<const MappedFile>> SafetensorsSet::mappings() const {
  std::vector<std::shared_ptr<const MappedFile>> out;
  for (const SafetensorsFile& f : files_) out.push_back(f.mapping());
  return out;
}

}  // namespace wkvq
