// Jinja evaluator: renders a parsed template (jinja_parser.h) with the given variables.
//
// Scoping follows Jinja: a `for` body and a macro body have their own scope (a `set` inside does
// not change the variable outside; use namespace()); `if` has none. Undefined variables are
// values (falsy, `is defined` false, printed as nothing, iterated as empty); using one in
// arithmetic, concatenation with +, comparison by order, as a function or for an attribute is an
// error. Every error names the template line and column.
#pragma once

#include <cstdint>
#include <string>

#include "chat/jinja_ast.h"

namespace wkvq::jinja {

// `variables` are the template's top-level names; the global functions of jinja_builtins.h
// (raise_exception, namespace, range, ...) are added unless a variable shadows them.
// At most `max_steps` statements and loop iterations run (an error beyond: a template that
// never ends); real chat templates take thousands.
std::string render(const Body& tmpl, const ValueDict& variables, int64_t max_steps = 1'000'000);

}  // namespace wkvq::jinja
