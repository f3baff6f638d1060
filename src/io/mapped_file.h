// MappedFile: a whole file mapped read-only into memory. Shared ownership: tensors that point
// into the map keep it alive by holding the shared_ptr (see WeightStorage in model/model.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace wkvq {

class MappedFile {
 public:
  // Maps `path` read-only. Throws wkvq::Error naming the path and the system's reason (errno
  // text) when it cannot be opened, is not a regular file, or cannot be mapped. An empty file
  // gives size() == 0 and data() == nullptr.
  static std::shared_ptr<const MappedFile> open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // True when [p, p + n) lies inside this mapping.
  bool contains(const void* p, size_t n) const;
  // Drops the whole pages of [p, p + n) (which must lie inside the mapping) from the process's
  // resident set (madvise MADV_DONTNEED). The data stays valid: a later read maps the pages
  // again from the page cache or the file. For weights read once, such as a quantization source.
  void release(const void* p, size_t n) const;

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace wkvq
