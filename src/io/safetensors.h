// safetensors reader (https://huggingface.co/docs/safetensors): u64 little-endian header
// length N, N bytes of JSON, then the data section. The JSON maps each tensor name to
//   {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}
// (offsets relative to the start of the data section), plus an optional "__metadata__" object
// of strings. Every entry is validated at open: dtype known, shape entries non-negative with a
// product that does not overflow, begin <= end <= data size, end - begin == numel * dtype size,
// no two tensors overlap. Whether a dtype is *supported* (F32, F16, BF16) is checked at use, so
// a file holding, say, an I64 buffer still opens and only that tensor gives an error.
//
// SafetensorsSet opens a model directory: model.safetensors.index.json ("weight_map": name ->
// shard file, each shard opened once) when present, else every *.safetensors file in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace wkvq {

enum class DType {
  F32,
  F16,
  BF16,
  F64,
  I8,
  U8,
  I16,
  U16,
  I32,
  U32,
  I64,
  U64,
  BOOL,
  F8_E4M3,
  F8_E5M2
};

const char* dtype_name(DType d);
size_t dtype_size(DType d);
// True for the dtypes wkvq reads weights from: F32, F16, BF16.
bool dtype_supported(DType d);

struct TensorInfo {
  std::string name;
  std::string file;  // path of the safetensors file holding it (for messages)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  const uint8_t* data = nullptr;  // into the mapped file; nullptr when nbytes == 0
  size_t nbytes = 0;

  std::string shape_string() const;  // "[704, 256]"
  // The data as float32 without a copy, or nullptr when the dtype is not F32 or the data is not
  // 4-byte aligned (then use to_f32).
  const float* f32_in_place() const;
  // Converts all numel elements to float32 into dst. Throws wkvq::Error naming the file and the
  // tensor for a dtype other than F32, F16, BF16.
  void to_f32(float* dst) const { to_f32(0, numel, dst); }
  // Converts elements [begin, begin + count) into dst[0, count) (for parallel conversion).
  void to_f32(int64_t begin, int64_t count, float* dst) const;
  // Throws "<file>: tensor <name>: dtype X is not supported ..." unless dtype_supported().
  void require_supported_dtype() const;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws wkvq::Error naming the path and the problem.
  static SafetensorsFile open(const std::string& path);
  // Validates an in-memory image (the map must outlive the result; open() keeps it).
  static SafetensorsFile parse(std::shared_ptr<const MappedFile> map);

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;
  const std::shared_ptr<const MappedFile>& mapping() const { return map_; }

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> map_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsSet {
 public:
  // `dir` holds model.safetensors.index.json (sharded) or one or more *.safetensors files.
  static SafetensorsSet open_dir(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // nullptr when absent.
  const TensorInfo* find(const std::string& name) const;
  // Throws "<dir>: tensor <name> not found in <files>" when absent.
  const TensorInfo& get(const std::string& name) const;
  std::vector<std::string> names() const;
  size_t size() const { return index_.size(); }
  // The mapped files, to keep alive as long as tensor pointers are in use.
  std::vector<std::shared_ptr<const MappedFile>> mappings() const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> index_;  // tensor name -> index into files_
};

}  // namespace wkvq
