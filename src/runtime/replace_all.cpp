#include "runtime/replace_all.h"

namespace wkvq {

std::string replace_all(std::string_view text, std::string_view pattern, std::string_view with) {
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  for (size_t hit; (hit = text.find(pattern, at)) != std::string_view::npos;
       at = hit + pattern.size()) {
    out.append(text.substr(at, hit - at));
    out.append(with);
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace wkvq
