// The token cursor the Jinja parser reads with: lookahead, accepting and expecting tokens,
// errors that name the line and column of a token, and the nesting bound of the recursion.
#pragma once

#include <string>
#include <vector>

#include "chat/jinja_lexer.h"

namespace wkvq::jinja {

// "'name'", "a string", "the number 3", ...: a token as error messages name it.
std::string describe(const Token& t);
const char* kind_text(TokenKind k);

class TokenStream {
 public:
  explicit TokenStream(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

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

  [[noreturn]] void error(const Token& at, const std::string& what) const;
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

  // Bounds the recursion of nested expressions and statements (a stack overflow otherwise).
  struct Depth {
    explicit Depth(TokenStream& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) {
        p_.error(p_.peek(),
                 "expressions or statements nested deeper than " + std::to_string(kMaxNesting));
      }
    }
    ~Depth() { --p_.depth_; }
    Depth(const Depth&) = delete;
    Depth& operator=(const Depth&) = delete;
    TokenStream& p_;
  };
  static constexpr int kMaxNesting = 200;

 private:
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace wkvq::jinja
