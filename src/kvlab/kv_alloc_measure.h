// alloc=sens on a model (kvlab/kv_alloc.h): the sensitivity measured on calibration text and the
// per-layer bits chosen from it.
#pragma once

#include <vector>

#include "kvlab/kv_alloc.h"
#include "kvlab/kv_sweep.h"

namespace wkvq {

// For each tensor (layer l's keys 2l, values 2l + 1) and each bit width of `menu`: the KLD of
// calib.model decoding (POQ) the calibration windows (calib.windows' length and count) with only
// that tensor quantized by `uniform` at that width, the others in f32, from calib.model with a
// float cache. Probes already measured (calib.probes) are not run again. Not made monotone.
KvSensitivity measure_kv_sensitivity(const KvMethodSpec& uniform, const std::vector<int>& menu,
                                     const LlamaConfig& c, const KvLabCalibration& calib);

// `spec` (alloc=sens) with its per-layer bits chosen: kv_alloc_total(spec) bits shared out by
// allocate_kv_bits over the monotone sensitivity of kv_alloc_menu's widths.
KvMethodSpec allocate_kv_layers(const KvMethodSpec& spec, const LlamaConfig& c,
                                const KvLabCalibration& calib);

}  // namespace wkvq
