// format_ablation_table (eval/ablation.h): a Markdown table whose columns are as wide as their
// widest cell, so every line has the same length and the separators line up.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "eval/ablation.h"

namespace wkvq {
namespace {

TEST(AblationTable, ColumnsLineUpWhateverTheCellWidths) {
  AblationRow a;
  a.rung = "FP";
  a.decode.ppl = 5.7829;
  a.prefill.ppl = 5.7829;
  AblationRow b;
  b.rung = "W4KV4 RTN + POQ + stats smoothing + a much longer rung name";
  b.decode.ppl = 1234.5678;
  b.decode.nll_stderr = 0.01;
  b.decode.kld = 0.13728;
  b.decode.kld_stderr = 0.00052;
  b.prefill.ppl = 6.3694;
  const std::string table = format_ablation_table({a, b});
  std::istringstream in(table);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << table;  // header, separator, two rows
  for (const std::string& line : lines) {
    EXPECT_EQ(line.size(), lines[0].size()) << table;
    for (size_t i = 0; i < line.size(); ++i) {
      if (lines[0][i] == '|') {
        EXPECT_EQ(line[i], '|') << "column " << i << "\n" << table;
      }
    }
  }
  EXPECT_NE(table.find(b.rung), std::string::npos);
  EXPECT_NE(table.find("1234.5678 +/- 12.3457"), std::string::npos) << table;
  EXPECT_NE(table.find("0.13728 +/- 0.00052"), std::string::npos) << table;
}

}  // namespace
}  // namespace wkvq
