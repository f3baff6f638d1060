// The expression half of the Jinja parser: Jinja's grammar with its precedence, lowest first
// (x if c else y; or; and; not; comparisons, in, not in; + -; ~; * / // %; **; unary - +;
// primaries with attributes, subscripts, slices and calls, then | filters and is tests).
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_token_stream.h"

namespace wkvq::jinja {

ExprPtr make_expr(Expr::Kind k, const Token& at);

class ExprParser : public TokenStream {
 public:
  using TokenStream::TokenStream;

  ExprPtr parse_expr();
  // An expression without the conditional (a `for` iterable, whose `if` filters).
  ExprPtr parse_or();
  // a, b, c as a tuple; one expression as itself.
  ExprPtr parse_tuple_or_expr();

 private:
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, const Token& at);
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  template <class Next>
  ExprPtr parse_left_assoc(std::initializer_list<const char*> ops, Next next_level);
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary();
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_filters(ExprPtr e);
  void parse_call_args(Expr& call);
  ExprPtr parse_subscript(ExprPtr target, const Token& at);
};

}  // namespace wkvq::jinja
