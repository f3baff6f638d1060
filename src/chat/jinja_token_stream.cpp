#include "chat/jinja_token_stream.h"

#include "core/error.h"

namespace wkvq::jinja {

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

void TokenStream::error(const Token& at, const std::string& what) const {
  fail("chat template line ", at.line, ", column ", at.column, ": ", what);
}

}  // namespace wkvq::jinja
