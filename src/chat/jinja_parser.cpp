#include "chat/jinja_parser.h"

#include <initializer_list>

#include "chat/jinja_expr_parser.h"
#include "core/error.h"

namespace wkvq::jinja {

namespace {

// The statement half of the parser; expressions are ExprParser's.
class Parser : public ExprParser {
 public:
  using ExprParser::ExprParser;

 public:
  Body run() {
    Body body = parse_body({});
    if (peek().kind != TokenKind::End) {
      error(peek(1), "'" + peek(1).text + "' without a matching opening statement");
    }
    return body;
  }

 private:
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
};

}  // namespace

Body parse(std::string_view source) { return Parser(tokenize(source)).run(); }

}  // namespace wkvq::jinja
