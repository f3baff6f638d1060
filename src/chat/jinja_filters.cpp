// Filters (x | name(args)) and tests (x is name(args)).
#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cmath>

#include "chat/jinja_builtins.h"
#include "core/error.h"

namespace wkvq::jinja {

namespace {

const Value kNone = Value::none();
const Value kUndefined;

std::string case_map(const std::string& s, const std::string& how) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  if (how == "upper") {
    u.toUpper(icu::Locale::getRoot());
  } else if (how == "lower") {
    u.toLower(icu::Locale::getRoot());
  } else {  // title: each run of letters capitalized; capitalize: the first character only
    bool title = how == "title";
    bool start = true;
    icu::UnicodeString out;
    for (int32_t i = 0; i < u.length(); i = u.moveIndex32(i, 1)) {
      UChar32 c = u.char32At(i);
      out.append(start ? u_toupper(c) : u_tolower(c));
      start = title ? !u_isalpha(c) : false;
    }
    u = out;
  }
  std::string out;
  u.toUTF8String(out);
  return out;
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::String:
      return static_cast<int64_t>(utf8_to_u32(v.as_string()).size());
    case Value::Kind::List:
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::Dict:
    case Value::Kind::Namespace:
      return static_cast<int64_t>(v.entries().size());
    case Value::Kind::Undefined:
      return 0;
    default:
      fail("length: a ", v.kind_name(), " has no length");
  }
}

Value to_int(const Value& v, const Value& fallback) {
  if (v.kind() == Value::Kind::Int) return v;
  if (v.kind() == Value::Kind::Bool) return Value(int64_t{v.as_bool()});
  if (v.kind() == Value::Kind::Float) return Value(static_cast<int64_t>(std::trunc(v.as_number())));
  if (v.is_string()) {
    try {
      size_t used = 0;
      std::string t = strip(v.as_string(), kNone, true, true);
      int64_t i = std::stoll(t, &used);
      if (used == t.size()) return Value(i);
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Value to_float(const Value& v, const Value& fallback) {
  if (v.is_number()) return Value(v.as_number());
  if (v.kind() == Value::Kind::Bool) return Value(v.as_bool() ? 1.0 : 0.0);
  if (v.is_string()) {
    try {
      size_t used = 0;
      std::string t = strip(v.as_string(), kNone, true, true);
      double f = std::stod(t, &used);
      if (used == t.size()) return Value(f);
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

// selectattr / rejectattr: items whose attribute passes (fails) a test (default: truthy).
Value select_attr(const Value& input, const CallArgs& args, bool keep) {
  const Value& attr = argument(args, 0, "attribute", kUndefined);
  WKVQ_REQUIRE(attr.is_string(), "selectattr/rejectattr: the attribute name must be a string");
  CallArgs test_args;
  for (size_t i = 2; i < args.positional.size(); ++i)
    test_args.positional.push_back(args.positional[i]);
  ValueList out;
  for (const Value& item : iterate(input)) {
    Value field = item.is_mapping() ? get_attribute(item, attr.as_string()) : Value();
    bool pass = args.positional.size() > 1
                    ? apply_test(argument(args, 1, "test", kUndefined).str(), field, test_args)
                    : field.truthy();
    if (pass == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value map_items(const Value& input, const CallArgs& args) {
  const Value& attr = argument(args, 99, "attribute", kUndefined);
  ValueList out;
  for (const Value& item : iterate(input)) {
    if (attr.is_string()) {
      Value field = item.is_mapping() ? get_attribute(item, attr.as_string()) : Value();
      out.push_back(field.is_undefined() ? argument(args, 99, "default", field) : field);
    } else {
      WKVQ_REQUIRE(!args.positional.empty() && args.positional[0].is_string(),
                   "map: expected a filter name or attribute=...");
      CallArgs rest;
      rest.positional.assign(args.positional.begin() + 1, args.positional.end());
      out.push_back(apply_filter(args.positional[0].as_string(), item, rest));
    }
  }
  return Value::list(std::move(out));
}

constexpr const char* kFilters[] = {"default", "d",          "length",     "count",      "tojson",
                                    "string",  "safe",       "trim",       "upper",      "lower",
                                    "title",   "capitalize", "replace",    "items",      "list",
                                    "first",   "last",       "reverse",    "join",       "int",
                                    "float",   "abs",        "selectattr", "rejectattr", "map"};

}  // namespace

bool is_filter(const std::string& name) {
  for (const char* f : kFilters) {
    if (name == f) return true;
  }
  return false;
}

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
  if (name == "default" || name == "d") {
    bool boolean = argument(args, 1, "boolean", Value(false)).truthy();
    bool use_default = boolean ? !input.truthy() : input.is_undefined();
    return use_default ? argument(args, 0, "default_value", Value("")) : input;
  }
  if (name == "length" || name == "count") return Value(length_of(input));
  WKVQ_REQUIRE(!input.is_undefined(), "the filter '", name, "' got '", input.as_string(),
               "', which is undefined");
  if (name == "tojson") {
    const Value& indent = argument(args, 0, "indent", kNone);
    WKVQ_REQUIRE(indent.is_none() || indent.kind() == Value::Kind::Int,
                 "tojson: indent must be an integer");
    return Value(input.to_json(indent.is_none() ? -1 : static_cast<int>(indent.as_int())));
  }
  if (name == "string") return Value(input.str());
  if (name == "safe") return input;
  if (name == "trim" || name == "upper" || name == "lower" || name == "title" ||
      name == "capitalize") {
    WKVQ_REQUIRE(input.is_string(), "the filter '", name, "' expects a string, got a ",
                 input.kind_name());
    if (name == "trim")
      return Value(strip(input.as_string(), argument(args, 0, "chars", kNone), true, true));
    return Value(case_map(input.as_string(), name));
  }
  if (name == "replace")
    return get_attribute(input.is_string() ? input : Value(input.str()), "replace")
        .callable()(args);
  if (name == "items") {
    WKVQ_REQUIRE(input.is_mapping(), "items: expected a dict, got a ", input.kind_name());
    ValueList out;
    for (const auto& [k, v] : input.entries()) out.push_back(Value::list({Value(k), v}));
    return Value::list(std::move(out));
  }
  if (name == "list") return Value::list(iterate(input));
  if (name == "first" || name == "last") {
    ValueList items = iterate(input);
    if (items.empty()) return Value::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (input.is_string()) return get_slice(input, kNone, kNone, Value(int64_t{-1}));
    ValueList items = iterate(input);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "join") {
    const Value& sep = argument(args, 0, "d", Value(""));
    const Value& attr = argument(args, 1, "attribute", kNone);
    std::string out;
    bool first = true;
    for (const Value& item : iterate(input)) {
      if (!first) out += sep.str();
      first = false;
      out += (attr.is_string() ? get_attribute(item, attr.as_string()) : item).str();
    }
    return Value(out);
  }
  if (name == "int") return to_int(input, argument(args, 0, "default", Value(int64_t{0})));
  if (name == "float") return to_float(input, argument(args, 0, "default", Value(0.0)));
  if (name == "abs") {
    WKVQ_REQUIRE(input.is_number(), "abs: expected a number, got a ", input.kind_name());
    return input.kind() == Value::Kind::Int
               ? Value(input.as_int() < 0 ? -input.as_int() : input.as_int())
               : Value(std::fabs(input.as_number()));
  }
  if (name == "selectattr" || name == "rejectattr")
    return select_attr(input, args, name == "selectattr");
  if (name == "map") return map_items(input, args);
  fail("unknown filter '", name, "'");
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& args) {
  using K = Value::Kind;
  const Value& other = argument(args, 0, "other", kUndefined);
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == K::Int;
  if (name == "float") return v.kind() == K::Float;
  if (name == "boolean") return v.kind() == K::Bool;
  if (name == "true") return v.kind() == K::Bool && v.as_bool();
  if (name == "false") return v.kind() == K::Bool && !v.as_bool();
  if (name == "mapping") return v.is_mapping();
  if (name == "sequence" || name == "iterable") {
    return v.kind() == K::List || v.is_string() || v.kind() == K::Dict;
  }
  if (name == "callable") return v.kind() == K::Function;
  if (name == "lower" || name == "upper") {
    return v.is_string() && case_map(v.as_string(), name) == v.as_string();
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    WKVQ_REQUIRE(v.kind() == K::Int, "the test '", name, "' expects an integer, got a ",
                 v.kind_name());
    if (name == "divisibleby") {
      WKVQ_REQUIRE(other.kind() == K::Int && other.as_int() != 0,
                   "divisibleby: expected a non-zero integer");
      return v.as_int() % other.as_int() == 0;
    }
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return equal(v, other);
  if (name == "ne" || name == "!=") return !equal(v, other);
  if (name == "lt" || name == "<") return compare(v, other) < 0;
  if (name == "le" || name == "<=") return compare(v, other) <= 0;
  if (name == "gt" || name == ">") return compare(v, other) > 0;
  if (name == "ge" || name == ">=") return compare(v, other) >= 0;
  if (name == "in") {
    for (const Value& item : iterate(other)) {
      if (equal(item, v)) return true;
    }
    return false;
  }
  fail("unknown test '", name, "'");
}

}  // namespace wkvq::jinja
