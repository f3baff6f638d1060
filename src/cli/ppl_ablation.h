// wkvq ppl --ablation: the ladder of design.md §2.4 (FP; W RTN; W+KV RTN without POQ; + POQ; +
// statistics smoothing), the learned and GPTQ rungs (--calibrate) and quantized model
// directories (--calibrated), all in decode and prefill mode in one pass over the windows.
#pragma once

#include <string>
#include <vector>

#include "cli/ppl_options.h"
#include "model/model.h"
#include "runtime/tokenizer.h"

namespace wkvq::cli {

void run_ablation_cmd(const PplCliOptions& o, const std::string& model_path, const Model& fp,
                      const Tokenizer& tok, const std::vector<int>& stream, const PplOptions& base);

}  // namespace wkvq::cli
