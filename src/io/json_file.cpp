#include "io/json_file.h"

#include "core/error.h"
#include "io/mapped_file.h"

namespace wkvq {

nlohmann::json read_json_file(const std::string& path, const std::string& expected) {
  const auto map = MappedFile::open(path);
  const auto* text = reinterpret_cast<const char*>(map->data());
  try {
    return nlohmann::json::parse(text, text + (text == nullptr ? 0 : map->size()));
  } catch (const nlohmann::json::exception& e) {
    if (expected.empty()) fail(path, ": not valid JSON: ", e.what());
    fail(path, ": not valid JSON: ", e.what(), "; expected ", expected);
  }
}

}  // namespace wkvq
