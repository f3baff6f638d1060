#include "runtime/json_node.h"

#include "core/error.h"

namespace wkvq {

std::string JsonNode::where() const {
  std::string w = file_;
  if (!path_.empty()) {
    w += ": ";
    w += path_;
  }
  return w;
}

bool JsonNode::has(const char* key) const {
  if (!value_->is_object()) return false;
  const auto it = value_->find(key);
  return it != value_->end() && !it->is_null();
}

JsonNode JsonNode::operator[](const char* key) const {
  const nlohmann::json& o = object();
  const auto it = o.find(key);
  std::string path = path_;
  if (!path.empty()) path += '.';
  path += key;
  WKVQ_REQUIRE(it != o.end(), file_, ": key \"", path, "\" is missing");
  return JsonNode(*it, file_, path);
}

JsonNode JsonNode::operator[](size_t i) const {
  const nlohmann::json& a = array();
  WKVQ_REQUIRE(i < a.size(), where(), ": index ", i, " is outside the array of ", a.size());
  std::string path = path_;
  path += '[';
  path += std::to_string(i);
  path += ']';
  return JsonNode(a[i], file_, std::move(path));
}

void JsonNode::wrong_type(const char* expected) const {
  std::string found = value_->type_name();
  if (value_->is_primitive()) {
    found += ' ';
    found += value_->dump();
  }
  fail(where(), ": expected ", expected, ", found ", found);
}

const nlohmann::json& JsonNode::object() const {
  if (!value_->is_object()) wrong_type("an object");
  return *value_;
}

const nlohmann::json& JsonNode::array() const {
  if (!value_->is_array()) wrong_type("an array");
  return *value_;
}

std::string JsonNode::string() const {
  if (!value_->is_string()) wrong_type("a string");
  return value_->get<std::string>();
}

bool JsonNode::boolean() const {
  if (!value_->is_boolean()) wrong_type("true or false");
  return value_->get<bool>();
}

int64_t JsonNode::integer() const {
  if (!value_->is_number_integer()) wrong_type("an integer");
  return value_->get<int64_t>();
}

std::string JsonNode::string_or(const char* key, const std::string& def) const {
  return has(key) ? (*this)[key].string() : def;
}

bool JsonNode::boolean_or(const char* key, bool def) const {
  return has(key) ? (*this)[key].boolean() : def;
}

}  // namespace wkvq
