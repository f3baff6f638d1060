// The record of a CRR run (calibrate/crr.h): what a resumed run must match, and the seed mixer
// of its windows. Internal to the calibration.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "calibrate/crr.h"
#include "model/model.h"

namespace wkvq {

// SplitMix64: one step of the seed mixer (the windows, each block's sample order).
uint64_t splitmix64(uint64_t x);

// The options (CrrOptions::record) plus a fingerprint of what they were applied to: the model
// (config, sampled weights, biases and q/k norms where it has them), the frozen weights when
// frozen is given (sampled codes, scales, zero points and act-order), and the calibration stream.
std::string run_record(const Model& fp, const std::vector<int>& calib, const CrrOptions& opt,
                       const Model* frozen);

// The first line where two records differ, as "'a' vs 'b'" ("(none)" when equal).
std::string first_difference(const std::string& a, const std::string& b);

}  // namespace wkvq
