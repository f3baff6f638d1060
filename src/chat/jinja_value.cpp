#include "chat/jinja_value.h"

#include <charconv>
#include <cmath>

#include "core/error.h"
#include "runtime/utf8.h"

namespace wkvq::jinja {

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::undefined(std::string name) {
  Value v;
  v.s_ = std::move(name);
  return v;
}

Value::Value(bool b) : kind_(Kind::Bool), b_(b) {}
Value::Value(int64_t i) : kind_(Kind::Int), i_(i) {}
Value::Value(double f) : kind_(Kind::Float), f_(f) {}
Value::Value(std::string s) : kind_(Kind::String), s_(std::move(s)) {}
Value::Value(const char* s) : kind_(Kind::String), s_(s) {}

Value Value::list(ValueList items) {
  Value v;
  v.kind_ = Kind::List;
  v.list_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::dict(ValueDict items) {
  Value v;
  v.kind_ = Kind::Dict;
  v.dict_ = std::make_shared<ValueDict>(std::move(items));
  return v;
}

Value Value::namespace_(ValueDict items) {
  Value v = dict(std::move(items));
  v.kind_ = Kind::Namespace;
  return v;
}

Value Value::function(std::string name, NativeFunction f) {
  Value v;
  v.kind_ = Kind::Function;
  v.s_ = std::move(name);
  v.fn_ = std::make_shared<NativeFunction>(std::move(f));
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      ValueDict items;
      for (const auto& [k, e] : j.items()) items.emplace_back(k, from_json(e));
      return dict(std::move(items));
    }
    default:
      fail("chat template: JSON value of type ", j.type_name(), " has no template equivalent");
  }
}

const Value* Value::find(const std::string& key) const {
  if (!is_mapping()) return nullptr;
  for (const auto& [k, v] : *dict_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Value::set(const std::string& key, Value v) const {
  for (auto& [k, old] : *dict_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  dict_->emplace_back(key, std::move(v));
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return b_;
    case Kind::Int:
      return i_ != 0;
    case Kind::Float:
      return f_ != 0;
    case Kind::String:
      return !s_.empty();
    case Kind::List:
      return !list_->empty();
    case Kind::Dict:
      return !dict_->empty();
    case Kind::Namespace:
    case Kind::Function:
      return true;
  }
  return false;
}

namespace {

// Python's repr of a float: the shortest text that reads back, with ".0" on whole numbers.
std::string float_text(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

void json_string_into(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace

std::string Value::str() const {
  switch (kind_) {
    case Kind::Undefined:
      return "";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return b_ ? "True" : "False";
    case Kind::Int:
      return std::to_string(i_);
    case Kind::Float:
      return float_text(f_);
    case Kind::String:
      return s_;
    case Kind::Function:
      return "<function " + s_ + ">";
    default:
      return to_json();
  }
}

std::string Value::to_json(int indent) const {
  std::string out;
  json_into(out, indent, 0);
  return out;
}

void Value::json_into(std::string& out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += b_ ? "true" : "false";
      return;
    case Kind::Int:
      out += std::to_string(i_);
      return;
    case Kind::Float:
      WKVQ_REQUIRE(std::isfinite(f_), "tojson: ", f_, " is not a JSON number");
      out += float_text(f_);
      return;
    case Kind::String:
      json_string_into(out, s_);
      return;
    case Kind::List:
      out += '[';
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i > 0) out += item_sep;
        newline(depth + 1);
        (*list_)[i].json_into(out, indent, depth + 1);
      }
      if (!list_->empty()) newline(depth);
      out += ']';
      return;
    case Kind::Dict:
    case Kind::Namespace:
      out += '{';
      for (size_t i = 0; i < dict_->size(); ++i) {
        if (i > 0) out += item_sep;
        newline(depth + 1);
        json_string_into(out, (*dict_)[i].first);
        out += ": ";
        (*dict_)[i].second.json_into(out, indent, depth + 1);
      }
      if (!dict_->empty()) newline(depth);
      out += '}';
      return;
    case Kind::Function:
      fail("tojson: the function ", s_, " cannot be written as JSON");
  }
}

const char* Value::kind_name() const {
  switch (kind_) {
    case Kind::Undefined:
      return "undefined";
    case Kind::None:
      return "none";
    case Kind::Bool:
      return "boolean";
    case Kind::Int:
      return "integer";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "string";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Namespace:
      return "namespace";
    case Kind::Function:
      return "function";
  }
  return "?";
}

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::Int && b.kind() == Value::Kind::Int) {
      return a.as_int() == b.as_int();
    }
    return a.as_number() == b.as_number();
  }
  if (a.kind() == Value::Kind::Bool && b.kind() == Value::Kind::Bool) {
    return a.as_bool() == b.as_bool();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None:
      return true;
    case Value::Kind::String:
      return a.as_string() == b.as_string();
    case Value::Kind::List: {
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        if (!equal(a.items()[i], b.items()[i])) return false;
      }
      return true;
    }
    case Value::Kind::Dict:
    case Value::Kind::Namespace: {
      if (a.entries().size() != b.entries().size()) return false;
      for (const auto& [k, v] : a.entries()) {
        const Value* other = b.find(k);
        if (other == nullptr || !equal(v, *other)) return false;
      }
      return true;
    }
    default:
      return &a.callable() == &b.callable();
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::Int && b.kind() == Value::Kind::Int) {
      return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    }
    double x = a.as_number(), y = b.as_number();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.as_string().compare(b.as_string());
  fail("cannot order a ", a.kind_name(), " and a ", b.kind_name(),
       " (only numbers with numbers and strings with strings)");
}

std::u32string utf8_to_u32(const std::string& s) {
  std::u32string out;
  for (size_t at = 0; at < s.size();) {
    size_t subpart = 0;
    size_t len = utf8::valid_length(s, at, &subpart);
    if (len == 0) {
      out += U'\uFFFD';
      at += subpart;
    } else {
      out += utf8::decode(s, at, len);
      at += len;
    }
  }
  return out;
}

std::string u32_to_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) utf8::append(out, c);
  return out;
}

}  // namespace wkvq::jinja
