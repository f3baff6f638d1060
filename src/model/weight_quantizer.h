// Round-to-nearest quantization of a model's linears (design.md §2.1 with no clipping), and the
// naming of linears shared by every quantization method.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace wkvq {

// The seven linears of a block, in a fixed order; names as in the CLI and file formats.
inline constexpr const char* kLinearNames[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};
Linear& linear_by_index(LayerWeights& l, int i);
const Linear& linear_by_index(const LayerWeights& l, int i);

// Which linears stay in floating point: comma-separated entries "L" (all of layer L), "NAME"
// (that linear in every layer) or "L.NAME", e.g. "0,w_down,3.wq". Throws on unknown entries.
class KeepFloat {
 public:
  KeepFloat() = default;
  explicit KeepFloat(const std::string& spec, int n_layers);
  bool keeps(int layer, int linear) const;

 private:
  std::vector<std::pair<int, int>> entries_;  // (layer or -1, linear or -1)
};

struct WeightQuantOptions {
  int bits = 4;         // 2, 3, 4 or 8
  int64_t group = 128;  // 0: one group per row
  KeepFloat keep_float;
};

// A copy of `fp` whose linears are RTN-quantized (the float originals are not kept in it;
// embeddings, norms and the output head stay in floating point; linears kept in floating point
// are f32). Parallel over linears; each fp16/bf16 source is converted on its own and its mapped
// pages released after use (model/loader.h, LoadOptions::half_in_place).
Model quantize_weights_rtn(const Model& fp, const WeightQuantOptions& opt);
// Makes m's linear `lin` an owned f32 copy when it is stored in fp16/bf16 (else leaves it).
void to_owned_f32(Model& m, Linear& lin);

}  // namespace wkvq
