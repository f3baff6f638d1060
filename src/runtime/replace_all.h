// replace_all: every occurrence of a non-empty pattern replaced, left to right, no overlaps.
#pragma once

#include <string>
#include <string_view>

namespace wkvq {

std::string replace_all(std::string_view text, std::string_view pattern, std::string_view with);

}  // namespace wkvq
