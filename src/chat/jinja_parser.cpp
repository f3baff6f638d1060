#include "chat/jinja_parser.h"

#include <initializer_list>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "core/error.h"

namespace wkvq::jinja {

namespace {

const char* kind_text(TokenKind k) {
  switch (k) {
    case TokenKind::Text:
      return "text";
    case TokenKind::ExprOpen:
      return "'{{'";
    case TokenKind::ExprClose:
      return "'}}'";
    case TokenKind::StmtOpen:
      return "'{%'";
    case TokenKind::StmtClose:
      return "'%}'";
    case TokenKind::Name:
      return "name";
    case TokenKind::String:
      return "string";
    case TokenKind::Integer:
      return "integer";
    case TokenKind::Float:
      return "float";
    case TokenKind::Operator:
      return "operator";
    case TokenKind::End:
      return "the end of the template";
  }
  return "?";
}

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::Name:
    case TokenKind::Operator:
      return "'" + t.text + "'";
    case TokenKind::String:
      return "a string";
    case TokenKind::Integer:
    case TokenKind::Float:
      return "the number " + t.text;
    case TokenKind::Text:
      return "template text";
    default:
      return kind_text(t.kind);
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body run() {
    Body body = parse_body({});
    if (peek().kind != TokenKind::End) {
      error(peek(1), "'" + peek(1).text + "' without a matching opening statement");
    }
    return body;
  }

 private:
  const Token& peek(size_t ahead = 0) const {
    return toks_[std::min(pos_ + ahead, toks_.size() - 1)];
  }
  const Token& next() {
    const Token& t = peek();
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::Operator && peek(ahead).text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::Name && peek(ahead).text == name;
  }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool accept_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  [[noreturn]] void error(const Token& at, const std::string& what) const {
    fail("chat template line ", at.line, ", column ", at.column, ": ", what);
  }
  void expect_op(const char* op) {
    if (!accept_op(op))
      error(peek(), std::string("expected '") + op + "', found " + describe(peek()));
  }
  void expect_name(const char* name) {
    if (!accept_name(name)) {
      error(peek(), std::string("expected '") + name + "', found " + describe(peek()));
    }
  }
  std::string expect_identifier(const char* what) {
    if (peek().kind != TokenKind::Name) {
      error(peek(), std::string("expected ") + what + ", found " + describe(peek()));
    }
    return next().text;
  }
  void expect_kind(TokenKind k) {
    if (peek().kind != k) {
      error(peek(), std::string("expected ") + kind_text(k) + ", found " + describe(peek()));
    }
    next();
  }

  // Statements up to (not including) a {% tag %} whose keyword is in `ends`.
  Body parse_body(std::initializer_list<const char*> ends) {
    Body body;
    for (;;) {
      const Token& t = peek();
      if (t.kind == TokenKind::End) {
        if (ends.size() > 0) {
          error(t, std::string("expected {% ") + *(ends.end() - 1) +
                       " %} before the end of the template");
        }
        return body;
      }
      if (t.kind == TokenKind::Text) {
        auto s = make_stmt(Stmt::Kind::Text, t);
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::ExprOpen) {
        auto s = make_stmt(Stmt::Kind::Output, next());
        s->exprs.push_back(parse_expr());
        expect_kind(TokenKind::ExprClose);
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::StmtOpen) {
        const Token& kw = peek(1);
        for (const char* end : ends) {
          if (kw.kind == TokenKind::Name && kw.text == end) return body;
        }
        if (kw.kind == TokenKind::Name && is_end_keyword(kw.text)) {
          if (ends.size() == 0) return body;  // run() reports it
          std::string want;
          for (const char* end : ends) want += std::string(want.empty() ? "" : " or ") + end;
          error(kw, "unexpected '" + kw.text + "' here: expected " + want);
        }
        next();
        body.push_back(parse_statement());
      } else {
        error(t, "unexpected " + describe(t));
      }
    }
  }

  static bool is_end_keyword(const std::string& k) {
    return k == "endif" || k == "endfor" || k == "endset" || k == "endmacro" || k == "elif" ||
           k == "else" || k == "endgeneration";
  }

  StmtPtr make_stmt(Stmt::Kind k, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  void close_tag() { expect_kind(TokenKind::StmtClose); }
  void end_tag(const char* keyword) {
    expect_kind(TokenKind::StmtOpen);
    expect_name(keyword);
    close_tag();
  }

  StmtPtr parse_statement() {
    Depth guard(*this);
    const Token& kw = peek();
    if (kw.kind != TokenKind::Name)
      error(kw, "expected a statement keyword, found " + describe(kw));
    std::string k = next().text;
    if (k == "if") return parse_if(kw);
    if (k == "for") return parse_for(kw);
    if (k == "set") return parse_set(kw);
    if (k == "macro") return parse_macro(kw);
    if (k == "break" || k == "continue") {
      auto s = make_stmt(k == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, kw);
      close_tag();
      return s;
    }
    if (k == "generation") {
      auto s = make_stmt(Stmt::Kind::Scope, kw);
      close_tag();
      s->bodies.push_back(parse_body({"endgeneration"}));
      end_tag("endgeneration");
      return s;
    }
    error(kw, "unknown or unsupported statement '" + k +
                  "' (supported: if, for, set, macro, break, continue, generation)");
  }

  StmtPtr parse_if(const Token& kw) {
    auto s = make_stmt(Stmt::Kind::If, kw);
    s->exprs.push_back(parse_expr());
    close_tag();
    s->bodies.push_back(parse_body({"elif", "else", "endif"}));
    for (;;) {
      expect_kind(TokenKind::StmtOpen);
      if (accept_name("elif")) {
        s->exprs.push_back(parse_expr());
        close_tag();
        s->bodies.push_back(parse_body({"elif", "else", "endif"}));
      } else if (accept_name("else")) {
        close_tag();
        s->bodies.push_back(parse_body({"endif"}));
        end_tag("endif");
        return s;
      } else {
        expect_name("endif");
        close_tag();
        return s;
      }
    }
  }

  StmtPtr parse_for(const Token& kw) {
    auto s = make_stmt(Stmt::Kind::For, kw);
    bool paren = accept_op("(");
    do {
      s->names.push_back(expect_identifier("a loop variable name"));
    } while (accept_op(","));
    if (paren) expect_op(")");
    expect_name("in");
    s->exprs.push_back(parse_or());
    s->exprs.push_back(accept_name("if") ? parse_or() : nullptr);
    if (is_name("recursive")) error(peek(), "recursive loops are not supported");
    close_tag();
    s->bodies.push_back(parse_body({"else", "endfor"}));
    expect_kind(TokenKind::StmtOpen);
    if (accept_name("else")) {
      close_tag();
      s->bodies.push_back(parse_body({"endfor"}));
      end_tag("endfor");
    } else {
      s->bodies.emplace_back();
      expect_name("endfor");
      close_tag();
    }
    return s;
  }

  StmtPtr parse_set(const Token& kw) {
    const Token& at = peek();
    std::string first = expect_identifier("a variable name after 'set'");
    if (peek().kind == TokenKind::StmtClose) {
      auto s = make_stmt(Stmt::Kind::SetBlock, kw);
      s->names.push_back(first);
      close_tag();
      s->bodies.push_back(parse_body({"endset"}));
      end_tag("endset");
      return s;
    }
    auto s = make_stmt(Stmt::Kind::Set, kw);
    ExprPtr target = make_expr(Expr::Kind::Name, at);
    target->name = first;
    if (accept_op(".")) {
      const Token& attr_at = peek();
      ExprPtr attr = make_expr(Expr::Kind::Attr, attr_at);
      attr->name = expect_identifier("an attribute name");
      attr->args.push_back(std::move(target));
      target = std::move(attr);
    } else if (is_op(",")) {
      ExprPtr tuple = make_expr(Expr::Kind::Tuple, at);
      tuple->args.push_back(std::move(target));
      while (accept_op(",")) {
        const Token& name_at = peek();
        ExprPtr name = make_expr(Expr::Kind::Name, name_at);
        name->name = expect_identifier("a variable name");
        tuple->args.push_back(std::move(name));
      }
      target = std::move(tuple);
    }
    expect_op("=");
    s->exprs.push_back(std::move(target));
    s->exprs.push_back(parse_tuple_or_expr());
    close_tag();
    return s;
  }

  StmtPtr parse_macro(const Token& kw) {
    auto s = make_stmt(Stmt::Kind::Macro, kw);
    s->names.push_back(expect_identifier("a macro name"));
    expect_op("(");
    while (!accept_op(")")) {
      if (s->names.size() > 1) expect_op(",");
      s->names.push_back(expect_identifier("a parameter name"));
      s->exprs.push_back(accept_op("=") ? parse_expr() : nullptr);
    }
    close_tag();
    s->bodies.push_back(parse_body({"endmacro"}));
    end_tag("endmacro");
    return s;
  }

  // ---- expressions, lowest precedence first ----
  ExprPtr make_expr(Expr::Kind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, const Token& at) {
    ExprPtr e = make_expr(Expr::Kind::Binary, at);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_tuple_or_expr() {
    const Token& at = peek();
    ExprPtr first = parse_expr();
    if (!is_op(",")) return first;
    ExprPtr tuple = make_expr(Expr::Kind::Tuple, at);
    tuple->args.push_back(std::move(first));
    while (accept_op(",")) tuple->args.push_back(parse_expr());
    return tuple;
  }

  // Bounds the recursion of nested expressions and statements (a stack overflow otherwise).
  struct Depth {
    explicit Depth(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) {
        p_.error(p_.peek(),
                 "expressions or statements nested deeper than " + std::to_string(kMaxNesting));
      }
    }
    ~Depth() { --p_.depth_; }
    Depth(const Depth&) = delete;
    Depth& operator=(const Depth&) = delete;
    Parser& p_;
  };
  static constexpr int kMaxNesting = 200;

  ExprPtr parse_expr() {
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

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const Token& at = next();
      e = binary("or", std::move(e), parse_and(), at);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const Token& at = next();
      e = binary("and", std::move(e), parse_not(), at);
    }
    return e;
  }

  ExprPtr parse_not() {
    Depth guard(*this);
    if (!is_name("not")) return parse_compare();
    ExprPtr e = make_expr(Expr::Kind::Unary, next());
    e->name = "not";
    e->args.push_back(parse_not());
    return e;
  }

  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    for (;;) {
      const Token& at = peek();
      std::string op;
      if (at.kind == TokenKind::Operator &&
          (at.text == "==" || at.text == "!=" || at.text == "<" || at.text == ">" ||
           at.text == "<=" || at.text == ">=")) {
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
  ExprPtr parse_left_assoc(std::initializer_list<const char*> ops, Next next_level) {
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
  ExprPtr parse_math1() { return parse_left_assoc({"+", "-"}, &Parser::parse_concat); }
  ExprPtr parse_concat() { return parse_left_assoc({"~"}, &Parser::parse_math2); }
  ExprPtr parse_math2() { return parse_left_assoc({"*", "/", "//", "%"}, &Parser::parse_pow); }
  ExprPtr parse_pow() { return parse_left_assoc({"**"}, &Parser::parse_unary); }

  ExprPtr parse_unary() {
    Depth guard(*this);
    if (is_op("-") || is_op("+")) {
      ExprPtr e = make_expr(Expr::Kind::Unary, peek());
      e->name = next().text;
      e->args.push_back(parse_unary());
      return e;
    }
    return parse_filters(parse_postfix(parse_primary()));
  }

  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_filters(ExprPtr e);
  void parse_call_args(Expr& call);
  ExprPtr parse_subscript(ExprPtr target, const Token& at);

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
};

ExprPtr Parser::parse_primary() {
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

ExprPtr Parser::parse_postfix(ExprPtr e) {
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

ExprPtr Parser::parse_subscript(ExprPtr target, const Token& at) {
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
void Parser::parse_call_args(Expr& call) {
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

ExprPtr Parser::parse_filters(ExprPtr e) {
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

}  // namespace

Body parse(std::string_view source) { return Parser(tokenize(source)).run(); }

}  // namespace wkvq::jinja
