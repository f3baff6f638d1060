// A Markdown table of text cells, every column as wide as its widest cell (the first row is the
// header): the ablation and KV sweep tables.
#pragma once

#include <string>
#include <vector>

namespace wkvq {

std::string format_text_table(const std::vector<std::vector<std::string>>& cells);

}  // namespace wkvq
