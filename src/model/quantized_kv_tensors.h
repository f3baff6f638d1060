// The KV cache's static tensors of a quantized model directory (layout in
// model/quantized_model_io.h): the smoothing vectors (kv_smooth not "none") and the rel8 static
// group ranges (kv_meta "rel8"), per layer. Internal to quantized_model_io.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/kv_quant.h"
#include "io/safetensors_writer.h"
#include "model/model.h"

namespace wkvq {

// Whether a model with these KV settings writes smoothing vectors or static group ranges.
bool writes_kv_static(const KvQuantSettings& kv);

// Layer l's tensors of m into w: model.layers.L.self_attn.kv_smoothing.{k_shift,k_scale,v_shift,
// v_scale} (K in the file's channel order: k_order[c] is the source channel of file channel c;
// empty: the same order) and model.layers.L.self_attn.kv_ranges.{k_lo,k_hi,v_lo,v_hi}. Throws when
// a reordering within heads would change the channels of rel8 groups (groups not made of whole
// heads).
void add_kv_static_tensors(SafetensorsWriter& w, const Model& m, int l,
                           const std::vector<int64_t>& k_order);

}  // namespace wkvq
