// The ablation ladder of design.md §2.4: each rung adds one component of the method, each is
// measured in the decode (teacher-forced POQ) and prefill modes with PPL and KL divergence from
// the full-precision model.
#pragma once

#include <string>
#include <vector>

#include "eval/perplexity.h"
#include "model/model.h"

namespace wkvq {

struct AblationRung {
  std::string name;
  const Model* model = nullptr;            // weights of this rung
  KvQuantSettings kv;                      // bits 32 = float KV
  const KvSmoothing* smoothing = nullptr;  // null: none
};

struct AblationRow {
  std::string rung;
  PplResult decode;   // mode decode (decode-nopoq when the rung's kv.poq is off)
  PplResult prefill;  // mode prefill
};

// Runs every rung in both modes over the same token stream, KLD against `fp`, in one pass over
// the windows (perplexity_many: the reference runs once per window, and rungs sharing weights
// share their prefill run). `progress` follows the windows (the first rung's running NLL). Each
// rung holds a session (a KV cache of one window) per mode while it runs.
std::vector<AblationRow> run_ablation(const Model& fp, const std::vector<AblationRung>& rungs,
                                      const std::vector<int>& stream, const PplOptions& base,
                                      const PplProgress& progress = {});

// The table as text: one row per rung, decode and prefill columns with PPL +- stderr and KLD.
std::string format_ablation_table(const std::vector<AblationRow>& rows);

}  // namespace wkvq
