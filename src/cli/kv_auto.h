// --kv-auto BITS: the KV cache format chosen for a model by measurement on its calibration text
// (issue 16: the best configuration within an honest bit budget). Candidates: 4-bit keys, values
// at 4, 3 or 2 bits, rel8 group metadata (formats/kv_quant.h) in groups of head_dim x 1, 2, 4, ...
// (at most 128 channels and the KV channels of a token), and the rest of the budget as an fp16
// window, amortised at the calibration context T: bits = (4 + vbits) / 2 + 16 / g + 16 W / T <=
// BITS. Each runs in decode mode (POQ) over the first windows of the calibration text, and the
// one with the least KL divergence from the float model wins (the least NLL when no float model
// is held: a quantized directory).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/quant_options.h"

namespace wkvq::cli {

struct KvAutoCandidate {
  KvQuantSettings kv;
  double bits = 0;   // per K/V element at the calibration context
  double score = 0;  // KLD (or NLL) on the calibration windows
};

// The candidates within `budget` bits for a model of config c at context t (none: an error naming
// the cheapest).
std::vector<KvAutoCandidate> kv_auto_candidates(const LlamaConfig& c, double budget, int64_t t);

// Measures the candidates on `stream` (calibration tokens) with p.model, p.smoothing (the
// smoothing every candidate shares) and the float `reference` (null: NLL instead of KLD); sets
// p.kv to the winner (POQ unless --poq off) and p.smoothing's static ranges to its groups'. Prints
// the candidates and the choice on stderr.
void choose_kv_format(PreparedModel& p, const QuantCliOptions& o, const std::vector<int>& stream,
                      const Model* reference);

// quantize's default budget (with --calib): llama.cpp's q4_0 cache costs as much.
inline constexpr double kDefaultKvAutoBits = 4.5;

// How many calibration windows the candidates run on (the ranges use --calib-windows).
inline constexpr int64_t kKvAutoWindows = 4;

}  // namespace wkvq::cli
