// The syntax tree of a parsed Jinja template: expressions and statements, each with the line and
// column it starts at (for error messages).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chat/jinja_value.h"

namespace wkvq::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,  // `literal`
    Name,     // `name`
    Attr,     // args[0].name
    Index,    // args[0][args[1]]
    Slice,    // args[0][args[1]:args[2]:args[3]] (null for an omitted part)
    Call,     // args[0](args[1..]); the last keywords.size() of them are keyword arguments
    Filter,   // args[0] | name(args[1..]), keywords as for Call
    Test,     // args[0] is [not] name(args[1..])
    Unary,    // `name` ("not", "-", "+") applied to args[0]
    Binary,   // args[0] `name` args[1]; name is the operator ("and", "in", "not in", "~", ...)
    Ternary,  // args[1] if args[0] else args[2] (args[2] null: undefined)
    List,     // [args...]
    Tuple,    // (args...)
    Dict,     // {args[0]: args[1], args[2]: args[3], ...}
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string name;
  Value literal;
  std::vector<ExprPtr> args;
  std::vector<std::string> keywords;
  bool negated = false;  // Test: `is not`
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Text,      // literal text
    Output,    // {{ exprs[0] }}
    If,        // exprs: one condition per branch; bodies: one per condition, then the else body
    For,       // names: loop targets; exprs[0] iterable, exprs[1] filter (or null);
               // bodies[0] loop body, bodies[1] else body
    Set,       // exprs[0] target (Name, Attr or Tuple of Names) = exprs[1]
    SetBlock,  // names[0] = rendered bodies[0]
    Macro,     // names[0] macro name, names[1..] parameters; exprs: their defaults (or null);
               // bodies[0]
    Break,
    Continue,
    Scope,  // bodies[0] rendered as it is (the transformers `generation` tag)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  std::vector<std::string> names;
  std::vector<ExprPtr> exprs;
  std::vector<Body> bodies;
};

}  // namespace wkvq::jinja
