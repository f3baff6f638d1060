// safetensors writer: the counterpart of io/safetensors.h. Tensors are added by name with dtype,
// shape and bytes; write() lays them out as the format asks:
//   u64 little-endian N | N bytes of header JSON, padded with spaces to a multiple of 8 |
//   data section: every tensor's bytes back to back, in the order added (no holes, no overlap)
// The header maps each name to {"dtype", "shape", "data_offsets": [begin, end]} (relative to the
// data section) and holds "__metadata__" (strings; {"format": "pt"} by default, which
// Hugging Face transformers expects). Add 4-byte tensors before 2-byte ones to keep every
// tensor aligned to its element size (the data section starts 8-byte aligned).
//
// Tensor bytes are borrowed, owned, or produced on demand while writing (so a large model need
// not be held twice in memory). The file is written to PATH.tmp and renamed over PATH at the end:
// a reader never sees a half-written file, and a file still mapped by the process stays valid.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace wkvq {

class SafetensorsWriter {
 public:
  // Fills exactly the tensor's byte size at dst; called once, during write().
  using Producer = std::function<void(uint8_t* dst)>;

  // Borrowed bytes: `data` (numel(shape) * dtype_size(dtype) bytes) must stay valid until write().
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data);
  // Bytes produced on demand.
  void add_lazy(const std::string& name, DType dtype, std::vector<int64_t> shape, Producer fill);
  // Owned copy of a vector whose byte size must match the shape and dtype.
  template <class T>
  void add_owned(const std::string& name, DType dtype, std::vector<int64_t> shape,
                 std::vector<T> values) {
    auto keep = std::make_shared<std::vector<T>>(std::move(values));
    check_size(name, dtype, shape, keep->size() * sizeof(T));
    add(name, dtype, std::move(shape), keep->data());
    entries_.back().owner = keep;
  }
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  size_t size() const { return entries_.size(); }
  // Bytes of the data section (the sum of every tensor's bytes).
  uint64_t data_bytes() const;
  // Writes the file; throws wkvq::Error naming the path (and the system's reason).
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t nbytes = 0;
    const void* data = nullptr;  // borrowed bytes, or null when produced
    Producer fill;
    std::shared_ptr<const void> owner;
  };
  Entry& add_entry(const std::string& name, DType dtype, std::vector<int64_t> shape);
  static void check_size(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                         size_t nbytes);
  std::string header_json() const;
  void write_to(std::ostream& out, const std::string& tmp) const;

  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_ = {{"format", "pt"}};
};

}  // namespace wkvq
