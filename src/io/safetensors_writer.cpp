#include "io/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace wkvq {

namespace {

uint64_t byte_size(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  uint64_t n = dtype_size(dtype);
  for (const int64_t d : shape) {
    WKVQ_REQUIRE(d >= 0, "safetensors writer: tensor '", name, "' has a negative dimension in ",
                 shape_to_string(shape));
    WKVQ_REQUIRE(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n),
                 "safetensors writer: ", "tensor '", name, "' of shape ", shape_to_string(shape),
                 " is too large");
  }
  return n;
}

}  // namespace

void SafetensorsWriter::check_size(const std::string& name, DType dtype,
                                   const std::vector<int64_t>& shape, size_t nbytes) {
  const uint64_t want = byte_size(name, dtype, shape);
  WKVQ_REQUIRE(want == nbytes, "safetensors writer: tensor '", name, "' has ", nbytes,
               " bytes, expected ", want, " for ", dtype_name(dtype), " ", shape_to_string(shape));
}

SafetensorsWriter::Entry& SafetensorsWriter::add_entry(const std::string& name, DType dtype,
                                                       std::vector<int64_t> shape) {
  WKVQ_REQUIRE(!name.empty() && name != "__metadata__", "safetensors writer: bad tensor name '",
               name, "'");
  WKVQ_REQUIRE(index_.count(name) == 0, "safetensors writer: tensor '", name, "' was added twice");
  Entry e;
  e.name = name;
  e.dtype = dtype;
  e.nbytes = byte_size(name, dtype, shape);
  e.shape = std::move(shape);
  index_[name] = entries_.size();
  entries_.push_back(std::move(e));
  return entries_.back();
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data) {
  Entry& e = add_entry(name, dtype, std::move(shape));
  WKVQ_REQUIRE(data != nullptr || e.nbytes == 0, "safetensors writer: tensor '", name,
               "' has no data");
  e.data = data;
}

void SafetensorsWriter::add_lazy(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                 Producer fill) {
  WKVQ_REQUIRE(fill != nullptr, "safetensors writer: tensor '", name, "' has no producer");
  add_entry(name, dtype, std::move(shape)).fill = std::move(fill);
}

uint64_t SafetensorsWriter::data_bytes() const {
  uint64_t n = 0;
  for (const Entry& e : entries_) n += e.nbytes;
  return n;
}

std::string SafetensorsWriter::header_json() const {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [k, v] : metadata_) meta[k] = v;
  h["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    h[e.name] = {{"dtype", dtype_name(e.dtype)},
                 {"shape", e.shape},
                 {"data_offsets", {offset, offset + e.nbytes}}};
    offset += e.nbytes;
  }
  std::string text = h.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // data section starts 8-byte aligned
  return text;
}

void SafetensorsWriter::write(const std::string& path) const {
  write_file_atomically(path,
                        [this](std::ostream& out, const std::string& tmp) { write_to(out, tmp); });
}

void SafetensorsWriter::write_to(std::ostream& out, const std::string& tmp) const {
  const std::string header = header_json();
  auto put = [&](const void* p, size_t n) {
    out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    WKVQ_REQUIRE(out.good(), tmp, ": write failed: ", std::strerror(errno), " (disk full?)");
  };
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(header.size() >> (8 * i));
  put(len, 8);
  put(header.data(), header.size());
  std::vector<uint8_t> buf;
  for (const Entry& e : entries_) {
    WKVQ_REQUIRE(e.nbytes <= std::numeric_limits<size_t>::max(), tmp, ": tensor '", e.name,
                 "' is too large for this machine");
    const auto n = static_cast<size_t>(e.nbytes);
    if (e.data != nullptr || n == 0) {
      put(e.data, n);
    } else {
      buf.assign(n, 0);
      e.fill(buf.data());
      put(buf.data(), n);
    }
  }
}

}  // namespace wkvq
