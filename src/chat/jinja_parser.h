// Jinja parser: tokens (jinja_lexer.h) to a syntax tree (jinja_ast.h). Supports the statements
// chat templates use (if/elif/else, for with an optional filter and else, set including
// attribute and block forms, macro, break, continue, the transformers `generation` tag) and
// Jinja's expression grammar with its operator precedence.
#pragma once

#include <string_view>

#include "chat/jinja_ast.h"

namespace wkvq::jinja {

// Throws wkvq::Error naming the line and column, what was expected and what was found.
Body parse(std::string_view source);

}  // namespace wkvq::jinja
