#include "chat/jinja_lexer.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "core/error.h"
#include "runtime/utf8.h"

namespace wkvq::jinja {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(source) {
    // Jinja drops a single trailing newline of the template (keep_trailing_newline=False).
    if (!src_.empty() && src_.back() == '\n') src_.remove_suffix(1);
  }

  std::vector<Token> run() {
    bool strip_next = false;  // the previous tag ended with -%} / -}} / -#}
    bool trim_next = false;   // the previous tag was a block or comment tag (trim_blocks)
    while (pos_ < src_.size()) {
      size_t open = find_tag(pos_);
      std::string_view text = src_.substr(pos_, open - pos_);
      size_t text_start = pos_;
      if (strip_next) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.remove_prefix(k);
        text_start += k;
      } else if (trim_next && !text.empty() && text[0] == '\n') {
        text.remove_prefix(1);
        ++text_start;
      }
      if (open < src_.size()) text = strip_before_tag(text, text_start, open);
      if (!text.empty()) push(TokenKind::Text, std::string(text), text_start);
      if (open >= src_.size()) break;
      pos_ = open;
      char kind = src_[open + 1];
      if (kind == '#') {
        strip_next = skip_comment();
        trim_next = true;
      } else {
        strip_next = lex_tag(kind == '%');
        trim_next = kind == '%';
      }
    }
    push(TokenKind::End, "", src_.size());
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return src_.size();
  }

  // Whitespace control on the text before the tag at `open`: {x- strips all trailing whitespace;
  // {% and {# strip spaces and tabs back to the start of the line (lstrip_blocks).
  std::string_view strip_before_tag(std::string_view text, size_t text_start, size_t open) const {
    bool minus = open + 2 < src_.size() && src_[open + 2] == '-';
    if (minus) {
      while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
      return text;
    }
    if (src_[open + 1] == '{') return text;
    size_t k = text.size();
    while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
    size_t run_start = text_start + k;
    if (run_start == 0 || src_[run_start - 1] == '\n') text = text.substr(0, k);
    return text;
  }

  [[noreturn]] void error_at(size_t at, const std::string& what) const {
    auto [line, col] = line_col(at);
    fail("chat template line ", line, ", column ", col, ": ", what);
  }

  // Line and column (in code points) of byte `at`; tokens come in source order, so the scan
  // resumes from the last position asked for.
  std::pair<int, int> line_col(size_t at) const {
    if (at < mark_.pos) mark_ = {};
    for (; mark_.pos < at && mark_.pos < src_.size(); ++mark_.pos) {
      char c = src_[mark_.pos];
      if (c == '\n') {
        ++mark_.line;
        mark_.col = 1;
      } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
        ++mark_.col;
      }
    }
    return {mark_.line, mark_.col};
  }

  void push(TokenKind kind, std::string text, size_t at) {
    Token t{kind, std::move(text)};
    auto [line, col] = line_col(at);
    t.line = line;
    t.column = col;
    tokens_.push_back(std::move(t));
  }

  // {# ... #}; returns whether it ends with -#}.
  bool skip_comment() {
    size_t end = src_.find("#}", pos_ + 2);
    if (end == std::string_view::npos) error_at(pos_, "comment {# is never closed with #}");
    bool minus = end > pos_ + 2 && src_[end - 1] == '-';
    pos_ = end + 2;
    return minus;
  }

  // {{ ... }} or {% ... %}; returns whether the closing delimiter had a '-'.
  bool lex_tag(bool statement) {
    size_t open_at = pos_;
    push(statement ? TokenKind::StmtOpen : TokenKind::ExprOpen, statement ? "{%" : "{{", pos_);
    pos_ += 2;
    if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) ++pos_;
    const char closer = statement ? '%' : '}';
    int braces = 0;
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) {
        error_at(open_at, statement ? "statement {% is never closed with %}"
                                    : "expression {{ is never closed with }}");
      }
      bool minus = src_[pos_] == '-' && src_.substr(pos_ + 1, 2) == std::string{closer, '}'};
      if (braces == 0 && (minus || src_.substr(pos_, 2) == std::string{closer, '}'})) {
        push(statement ? TokenKind::StmtClose : TokenKind::ExprClose, statement ? "%}" : "}}",
             pos_);
        pos_ += minus ? 3 : 2;
        return minus;
      }
      char c = src_[pos_];
      if (c == '{') ++braces;
      if (c == '}') --braces;
      lex_inner();
    }
  }

  void lex_inner() {
    char c = src_[pos_];
    size_t at = pos_;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (pos_ < src_.size() &&
             (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) {
        ++pos_;
      }
      push(TokenKind::Name, std::string(src_.substr(at, pos_ - at)), at);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      lex_number();
    } else if (c == '\'' || c == '"') {
      lex_string();
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
      for (const char* op : two) {
        if (src_.substr(pos_, 2) == op) {
          push(TokenKind::Operator, op, at);
          pos_ += 2;
          return;
        }
      }
      if (std::string_view("+-*/%~|.,:()[]{}=<>").find(c) == std::string_view::npos) {
        error_at(at, std::string("unexpected character '") + c + "' inside a tag");
      }
      push(TokenKind::Operator, std::string(1, c), at);
      ++pos_;
    }
  }

  void lex_number() {
    size_t at = pos_;
    while (pos_ < src_.size() &&
           (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) {
      ++pos_;
    }
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
    }
    std::string digits;
    for (char ch : src_.substr(at, pos_ - at)) {
      if (ch != '_') digits += ch;
    }
    if (is_float) {
      Token& t = (push(TokenKind::Float, digits, at), tokens_.back());
      t.float_value = std::strtod(digits.c_str(), nullptr);
    } else {
      Token& t = (push(TokenKind::Integer, digits, at), tokens_.back());
      auto res = std::from_chars(digits.data(), digits.data() + digits.size(), t.int_value);
      if (res.ec != std::errc()) error_at(at, "integer literal " + digits + " is out of range");
    }
  }

  void lex_string() {
    size_t at = pos_;
    char quote = src_[pos_++];
    std::string out;
    for (;;) {
      if (pos_ >= src_.size()) error_at(at, "string literal is never closed");
      char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) error_at(at, "string literal is never closed");
      char e = src_[pos_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '0':
          out += '\0';
          break;
        case 'x':
        case 'u':
        case 'U':
          out += hex_escape(e == 'x' ? 2 : e == 'u' ? 4 : 8);
          break;
        case '\n':
          break;  // a backslash-newline continues the line
        default:
          if (e != '\\' && e != '\'' && e != '"') out += '\\';
          out += e;
      }
    }
    push(TokenKind::String, std::move(out), at);
  }

  std::string hex_escape(int digits) {
    size_t at = pos_;
    uint32_t cp = 0;
    bool ok = pos_ + digits <= src_.size();
    if (ok) {
      auto res = std::from_chars(src_.data() + pos_, src_.data() + pos_ + digits, cp, 16);
      ok =
          res.ptr == src_.data() + pos_ + digits && cp < 0x110000 && !(cp >= 0xD800 && cp < 0xE000);
    }
    if (!ok) {
      error_at(at, "bad escape: expected " + std::to_string(digits) +
                       " hexadecimal digits of a Unicode scalar value");
    }
    pos_ += digits;
    std::string out;
    utf8::append(out, cp);
    return out;
  }

  struct Mark {
    size_t pos = 0;
    int line = 1;
    int col = 1;
  };
  std::string_view src_;
  size_t pos_ = 0;
  mutable Mark mark_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace wkvq::jinja
