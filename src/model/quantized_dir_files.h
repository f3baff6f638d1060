// Files of the quantized model directory other than its tensors and config (layout in
// model/quantized_model_io.h): the output-directory check, the tokenizer copy and text writes.
// Internal to quantized_model_io.cpp.
#pragma once

#include <string>
#include <vector>

namespace wkvq {

// Refuses to replace a directory holding anything but the files of a quantized model (so a float
// model directory given as the output is never overwritten). Nothing is changed here: the save
// writes a new directory and swaps it in (io/atomic_dir.h).
void check_output_dir(const std::string& dir);

// Writes `text` to `path` atomically.
void write_text(const std::string& path, const std::string& text);

// Copies the tokenizer (and a SentencePiece model's two JSON companions) into the new directory
// `dir`; returns the names of the files written.
std::vector<std::string> copy_tokenizer(const std::string& tokenizer_path, const std::string& dir);

}  // namespace wkvq
