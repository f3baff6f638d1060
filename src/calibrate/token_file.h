// The calibration token stream as a file: how `wkvq quantize` (which owns the tokenizers) hands
// the tokenized --calib text to the calibration worker `wkvq-calibrate` (which runs libtorch and
// must not load sentencepiece, see src/CMakeLists.txt).
//
// Byte layout (little endian): magic "WKVQTOK\0", u64 count, i32 token[count]; nothing after.
#pragma once

#include <string>
#include <vector>

namespace wkvq {

void write_token_file(const std::string& path, const std::vector<int>& tokens);
// Throws wkvq::Error naming the file on a wrong magic or size, or a token outside
// [0, vocab_size).
std::vector<int> read_token_file(const std::string& path, int vocab_size);

}  // namespace wkvq
