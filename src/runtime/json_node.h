// JsonNode: a value inside a JSON file together with where it is (file and key path, e.g.
// "tokenizer.json: model.merges[12]"), so that every error about a configuration file names the
// file and the key. Accessors throw wkvq::Error saying what was expected and what was found.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace wkvq {

class JsonNode {
 public:
  JsonNode(const nlohmann::json& value, std::string file, std::string path = "")
      : value_(&value), file_(std::move(file)), path_(std::move(path)) {}

  const nlohmann::json& json() const { return *value_; }
  // "FILE: key.path" (or just FILE at the top).
  std::string where() const;
  const std::string& file() const { return file_; }

  // Whether `key` is present and not null (false when this is not an object).
  bool has(const char* key) const;
  // A key that must be present (may be null).
  JsonNode operator[](const char* key) const;
  // Element i of an array.
  JsonNode operator[](size_t i) const;

  bool is_null() const { return value_->is_null(); }
  // Requires this kind of value; throws naming the key when it is another.
  const nlohmann::json& object() const;
  const nlohmann::json& array() const;
  std::string string() const;
  bool boolean() const;
  int64_t integer() const;

  // Optional keys: the default when absent or null.
  std::string string_or(const char* key, const std::string& def) const;
  bool boolean_or(const char* key, bool def) const;

 private:
  [[noreturn]] void wrong_type(const char* expected) const;

  const nlohmann::json* value_;
  std::string file_, path_;
};

}  // namespace wkvq
