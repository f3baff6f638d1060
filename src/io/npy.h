// Writes float32 arrays as NumPy .npy (format 1.0), for handing logits to reference scripts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wkvq {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace wkvq
