// Attribute and method access, subscripts, slices, iteration and the global functions.
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <ctime>

#include "chat/jinja_builtins.h"
#include "core/error.h"

namespace wkvq::jinja {

namespace {

bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

const Value kNone = Value::none();
const Value kUndefined;

std::string string_arg(const CallArgs& args, size_t i, const char* name, const char* method) {
  const Value& v = argument(args, i, name, kUndefined);
  WKVQ_REQUIRE(v.is_string(), method, "(): argument '", name, "' must be a string, got ",
               v.kind_name());
  return v.as_string();
}

// startswith / endswith: a string or a tuple (list) of strings.
bool affix_match(const std::string& s, const Value& pattern, bool prefix, const char* method) {
  auto one = [&](const Value& p) {
    WKVQ_REQUIRE(p.is_string(), method, "(): expected a string or a tuple of strings, got ",
                 p.kind_name());
    const std::string& a = p.as_string();
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0
                  : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (pattern.kind() == Value::Kind::List) {
    return std::any_of(pattern.items().begin(), pattern.items().end(), one);
  }
  return one(pattern);
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  ValueList out;
  if (sep.is_none() || sep.is_undefined()) {  // runs of whitespace, no empty pieces
    std::u32string u = utf8_to_u32(s);
    size_t i = 0;
    while (i < u.size()) {
      while (i < u.size() && is_py_space(u[i])) ++i;
      if (i >= u.size()) break;
      size_t j = i;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        j = u.size();
        while (j > i && is_py_space(u[j - 1])) --j;
      } else {
        while (j < u.size() && !is_py_space(u[j])) ++j;
      }
      out.push_back(Value(u32_to_utf8(u.substr(i, j - i))));
      i = j;
    }
    return Value::list(std::move(out));
  }
  WKVQ_REQUIRE(sep.is_string(), "split(): the separator must be a string, got ", sep.kind_name());
  const std::string& d = sep.as_string();
  WKVQ_REQUIRE(!d.empty(), "split(): empty separator");
  size_t start = 0;
  for (;;) {
    size_t at = s.find(d, start);
    if (at == std::string::npos ||
        (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit)) {
      out.push_back(Value(s.substr(start)));
      return Value::list(std::move(out));
    }
    out.push_back(Value(s.substr(start, at - start)));
    start = at + d.size();
  }
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` around every character
    std::u32string u = utf8_to_u32(s);
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || static_cast<int64_t>(i) < count) out += to;
      if (i < u.size()) out += u32_to_utf8(u.substr(i, 1));
    }
    return out;
  }
  size_t start = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    size_t at = s.find(from, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += to;
    start = at + from.size();
  }
  out.append(s, start);
  return out;
}

Value string_method(const Value& self, const std::string& name) {
  const std::string s = self.as_string();
  auto bind = [&](NativeFunction f) { return Value::function(name, std::move(f)); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool left = name != "rstrip", right = name != "lstrip";
    return bind([s, left, right](const CallArgs& a) {
      return Value(strip(s, argument(a, 0, "chars", kNone), left, right));
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool prefix = name == "startswith";
    return bind([s, prefix, name](const CallArgs& a) {
      const Value& p = argument(a, 0, "prefix", kUndefined);
      return Value(affix_match(s, p, prefix, name.c_str()));
    });
  }
  if (name == "split") {
    return bind([s](const CallArgs& a) {
      const Value& n = argument(a, 1, "maxsplit", Value(int64_t{-1}));
      WKVQ_REQUIRE(n.kind() == Value::Kind::Int, "split(): maxsplit must be an integer");
      return split(s, argument(a, 0, "sep", kNone), n.as_int());
    });
  }
  if (name == "replace") {
    return bind([s](const CallArgs& a) {
      const Value& n = argument(a, 2, "count", Value(int64_t{-1}));
      WKVQ_REQUIRE(n.kind() == Value::Kind::Int, "replace(): count must be an integer");
      return Value(replace_all(s, string_arg(a, 0, "old", "replace"),
                               string_arg(a, 1, "new", "replace"), n.as_int()));
    });
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    return bind([s, name](const CallArgs&) { return apply_filter(name, Value(s), {}); });
  }
  if (name == "find" || name == "count") {
    bool find = name == "find";
    return bind([s, find](const CallArgs& a) {
      const std::string& sub = string_arg(a, 0, "sub", find ? "find" : "count");
      if (find) {
        size_t at = s.find(sub);
        return at == std::string::npos
                   ? Value(int64_t{-1})
                   : Value(static_cast<int64_t>(utf8_to_u32(s.substr(0, at)).size()));
      }
      int64_t n = 0;
      size_t step = std::max<size_t>(sub.size(), 1);
      for (size_t at = s.find(sub); at != std::string::npos && at <= s.size();
           at = s.find(sub, at + step)) {
        ++n;
      }
      return Value(n);
    });
  }
  if (name == "join") {
    return bind([s](const CallArgs& a) {
      return apply_filter("join", argument(a, 0, "iterable", kUndefined), {{Value(s)}, {}});
    });
  }
  return Value::undefined(name);
}

Value dict_method(const Value& self, const std::string& name) {
  auto bind = [&](NativeFunction f) { return Value::function(name, std::move(f)); };
  if (name == "items" || name == "keys" || name == "values") {
    return bind([self, name](const CallArgs&) {
      ValueList out;
      for (const auto& [k, v] : self.entries()) {
        if (name == "items") out.push_back(Value::list({Value(k), v}));
        if (name == "keys") out.push_back(Value(k));
        if (name == "values") out.push_back(v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return bind([self](const CallArgs& a) {
      const Value& key = argument(a, 0, "key", kUndefined);
      const Value* found = key.is_string() ? self.find(key.as_string()) : nullptr;
      return found != nullptr ? *found : argument(a, 1, "default", kNone);
    });
  }
  return Value::undefined(name);
}

// Python's slice.indices() followed by the selection, on any random-access sequence.
template <class Seq>
Seq slice_of(const Seq& seq, const Value& start, const Value& stop, const Value& step) {
  auto given = [](const Value& v) { return !(v.is_none() || v.is_undefined()); };
  for (const Value* v : {&start, &stop, &step}) {
    WKVQ_REQUIRE(!given(*v) || v->kind() == Value::Kind::Int,
                 "slice indices must be integers or none, got ", v->kind_name());
  }
  const int64_t n = static_cast<int64_t>(seq.size());
  int64_t st = given(step) ? step.as_int() : 1;
  WKVQ_REQUIRE(st != 0, "slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (!given(v)) return dflt;
    int64_t i = v.as_int();
    if (i < 0) i += n;
    return st > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
  };
  int64_t a = clamp(start, st > 0 ? 0 : n - 1), b = clamp(stop, st > 0 ? n : -1);
  Seq out;
  for (int64_t i = a; st > 0 ? i < b : i > b; i += st) out.push_back(seq[static_cast<size_t>(i)]);
  return out;
}

}  // namespace

Value argument(const CallArgs& args, size_t index, const char* name, const Value& fallback) {
  for (const auto& [k, v] : args.keyword) {
    if (k == name) return v;
  }
  return index < args.positional.size() ? args.positional[index] : fallback;
}

std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::u32string u = utf8_to_u32(s), set;
  bool by_set = chars.is_string();
  if (by_set) set = utf8_to_u32(chars.as_string());
  WKVQ_REQUIRE(by_set || chars.is_none() || chars.is_undefined(),
               "strip(): chars must be a string or none, got ", chars.kind_name());
  auto drop = [&](char32_t c) {
    return by_set ? set.find(c) != std::u32string::npos : is_py_space(c);
  };
  size_t a = 0, b = u.size();
  while (left && a < b && drop(u[a])) ++a;
  while (right && b > a && drop(u[b - 1])) --b;
  return u32_to_utf8(u.substr(a, b - a));
}

Value get_attribute(const Value& obj, const std::string& name) {
  WKVQ_REQUIRE(!obj.is_undefined(), "'", obj.as_string(),
               "' is undefined, so it has no attribute '", name, "'");
  WKVQ_REQUIRE(!obj.is_none(), "none has no attribute '", name, "'");
  if (obj.is_mapping()) {
    if (const Value* v = obj.find(name)) return *v;
    return obj.kind() == Value::Kind::Dict ? dict_method(obj, name) : Value::undefined(name);
  }
  if (obj.is_string()) return string_method(obj, name);
  return Value::undefined(name);
}

Value get_item(const Value& obj, const Value& key) {
  WKVQ_REQUIRE(!obj.is_undefined(), "'", obj.as_string(),
               "' is undefined, so it cannot be indexed");
  if (obj.is_mapping()) {
    if (!key.is_string()) return Value::undefined(key.str());
    const Value* v = obj.find(key.as_string());
    return v != nullptr ? *v : get_attribute(obj, key.as_string());
  }
  if (obj.kind() == Value::Kind::List || obj.is_string()) {
    WKVQ_REQUIRE(key.kind() == Value::Kind::Int, "a ", obj.kind_name(),
                 " index must be an integer, got ", key.kind_name());
    std::u32string chars;
    if (obj.is_string()) chars = utf8_to_u32(obj.as_string());
    int64_t n = obj.is_string() ? static_cast<int64_t>(chars.size())
                                : static_cast<int64_t>(obj.items().size());
    int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
    if (i < 0 || i >= n) return Value::undefined("index " + std::to_string(key.as_int()));
    if (obj.is_string()) return Value(u32_to_utf8(chars.substr(static_cast<size_t>(i), 1)));
    return obj.items()[static_cast<size_t>(i)];
  }
  fail("a ", obj.kind_name(), " cannot be indexed");
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_string()) {
    return Value(u32_to_utf8(slice_of(utf8_to_u32(obj.as_string()), start, stop, step)));
  }
  WKVQ_REQUIRE(obj.kind() == Value::Kind::List, "only lists and strings can be sliced, got a ",
               obj.kind_name());
  return Value::list(slice_of(obj.items(), start, stop, step));
}

ValueList iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return {};
    case Value::Kind::List:
      return v.items();
    case Value::Kind::Dict: {
      ValueList keys;
      for (const auto& e : v.entries()) keys.push_back(Value(e.first));
      return keys;
    }
    case Value::Kind::String: {
      ValueList chars;
      for (char32_t c : utf8_to_u32(v.as_string())) chars.push_back(Value(u32_to_utf8({c})));
      return chars;
    }
    default:
      fail("cannot iterate over a ", v.kind_name());
  }
}

ValueDict global_functions() {
  ValueDict g;
  g.emplace_back("raise_exception",
                 Value::function("raise_exception", [](const CallArgs& a) -> Value {
                   fail("the template raised an error: ",
                        argument(a, 0, "message", Value("(no message)")).str());
                 }));
  auto keywords_dict = [](const CallArgs& a, bool ns) {
    ValueDict d;
    if (!a.positional.empty()) {
      WKVQ_REQUIRE(a.positional[0].is_mapping() && a.positional.size() == 1,
                   ns ? "namespace" : "dict", "() takes one dict and keyword arguments");
      d = a.positional[0].entries();
    }
    for (const auto& kv : a.keyword) d.push_back(kv);
    return ns ? Value::namespace_(std::move(d)) : Value::dict(std::move(d));
  };
  g.emplace_back("namespace", Value::function("namespace", [keywords_dict](const CallArgs& a) {
                   return keywords_dict(a, true);
                 }));
  g.emplace_back("dict", Value::function("dict", [keywords_dict](const CallArgs& a) {
                   return keywords_dict(a, false);
                 }));
  g.emplace_back("range", Value::function("range", [](const CallArgs& a) {
                   for (const Value& v : a.positional) {
                     WKVQ_REQUIRE(v.kind() == Value::Kind::Int,
                                  "range(): arguments must be integers");
                   }
                   size_t n = a.positional.size();
                   WKVQ_REQUIRE(n >= 1 && n <= 3, "range() takes 1 to 3 arguments, got ", n);
                   int64_t lo = n == 1 ? 0 : a.positional[0].as_int();
                   int64_t hi = n == 1 ? a.positional[0].as_int() : a.positional[1].as_int();
                   int64_t st = n == 3 ? a.positional[2].as_int() : 1;
                   WKVQ_REQUIRE(st != 0, "range(): step must not be zero");
                   WKVQ_REQUIRE((hi - lo) / st < 10'000'000, "range(): too many items");
                   ValueList out;
                   for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) out.push_back(Value(i));
                   return Value::list(std::move(out));
                 }));
  g.emplace_back("strftime_now", Value::function("strftime_now", [](const CallArgs& a) {
                   const std::string& fmt = string_arg(a, 0, "format", "strftime_now");
                   std::time_t now = std::time(nullptr);
                   std::tm tm{};
                   localtime_r(&now, &tm);
                   char buf[256];
                   size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
                   return Value(std::string(buf, n));
                 }));
  return g;
}

}  // namespace wkvq::jinja
