#include "runtime/utf8_stream.h"

#include "runtime/utf8.h"

namespace wkvq {

std::string Utf8Stream::push(std::string_view piece) {
  std::string buf = pending_;
  buf.append(piece);
  pending_.clear();
  std::string out;
  out.reserve(buf.size());
  for (size_t i = 0; i < buf.size();) {
    size_t subpart = 0;
    const size_t n = utf8::valid_length(buf, i, &subpart);
    if (n > 0) {
      out.append(buf, i, n);
      i += n;
    } else if (i + subpart == buf.size() && static_cast<unsigned char>(buf[i]) >= 0xC2 &&
               static_cast<unsigned char>(buf[i]) <= 0xF4) {
      pending_ = buf.substr(i);  // a valid start cut off by the end of the piece: wait
      break;
    } else {
      out.append(utf8::kReplacement);
      i += subpart;
    }
  }
  return out;
}

std::string Utf8Stream::flush() {
  if (pending_.empty()) return {};
  pending_.clear();
  return std::string(utf8::kReplacement);
}

std::string printable_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 || c == ' ' || (c >= '\t' && c <= '\r')) out += ch;
  }
  return out;
}

}  // namespace wkvq
