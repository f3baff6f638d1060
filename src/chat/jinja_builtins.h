// The built-in operations of the template language: filters (x | trim), tests (x is defined),
// attribute and method access (s.startswith(...), d.items()), subscripts and slices, and the
// global functions (raise_exception, namespace, range, dict, strftime_now). They follow Python's
// Jinja (what Hugging Face transformers renders chat templates with). Errors are wkvq::Error
// without a position; the evaluator adds the template line and column.
#pragma once

#include <string>

#include "chat/jinja_value.h"

namespace wkvq::jinja {

// Whether `name` is a filter apply_filter knows (checked when a template is parsed).
bool is_filter(const std::string& name);
Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);
bool apply_test(const std::string& name, const Value& input, const CallArgs& args);

// obj.name: a dict or namespace entry, else a method bound to obj (strings, dicts), else
// undefined. Throws on an undefined or none obj.
Value get_attribute(const Value& obj, const std::string& name);
// obj[key]: list / string by (negative) integer, dict by key; out of range or absent: undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] of a list or string, with Python's rules (undefined/none: omitted).
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// The global functions: raise_exception, namespace, range, dict, strftime_now.
ValueDict global_functions();

// What `for` iterates over: list items, dict keys, string characters; undefined: nothing.
ValueList iterate(const Value& v);

// Python's str.strip/lstrip/rstrip: whitespace (str.isspace) or the given characters.
std::string strip(const std::string& s, const Value& chars, bool left, bool right);

// The argument `index` (positional) or `name` (keyword) of a call, or `fallback` (a copy: the
// fallback is often a temporary).
Value argument(const CallArgs& args, size_t index, const char* name, const Value& fallback);

}  // namespace wkvq::jinja
