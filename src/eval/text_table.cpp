#include "eval/text_table.h"

#include <algorithm>
#include <sstream>

namespace wkvq {

std::string format_text_table(const std::vector<std::vector<std::string>>& cells) {
  if (cells.empty()) return "";
  std::vector<size_t> width(cells[0].size(), 0);  // every column as wide as its widest cell
  for (const auto& row : cells) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  std::ostringstream os;
  for (size_t i = 0; i < cells.size(); ++i) {
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string& s = c < cells[i].size() ? cells[i][c] : std::string();
      os << "| " << s << std::string(width[c] - s.size(), ' ') << " ";
    }
    os << "|\n";
    if (i == 0) {
      for (const size_t w : width) os << "|" << std::string(w + 2, '-');
      os << "|\n";
    }
  }
  return os.str();
}

}  // namespace wkvq
