#include "chat/jinja_expr_parser.h"

#include <initializer_list>

#include "chat/jinja_builtins.h"
#include "core/error.h"

namespace wkvq::jinja {

ExprPtr make_expr(Expr::Kind k, const Token& at) {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->line = at.line;
  e->column = at.column;
  return e;
}
ExprPtr ExprParser::binary(std::string op, ExprPtr a, ExprPtr b, const Token& at) {
  ExprPtr e = make_expr(Expr::Kind::Binary, at);
  e->name = std::move(op);
  e->args.push_back(std::move(a));
  e->args.push_back(std::move(b));
  return e;
}

ExprPtr ExprParser::parse_tuple_or_expr() {
  const Token& at = peek();
  ExprPtr first = parse_expr();
  if (!is_op(",")) return first;
  ExprPtr tuple = make_expr(Expr::Kind::Tuple, at);
  tuple->args.push_back(std::move(first));
  while (accept_op(",")) tuple->args.push_back(parse_expr());
  return tuple;
}

ExprPtr ExprParser::parse_expr() {
  Depth guard(*this);
  const Token& at = peek();
  ExprPtr value = parse_or();
  if (!is_name("if")) return value;
  next();
  ExprPtr e = make_expr(Expr::Kind::Ternary, at);
  e->args.push_back(parse_or());
  e->args.push_back(std::move(value));
  e->args.push_back(accept_name("else") ? parse_expr() : nullptr);
  return e;
}

ExprPtr ExprParser::parse_or() {
  ExprPtr e = parse_and();
  while (is_name("or")) {
    const Token& at = next();
    e = binary("or", std::move(e), parse_and(), at);
  }
  return e;
}

ExprPtr ExprParser::parse_and() {
  ExprPtr e = parse_not();
  while (is_name("and")) {
    const Token& at = next();
    e = binary("and", std::move(e), parse_not(), at);
  }
  return e;
}

ExprPtr ExprParser::parse_not() {
  Depth guard(*this);
  if (!is_name("not")) return parse_compare();
  ExprPtr e = make_expr(Expr::Kind::Unary, next());
  e->name = "not";
  e->args.push_back(parse_not());
  return e;
}

ExprPtr ExprParser::parse_compare() {
  ExprPtr e = parse_math1();
  for (;;) {
    const Token& at = peek();
    std::string op;
    if (at.kind == TokenKind::Operator && (at.text == "==" || at.text == "!=" || at.text == "<" ||
                                           at.text == ">" || at.text == "<=" || at.text == ">=")) {
      op = next().text;
    } else if (is_name("in")) {
      next();
      op = "in";
    } else if (is_name("not") && is_name("in", 1)) {
      next();
      next();
      op = "not in";
    } else {
      return e;
    }
    e = binary(op, std::move(e), parse_math1(), at);
  }
}

template <class Next>
ExprPtr ExprParser::parse_left_assoc(std::initializer_list<const char*> ops, Next next_level) {
  ExprPtr e = (this->*next_level)();
  for (;;) {
    const char* found = nullptr;
    for (const char* op : ops) {
      if (is_op(op)) found = op;
    }
    if (found == nullptr) return e;
    const Token& at = next();
    e = binary(found, std::move(e), (this->*next_level)(), at);
  }
}
ExprPtr ExprParser::parse_math1() {
  return parse_left_assoc({"+", "-"}, &ExprParser::parse_concat);
}
ExprPtr ExprParser::parse_concat() { return parse_left_assoc({"~"}, &ExprParser::parse_math2); }
ExprPtr ExprParser::parse_math2() {
  return parse_left_assoc({"*", "/", "//", "%"}, &ExprParser::parse_pow);
}
ExprPtr ExprParser::parse_pow() { return parse_left_assoc({"**"}, &ExprParser::parse_unary); }

ExprPtr ExprParser::parse_unary() {
  Depth guard(*this);
  if (is_op("-") || is_op("+")) {
    ExprPtr e = make_expr(Expr::Kind::Unary, peek());
    e->name = next().text;
    e->args.push_back(parse_unary());
    return e;
  }
  return parse_filters(parse_postfix(parse_primary()));
}

ExprPtr ExprParser::parse_primary() {
  const Token& t = peek();
  switch (t.kind) {
    case TokenKind::Name: {
      next();
      ExprPtr e = make_expr(Expr::Kind::Literal, t);
      if (t.text == "true" || t.text == "True") {
        e->literal = Value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->literal = Value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->literal = Value::none();
      } else {
        e->kind = Expr::Kind::Name;
        e->name = t.text;
      }
      return e;
    }
    case TokenKind::String: {
      ExprPtr e = make_expr(Expr::Kind::Literal, t);
      std::string s;
      while (peek().kind == TokenKind::String) s += next().text;  // 'a' 'b' is 'ab'
      e->literal = Value(std::move(s));
      return e;
    }
    case TokenKind::Integer:
    case TokenKind::Float: {
      ExprPtr e = make_expr(Expr::Kind::Literal, next());
      e->literal = t.kind == TokenKind::Integer ? Value(t.int_value) : Value(t.float_value);
      return e;
    }
    default:
      break;
  }
  if (accept_op("(")) {
    if (accept_op(")")) return make_expr(Expr::Kind::Tuple, t);
    ExprPtr first = parse_expr();
    if (accept_op(")")) return first;
    ExprPtr tuple = make_expr(Expr::Kind::Tuple, t);
    tuple->args.push_back(std::move(first));
    while (accept_op(",") && !is_op(")")) tuple->args.push_back(parse_expr());
    expect_op(")");
    return tuple;
  }
  if (accept_op("[")) {
    ExprPtr list = make_expr(Expr::Kind::List, t);
    while (!accept_op("]")) {
      if (!list->args.empty()) expect_op(",");
      if (accept_op("]")) break;
      list->args.push_back(parse_expr());
    }
    return list;
  }
  if (accept_op("{")) {
    ExprPtr dict = make_expr(Expr::Kind::Dict, t);
    while (!accept_op("}")) {
      if (!dict->args.empty()) expect_op(",");
      if (accept_op("}")) break;
      dict->args.push_back(parse_expr());
      expect_op(":");
      dict->args.push_back(parse_expr());
    }
    return dict;
  }
  error(t, "expected an expression, found " + describe(t));
}

ExprPtr ExprParser::parse_postfix(ExprPtr e) {
  for (;;) {
    const Token& at = peek();
    if (accept_op(".")) {
      ExprPtr attr = make_expr(Expr::Kind::Attr, at);
      if (peek().kind == TokenKind::Integer) {  // x.0 is x[0]
        attr->kind = Expr::Kind::Index;
        attr->args.push_back(std::move(e));
        ExprPtr idx = make_expr(Expr::Kind::Literal, peek());
        idx->literal = Value(next().int_value);
        attr->args.push_back(std::move(idx));
      } else {
        attr->name = expect_identifier("an attribute name after '.'");
        attr->args.push_back(std::move(e));
      }
      e = std::move(attr);
    } else if (accept_op("[")) {
      e = parse_subscript(std::move(e), at);
    } else if (accept_op("(")) {
      ExprPtr call = make_expr(Expr::Kind::Call, at);
      call->line = e->line;  // errors of a call point at what is called
      call->column = e->column;
      call->args.push_back(std::move(e));
      parse_call_args(*call);
      e = std::move(call);
    } else {
      return e;
    }
  }
}

ExprPtr ExprParser::parse_subscript(ExprPtr target, const Token& at) {
  ExprPtr parts[3];
  int colons = 0;
  if (!is_op(":")) parts[0] = parse_expr();
  while (colons < 2 && accept_op(":")) {
    ++colons;
    if (!is_op(":") && !is_op("]")) parts[colons] = parse_expr();
  }
  expect_op("]");
  ExprPtr e = make_expr(colons == 0 ? Expr::Kind::Index : Expr::Kind::Slice, at);
  e->args.push_back(std::move(target));
  if (colons == 0) {
    e->args.push_back(std::move(parts[0]));
  } else {
    for (auto& p : parts) e->args.push_back(std::move(p));
  }
  return e;
}

// Arguments after '(' up to and including ')': positional first, then name=value.
void ExprParser::parse_call_args(Expr& call) {
  while (!accept_op(")")) {
    if (call.args.size() > 1) {  // args[0] is the callee / the filtered value
      expect_op(",");
      if (accept_op(")")) return;
    }
    if (peek().kind == TokenKind::Name && is_op("=", 1)) {
      call.keywords.push_back(next().text);
      next();
      call.args.push_back(parse_expr());
    } else {
      if (!call.keywords.empty()) error(peek(), "a positional argument after a keyword argument");
      call.args.push_back(parse_expr());
    }
  }
}

ExprPtr ExprParser::parse_filters(ExprPtr e) {
  for (;;) {
    const Token& at = peek();
    if (accept_op("|")) {
      const Token& f_at = peek();
      ExprPtr f = make_expr(Expr::Kind::Filter, f_at);
      f->name = expect_identifier("a filter name after '|'");
      if (!is_filter(f->name)) error(f_at, "unknown filter '" + f->name + "'");
      f->args.push_back(std::move(e));
      if (accept_op("(")) parse_call_args(*f);
      e = std::move(f);
    } else if (is_name("is")) {
      next();
      ExprPtr t = make_expr(Expr::Kind::Test, at);
      t->negated = accept_name("not");
      t->name = expect_identifier("a test name after 'is'");
      t->args.push_back(std::move(e));
      if (accept_op("(")) {
        parse_call_args(*t);
      } else {
        const Token& n = peek();
        bool arg =
            n.kind == TokenKind::String || n.kind == TokenKind::Integer ||
            n.kind == TokenKind::Float ||
            (n.kind == TokenKind::Name && n.text != "and" && n.text != "or" && n.text != "else" &&
             n.text != "if" && n.text != "in" && n.text != "is" && n.text != "not");
        if (arg) t->args.push_back(parse_postfix(parse_primary()));
      }
      e = std::move(t);
    } else {
      return e;
    }
  }
}

}  // namespace wkvq::jinja
