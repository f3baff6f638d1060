// Jinja lexer: a template's text becomes a flat list of tokens (literal text, tag delimiters and
// the names, literals and operators inside tags), each with its line and column.
//
// Whitespace follows the Jinja environment Hugging Face renders chat templates with
// (trim_blocks and lstrip_blocks on, a single trailing newline dropped):
//   {%- / {{- / {#-  strip all whitespace before the tag; -%} / -}} / -#} all whitespace after;
//   a newline right after %} or #} is dropped (trim_blocks);
//   spaces and tabs between the start of a line and {% or {# are dropped (lstrip_blocks).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wkvq::jinja {

enum class TokenKind {
  Text,       // literal template text (after whitespace control)
  ExprOpen,   // {{
  ExprClose,  // }}
  StmtOpen,   // {%
  StmtClose,  // %}
  Name,       // identifier or keyword
  String,     // string literal, escapes decoded
  Integer,    // integer literal
  Float,      // float literal
  Operator,   // punctuation or operator: == != <= >= // ** + - * / % ~ | . , : ( ) [ ] { } = < >
  End,        // end of the template
};

struct Token {
  TokenKind kind;
  std::string text;  // the text, name, decoded string or operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int column = 1;
};

// Throws wkvq::Error naming line and column on an unterminated tag, string or comment, or a
// character that starts no token.
std::vector<Token> tokenize(std::string_view source);

}  // namespace wkvq::jinja
