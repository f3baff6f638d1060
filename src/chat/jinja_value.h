// The values a Jinja template computes with: undefined, none, booleans, integers, floats, strings,
// lists, dicts (insertion-ordered, as Python's and JSON's), namespaces and callables. Lists, dicts
// and namespaces are shared by reference, as in Python (a namespace set in a loop is seen after).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace wkvq::jinja {

class Value;
using ValueList = std::vector<Value>;
using ValueDict = std::vector<std::pair<std::string, Value>>;

// Arguments of a call: positional ones, then keyword ones in the order written.
struct CallArgs {
  ValueList positional;
  ValueDict keyword;
};
using NativeFunction = std::function<Value(const CallArgs&)>;

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

  Value() = default;  // undefined
  static Value none();
  static Value undefined(std::string name);  // remembers what was undefined, for error messages
  Value(bool b);
  Value(int64_t i);
  Value(double f);
  Value(std::string s);
  Value(const char* s);
  static Value list(ValueList items = {});
  static Value dict(ValueDict items = {});
  static Value namespace_(ValueDict items = {});
  static Value function(std::string name, NativeFunction f);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float; }
  bool is_mapping() const { return kind_ == Kind::Dict || kind_ == Kind::Namespace; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_number() const { return kind_ == Kind::Int ? static_cast<double>(i_) : f_; }
  const std::string& as_string() const { return s_; }  // also the name of an undefined value
  ValueList& items() const { return *list_; }
  ValueDict& entries() const { return *dict_; }
  const NativeFunction& callable() const { return *fn_; }

  // Looks up a dict / namespace key: nullptr when absent.
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v) const;

  bool truthy() const;
  // Python/Jinja str(): what {{ value }} prints (undefined prints nothing).
  std::string str() const;
  // json.dumps(value) with Python's default separators (", " and ": ") and non-ASCII kept, or
  // with `indent` spaces per level (then "," between items); undefined becomes null.
  std::string to_json(int indent = -1) const;
  const char* kind_name() const;

 private:
  void json_into(std::string& out, int indent, int depth) const;

  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<NativeFunction> fn_;
};

bool equal(const Value& a, const Value& b);
// <0, 0, >0 for numbers and for strings (byte order = code point order in UTF-8); throws on
// other kinds.
int compare(const Value& a, const Value& b);
// The Unicode code points of a UTF-8 string, and back (lengths and slices count code points).
std::u32string utf8_to_u32(const std::string& s);
std::string u32_to_utf8(const std::u32string& s);

}  // namespace wkvq::jinja
